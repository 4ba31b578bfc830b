import type { Logger } from "pino";
import type { MigrationFile } from "../config/schema.js";
import { createDbWriteProbeStep } from "./steps/db-write-probe.js";
import { createHttpCheckStep } from "./steps/http-check.js";
import type { StepDefinition, StepRegistry } from "./types.js";

/** What step factories may use. Adapters over outside services are built from these, here only. */
export interface StepDeps {
  env: NodeJS.ProcessEnv;
  file: MigrationFile;
  /** CUTOVER_DATA_DIR, absolute: dumps, reports and caches live under it */
  dataDir: string;
  log: Logger;
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
