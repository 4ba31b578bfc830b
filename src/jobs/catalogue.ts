import type { SectionPath } from "../config/schema.js";
import type { StepDeps, StepInfo, StepRegistry } from "./define-step.js";
import { stepRegistry } from "./define-step.js";
import { dbDump } from "./steps/db/dump.js";
import { createDbSteps } from "./steps/db/index.js";
import { dbPreflight } from "./steps/db/preflight.js";
import { rdsInstance } from "./steps/db/rds-instance.js";
import { dbReplicate, dbReplicationTeardown } from "./steps/db/replicate.js";
import { dbRestore } from "./steps/db/restore.js";
import { dbVerify } from "./steps/db/verify.js";
import { createDbWriteProbeStep, dbWriteProbe } from "./steps/db/write-probe.js";
import { createDnsCutoverStep, dnsCutover } from "./steps/dns/cutover.js";
import { createDnsLowerTtlStep, dnsLowerTtl } from "./steps/dns/lower-ttl.js";
import { appDeploy } from "./steps/host/app-deploy.js";
import { createHostSteps } from "./steps/host/index.js";
import { lightsailInstance } from "./steps/host/lightsail-instance.js";
import { hostSetup } from "./steps/host/setup.js";
import { costReport, createCostReportStep } from "./steps/ops/cost-report.js";
import { createDecommissionStep, decommission } from "./steps/ops/decommission.js";
import { createKpiMonitorStep, kpiMonitor } from "./steps/ops/kpi-monitor.js";
import { s3Bucket } from "./steps/storage/bucket.js";
import { cdnCheck } from "./steps/storage/cdn-check.js";
import { createStorageSteps } from "./steps/storage/index.js";
import { storageSync } from "./steps/storage/sync.js";
import { storageVerify } from "./steps/storage/verify.js";
import { verifyFunctional } from "./steps/verify/functional.js";
import { createHttpCheckStep, httpCheck } from "./steps/verify/http-check.js";
import { createVerificationSteps } from "./steps/verify/index.js";
import { verifyPerformance } from "./steps/verify/performance.js";
import { verifyReliability } from "./steps/verify/reliability.js";

// Every step type of this build, in one place: the declarations each step makes with `defineStep`
// in its own file, gathered (the types a migration file may name, their descriptions, time limits
// and config sections), and the registry the step executor looks a type up in, built from the
// steps' factories.

/**
 * Every step type a migration file may name, as each declares itself with `defineStep` in its
 * own file. Everything below is read from these declarations; none is written twice.
 */
export const STEP_TYPES: readonly StepInfo[] = [
  dbWriteProbe,
  httpCheck,
  lightsailInstance,
  rdsInstance,
  s3Bucket,
  dbPreflight,
  dbDump,
  dbRestore,
  dbVerify,
  dbReplicate,
  dbReplicationTeardown,
  storageSync,
  storageVerify,
  cdnCheck,
  hostSetup,
  appDeploy,
  verifyFunctional,
  verifyPerformance,
  verifyReliability,
  dnsLowerTtl,
  dnsCutover,
  kpiMonitor,
  costReport,
  decommission,
];

/**
 * What each step type does, by `uses:` name. A type here but not in the registry of a running
 * Cutover (one built without the state store, say) is reported as "not available in this build"
 * when planned or run.
 */
export const STEP_CATALOGUE: Readonly<Record<string, string>> = Object.fromEntries(
  STEP_TYPES.map((s) => [s.type, s.description]),
);

export const KNOWN_STEP_TYPES: readonly string[] = STEP_TYPES.map((s) => s.type);

/**
 * How long a step of each type may take by default, all attempts together, in seconds; a step's
 * `timeout:` in the migration file overrides it. Types whose time grows with the data, that wait
 * by design or only prove a database takes writes have none: the stall watchdog
 * (`engine.stallSeconds`) stops them when their progress stops instead.
 */
export const STEP_TIME_LIMITS: Readonly<Record<string, number>> = Object.fromEntries(
  STEP_TYPES.flatMap((s) => (s.timeLimit === undefined ? [] : [[s.type, s.timeLimit]])),
);

/** The migration file sections each step type needs; `loadMigrationFile` checks them (`stepSections`). */
export const STEP_SECTIONS: Readonly<Record<string, readonly SectionPath[]>> = Object.fromEntries(
  STEP_TYPES.map((s) => [s.type, s.configSections]),
);

export { liveDeps } from "./cutover/live.js";
export type { StepDeps } from "./define-step.js";

/**
 * The step types this build can run: every factory takes the same {@link StepDeps}. Later
 * capabilities add their factories here.
 */
export function createStepRegistry(deps: StepDeps): StepRegistry {
  // Each step's input type is its own; the runner only passes back what the step's parse returned.
  return stepRegistry([
    createDbWriteProbeStep(deps),
    createHttpCheckStep(deps),
    ...createDbSteps(deps),
    ...createStorageSteps(deps),
    ...createHostSteps(deps),
    ...createVerificationSteps(deps),
    createDnsLowerTtlStep(deps),
    createDnsCutoverStep(deps),
    createDecommissionStep(deps),
    createKpiMonitorStep(deps),
    createCostReportStep(deps),
  ]);
}
