import { stepRegistry } from "./define-step.js";
import type { StepDeps } from "./step-deps.js";
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

export { liveDeps } from "./cutover/live.js";
export type { StepDeps } from "./step-deps.js";

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
