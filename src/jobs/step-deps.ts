import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { CloudflareClients } from "../cloud/cloudflare.js";
import type { MigrationFile } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import type { Ports } from "../ports.js";
import type { Db } from "../store/client.js";

/**
 * What every step factory takes, and all it takes: clients come from `ports`, none is built in a
 * step; what a step needs beyond these (its calendar, the state store, the live database half,
 * the KPI verdict) it derives from them inside its factory.
 *
 * @example const step = createDbDumpStep({ env, ports, file, dataDir, log });
 */
export interface StepDeps {
  /**
   * the variables the migration file names (database URLs, the SSH key path, passwords);
   * endpoints and AWS credentials are read by the ports alone
   */
  env: NodeJS.ProcessEnv;
  /** every outside client (src/ports.ts); a test may hand in its own, in memory */
  ports: Ports;
  file: MigrationFile;
  /** CUTOVER_DATA_DIR, absolute: dumps, reports and caches live under it */
  dataDir: string;
  log: Logger;
  /** the state store, for steps that read what earlier steps recorded (approvals, snapshots); tests of other steps may leave it out */
  db?: Db;
  /** DNS and Pages; undefined when the file has no `dns` section */
  cloudflare?: CloudflareClients | undefined;
  /** the calendar steps read (approval expiry, the TTL wait, cost and KPI windows); default the machine's */
  clock?: Clock;
}

/** The calendar a step reads: `deps.clock`, else the machine's. */
export function stepNow(deps: Pick<StepDeps, "clock">): () => Date {
  return () => (deps.clock ?? systemClock).now();
}

/**
 * The state store of a step that needs one (`type` names it). Step factories only keep their
 * dependencies, so a registry built without a store (a test, the list of step types) still holds
 * the step; using it then fails with this message instead of a TypeError.
 */
export function stateStore(deps: Pick<StepDeps, "db">, type: string): Db {
  if (deps.db) return deps.db;
  const missing = () => {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `${type} needs Cutover's state store, and was built without one.`,
      {
        hint: "Build the step registry with the state store (`db` in the step deps), as the bot and `npx cutover` do.",
      },
    );
  };
  return new Proxy({}, { get: missing }) as Db;
}
