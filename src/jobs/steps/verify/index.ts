import type { StepDeps } from "../../define-step.js";
import { createVerifyFunctionalStep } from "./functional.js";
import { createVerifyPerformanceStep } from "./performance.js";
import { createVerifyReliabilityStep } from "./reliability.js";

/** The verification steps: verify.functional, verify.performance, verify.reliability. */
export function createVerificationSteps(deps: StepDeps) {
  return [
    createVerifyFunctionalStep(deps),
    createVerifyPerformanceStep(deps),
    createVerifyReliabilityStep(deps),
  ];
}
