import { createDbWriteProbeStep } from "./steps/db-write-probe.js";
import { createHttpCheckStep } from "./steps/http-check.js";
import type { StepDefinition, StepRegistry } from "./types.js";

export interface StepDeps {
  env: NodeJS.ProcessEnv;
}

/** The step types this build can run. Later capabilities add their factories here. */
export function createStepRegistry(deps: StepDeps): StepRegistry {
  // Each step's input type is its own; the runner only passes back what the step's parse returned.
  const steps = [
    createDbWriteProbeStep(deps.env),
    createHttpCheckStep(),
  ] as unknown as StepDefinition<unknown>[];
  return new Map(steps.map((s) => [s.type, s]));
}
