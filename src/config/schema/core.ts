/**
 * The runbook (phases and steps), who may run it, and the engine's own settings.
 */
import { z } from "zod";
import { DURATION_UNIT_MS, parseDurationTerms } from "../../text/units.js";
import { slackChannel, slackPersonOrGroup, stepId, stepType } from "./scalars.js";

export const StepSchema = z.strictObject({
  /** unique across the whole runbook (phases and steps); commands name steps by it */
  id: stepId,
  title: z.string().min(1, "is empty — give the step a short title or remove the key").optional(),
  /** the step type from the catalogue (src/jobs/catalogue.ts) */
  uses: stepType,
  /** whether the step changes the world (takes the environment lock); defaults from the catalogue */
  mutates: z.boolean().optional(),
  /** whether the step waits for a second person's approval before it runs; defaults from the catalogue */
  requiresApproval: z.boolean().optional(),
  /** options for the step type; the catalogue validates them */
  with: z.record(z.string(), z.unknown()).default({}),
  /**
   * the longest the step may take, all attempts together, e.g. "90s", "20m", "1h30m"; "none"
   * lifts the limit. Defaults from the catalogue (STEP_TIME_LIMITS); past it the step is stopped
   * and fails with what it was waiting on.
   */
  timeout: z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const seconds = parseStepDuration(v);
      if (seconds === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `${JSON.stringify(v)} is not a duration — write it like "90s", "20m", "2h" or "1h30m" (or "none" for no limit)`,
        });
        return z.NEVER;
      }
      return seconds;
    })
    .optional(),
});

/**
 * Seconds in a step duration ("90s", "20m", "1h30m", a bare number of seconds), null for
 * "none", undefined when unreadable. Between 1 s and 7 days.
 */
export function parseStepDuration(v: string | number): number | null | undefined {
  if (typeof v === "number") return Number.isInteger(v) && v >= 1 && v <= 604_800 ? v : undefined;
  if (v.trim().toLowerCase() === "none") return null;
  const terms = parseDurationTerms(v);
  // whole hours, minutes and seconds: "1.5h" or "500ms" is more likely a slip than a wish
  if (!terms?.every((t) => Number.isInteger(t.value) && t.unit !== "ms")) return undefined;
  const seconds = terms.reduce((sum, t) => sum + t.value * DURATION_UNIT_MS[t.unit], 0) / 1000;
  return seconds >= 1 && seconds <= 604_800 ? seconds : undefined;
}

export const PhaseSchema = z.strictObject({
  id: stepId,
  title: z.string().min(1, "is empty — give the phase a title, e.g. 准备 Preparation"),
  description: z.string().optional(),
  /** when the plan schedules it, free text such as "Day 1-2" */
  schedule: z.string().optional(),
  steps: z.array(StepSchema).min(1, "has no steps — list at least one step, or remove the phase"),
});

export const AccessSchema = z.strictObject({
  /** who may run, cancel and roll back: Slack user ids (U…/W…) or user-group ids (S…) */
  operators: z.array(slackPersonOrGroup).min(1, "is empty — list at least one Slack user or user-group id"),
  /** who may approve a cutover: user or user-group ids */
  approvers: z.array(slackPersonOrGroup).min(1, "is empty — list at least one Slack user or user-group id"),
  /** channels that accept commands other than help */
  channels: z.array(slackChannel).min(1, "is empty — list at least one channel id (C…)"),
  /** the name the terminal front end (`npx cutover`) acts as */
  localOperator: z.string().min(1).default("local-operator"),
});

export const EngineSchema = z
  .strictObject({
    /** attempts per step before the run fails */
    attempts: z.number().int().min(1).max(20).default(3),
    /**
     * the back-off's base (src/jobs/backoff.ts, full jitter): the wait before retry n is a random
     * time up to backoffMs × 2^(n-1), at most 5 minutes (or backoffMs, if that is longer)
     */
    backoffMs: z.number().int().min(0).max(600_000).default(2_000),
    /** most progress-message edits per second per channel */
    progressEditsPerSecond: z.number().min(0.1).max(5).default(1),
    /**
     * a step that has reported progress and then reports none for this long is stopped and
     * tried again from its checkpoint (a stalled connection); 1 s at least, for the tests
     */
    stallSeconds: z.number().int().min(1).max(86_400).default(600),
    /**
     * parts of sharded steps (a bucket sync's key ranges) each process works at once; every
     * replica, and a terminal running `npx cutover run`, takes parts from the same queue
     */
    shardWorkers: z.number().int().min(0).max(64).default(2),
  })
  .default({ attempts: 3, backoffMs: 2_000, progressEditsPerSecond: 1, stallSeconds: 600, shardWorkers: 2 });
