import type { StepDeps } from "../index.js";
import type { StepDefinition } from "../types.js";
import { createDbDumpStep } from "./db-dump.js";
import { createDbPreflightStep } from "./db-preflight.js";
import { createDbReplicateStep, createDbReplicationTeardownStep } from "./db-replicate.js";
import { createDbRestoreStep } from "./db-restore.js";
import { createDbVerifyStep } from "./db-verify.js";

export { runDatabaseVerify } from "./db-verify.js";

/**
 * The database move as runbook steps: `db.preflight` (read-only checklist), `db.dump`
 * (pg_dump -Fd -j N in one snapshot), `db.restore` (pg_restore -j N, crash-safe resume) and
 * `db.verify` (row counts, content checksums by primary key, sequences, schema objects).
 *
 * @example const steps = createDbSteps({ env, file, dataDir, log });
 */
export function createDbSteps(deps: StepDeps): StepDefinition<unknown>[] {
  return [
    createDbPreflightStep(deps),
    createDbDumpStep(deps),
    createDbRestoreStep(deps),
    createDbVerifyStep(deps),
    createDbReplicateStep(deps),
    createDbReplicationTeardownStep(deps),
  ];
}
