import type { SectionPath } from "../config/schema.js";
import type { StepInfo } from "./define-step.js";
import { dbDump } from "./steps/db/dump.js";
import { dbPreflight } from "./steps/db/preflight.js";
import { rdsInstance } from "./steps/db/rds-instance.js";
import { dbReplicate, dbReplicationTeardown } from "./steps/db/replicate.js";
import { dbRestore } from "./steps/db/restore.js";
import { dbVerify } from "./steps/db/verify.js";
import { dbWriteProbe } from "./steps/db/write-probe.js";
import { dnsCutover } from "./steps/dns/cutover.js";
import { dnsLowerTtl } from "./steps/dns/lower-ttl.js";
import { appDeploy } from "./steps/host/app-deploy.js";
import { lightsailInstance } from "./steps/host/lightsail-instance.js";
import { hostSetup } from "./steps/host/setup.js";
import { costReport } from "./steps/ops/cost-report.js";
import { decommission } from "./steps/ops/decommission.js";
import { kpiMonitor } from "./steps/ops/kpi-monitor.js";
import { s3Bucket } from "./steps/storage/bucket.js";
import { cdnCheck } from "./steps/storage/cdn-check.js";
import { storageSync } from "./steps/storage/sync.js";
import { storageVerify } from "./steps/storage/verify.js";
import { verifyFunctional } from "./steps/verify/functional.js";
import { httpCheck } from "./steps/verify/http-check.js";
import { verifyPerformance } from "./steps/verify/performance.js";
import { verifyReliability } from "./steps/verify/reliability.js";

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
