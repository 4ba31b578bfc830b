import type { StepDefinition, StepDeps } from "../../define-step.js";
import { createDbDumpStep } from "./dump.js";
import { createDbPreflightStep } from "./preflight.js";
import { createDbReplicateStep, createDbReplicationTeardownStep } from "./replicate.js";
import { createDbRestoreStep } from "./restore.js";
import { createDbVerifyStep } from "./verify.js";

export { runDatabaseVerify } from "./verify.js";

/**
 * The database move as runbook steps: `db.preflight` (read-only checklist), `db.dump`
 * (pg_dump -Fd -j N in one snapshot), `db.restore` (pg_restore -j N, crash-safe resume) and
 * `db.verify` (row counts, content checksums by primary key, sequences, schema objects).
 *
 * @example const steps = createDbSteps({ env, ports, file, dataDir, log });
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
