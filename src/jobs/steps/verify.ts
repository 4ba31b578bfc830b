import type { StepDeps } from "../index.js";
import { createVerifyFunctionalStep } from "./verify-functional.js";
import { createVerifyPerformanceStep } from "./verify-performance.js";
import { createVerifyReliabilityStep } from "./verify-reliability.js";

/** The verification steps: verify.functional, verify.performance, verify.reliability. */
export function createVerificationSteps(deps: StepDeps) {
  return [
    createVerifyFunctionalStep(deps),
    createVerifyPerformanceStep(deps),
    createVerifyReliabilityStep(deps),
  ];
}
