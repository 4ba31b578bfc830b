import type { MigrationFile } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import { isUndoOptions, type UndoSource } from "../store/steps.js";
import type { StepDefinition, StepRegistry } from "./define-step.js";
import { type ResolvedTarget, resolveTarget } from "./runbook.js";

/**
 * `/migrate undo <phase>` (and `npx cutover undo <phase>`): tears down what Cutover created in a
 * phase, e.g. after an aborted rehearsal on a real account, where a Lightsail instance, an RDS
 * instance or a CloudFront distribution left behind costs money every hour. It is an ordinary
 * run through the same submission path: previewed with `--dry-run`, confirmed like `--replace`,
 * holding the environment lock, audited, with its own progress message. Each step's `undo`
 * reads what that step recorded as it ran (its checkpoints: "created the instance", "the ports
 * before"), so it removes only what Cutover created and puts back what it changed.
 */
export function isUndoRun(options: unknown): boolean {
  return isUndoOptions(options);
}

/** The steps of a phase (or one step) that can be undone, newest first: the compensation stack. */
export function undoTarget(file: MigrationFile, registry: StepRegistry, name: string): ResolvedTarget {
  if (name === "all") {
    throw new CutoverError(ErrorCode.BadArgument, "`undo` takes one phase or step, not the whole runbook.", {
      hint: "Undo the phases one at a time, the last one first, e.g. `/migrate undo storage --dry-run`.",
    });
  }
  const target = resolveTarget(file, name);
  const steps = target.steps.filter(({ step }) => registry.get(step.uses)?.undo !== undefined).reverse();
  if (steps.length === 0) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `Nothing in \`${target.name}\` can be undone: none of its steps creates or changes anything Cutover tears down.`,
      {
        hint: "Type `/migrate status` to see what ran; a step without an undo changed nothing outside Cutover.",
      },
    );
  }
  return { ...target, steps };
}

const shortRun = (id: string) => id.slice(0, 8);

/**
 * Steps whose way back is another command: an undo leaves them alone and says which. The DNS
 * switch goes back through `/rollback`, which in a live migration also turns the database
 * around; going back on DNS alone would send the traffic to a source that no longer takes writes.
 */
const WAY_BACK_ELSEWHERE: Readonly<Record<string, string>> = {
  "dns.cutover":
    "left alone: the way back from the DNS switch is `/rollback`, which also brings the database back in a live migration",
};

/**
 * The step as an undo run runs it: the preview lists what the step recorded, `run` is its
 * `undo`, and there is nothing to verify beyond the undo finishing. A step that never ran, or
 * was undone already, is left alone and says so.
 */
export function undoing(step: StepDefinition<unknown>, source: UndoSource): StepDefinition<unknown> {
  const undo = step.undo;
  const nothing = source.alreadyUndone
    ? `already undone by run ${shortRun(source.runId ?? "")}: nothing to undo`
    : source.runId === undefined
      ? "never ran in this environment: nothing to undo"
      : WAY_BACK_ELSEWHERE[step.type];
  const facts = Object.entries(source.recorded)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)?.slice(0, 80)}`)
    .join(", ");
  return {
    type: step.type,
    description: step.description,
    mutating: true,
    parse: (raw) => step.parse(raw),
    async plan() {
      if (nothing || !undo) return { summary: nothing ?? "nothing to undo", changes: [] };
      return {
        summary: `would undo what run ${shortRun(source.runId!)} did (${step.type}: ${step.description})`,
        changes: [
          {
            action: "delete",
            target: `what ${step.type} created or changed`,
            ...(facts ? { detail: `as it recorded: ${facts}` } : {}),
          },
        ],
      };
    },
    async run(input, ctx) {
      if (nothing || !undo) return { summary: nothing ?? "nothing to undo" };
      await undo(input, ctx);
      return { summary: `undid what run ${shortRun(source.runId!)} did` };
    },
    async verify() {
      return { ok: true, summary: nothing ?? "undone" };
    },
  };
}
