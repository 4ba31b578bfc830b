import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { CloudflareClients } from "../cloud/cloudflare.js";
import type { MigrationFile } from "../config/schema.js";
import { kpiWindowGreen } from "../digest/sources.js";
import type { Ports } from "../ports.js";
import type { Db } from "../store/client.js";
import type { LiveDeps } from "./cutover/live.js";
import { stepRegistry } from "./define-step.js";
import { createDbSteps } from "./steps/db/index.js";
import { createDbWriteProbeStep } from "./steps/db/write-probe.js";
import { createDnsCutoverStep } from "./steps/dns/cutover.js";
import { createDnsLowerTtlStep } from "./steps/dns/lower-ttl.js";
import { createHostSteps } from "./steps/host/index.js";
import { createCostReportStep } from "./steps/ops/cost-report.js";
import { createDecommissionStep } from "./steps/ops/decommission.js";
import { createKpiMonitorStep } from "./steps/ops/kpi-monitor.js";
import { createStorageSteps } from "./steps/storage/index.js";
import { createHttpCheckStep } from "./steps/verify/http-check.js";
import { createVerificationSteps } from "./steps/verify/index.js";
import type { StepRegistry } from "./types.js";

/** What step factories may use. Clients come from `ports`; none is built in a step. */
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

/** The step types this build can run. Later capabilities add their factories here. */
export function createStepRegistry(deps: StepDeps): StepRegistry {
  // Each step's input type is its own; the runner only passes back what the step's parse returned.
  return stepRegistry([
    createDbWriteProbeStep(deps),
    createHttpCheckStep(),
    ...createDbSteps(deps),
    ...createStorageSteps(deps),
    ...createHostSteps(deps),
    ...createVerificationSteps(deps),
    ...(deps.db ? cutoverSteps({ ...deps, db: deps.db }) : []),
    ...(deps.db ? [decommissionStep({ ...deps, db: deps.db })] : []),
    ...(deps.db
      ? [
          createKpiMonitorStep({ ...deps, db: deps.db, now: calendar(deps) }),
          createCostReportStep({ ...deps, db: deps.db, now: calendar(deps) }),
        ]
      : []),
  ]);
}

const calendar = (deps: StepDeps) => (): Date => (deps.clock ?? systemClock).now();

/** Decommission proves the stabilisation window green from the KPI samples. */
function decommissionStep(deps: StepDeps & { db: Db }) {
  return createDecommissionStep({
    ...deps,
    now: calendar(deps),
    kpiGreen: ({ since, until }) => kpiWindowGreen(deps.db, deps.file, { since, until }),
  });
}

/** The database half of a live cutover and rollback, when the file has a `replication` section. */
export function liveDeps(deps: StepDeps): LiveDeps | undefined {
  if (!deps.file.replication || !deps.db) return undefined;
  return { step: deps, db: deps.db, now: calendar(deps) };
}

function cutoverSteps(deps: StepDeps & { db: Db }) {
  const cutoverDeps = {
    db: deps.db,
    file: deps.file,
    cloudflare: deps.cloudflare,
    log: deps.log,
    now: calendar(deps),
    live: liveDeps(deps),
  };
  return [createDnsLowerTtlStep(cutoverDeps), createDnsCutoverStep(cutoverDeps)];
}
