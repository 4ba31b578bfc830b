import type { MigrationFile, PhaseConfig, StepConfig } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import { closest } from "../text/suggest.js";

export interface ResolvedTarget {
  kind: "step" | "phase" | "runbook";
  name: string;
  steps: Array<{ phase: PhaseConfig; step: StepConfig }>;
}

/** Every step of the runbook with its phase, in order. */
export function allSteps(file: MigrationFile): Array<{ phase: PhaseConfig; step: StepConfig }> {
  return file.runbook.phases.flatMap((phase) => phase.steps.map((step) => ({ phase, step })));
}

export function findStep(
  file: MigrationFile,
  stepId: string,
): { phase: PhaseConfig; step: StepConfig } | undefined {
  return allSteps(file).find((s) => s.step.id === stepId);
}

/** Turns what a person typed (a phase id, a step id, or a phase's number) into the steps to run. */
export function resolveTarget(file: MigrationFile, name: string): ResolvedTarget {
  const phases = file.runbook.phases;
  if (name === "all") return { kind: "runbook", name: "all", steps: allSteps(file) };
  const byNumber = /^\d+$/.test(name) ? phases[Number(name) - 1] : undefined;
  const phase = byNumber ?? phases.find((p) => p.id === name);
  if (phase) return { kind: "phase", name: phase.id, steps: phase.steps.map((step) => ({ phase, step })) };
  const found = findStep(file, name);
  if (found) return { kind: "step", name, steps: [found] };
  const names = [...phases.map((p) => p.id), ...allSteps(file).map((s) => s.step.id)];
  const guess = closest(name, names);
  throw new CutoverError(
    ErrorCode.UnknownStep,
    `There is no phase or step called \`${name}\`${guess ? `. Did you mean \`${guess}\`?` : "."}`,
    { details: { name, guess } },
  );
}
