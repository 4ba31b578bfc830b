import type { Clock } from "../clock.js";
import type { Prisma } from "../generated/prisma/client.js";
import { audit } from "./audit.js";
import type { Db } from "./client.js";

/** One attempt of one step execution, as the records name it. */
export interface AttemptRef {
  runId: string;
  executionId: string;
  /** the step's id in the runbook */
  step: string;
  attempt: number;
}

/**
 * What the step executor writes about a step execution. Each transition and its audit event
 * commit together. The state database implements it ({@link stepRecords}); a test can keep it
 * in memory.
 */
export interface StepRecords {
  /** copies the checkpoints of the step's last unfinished execution, once (a rerun resumes) */
  inheritCheckpoints(executionId: string, step: string, env: string): Promise<void>;
  /** for an undo run: copies the checkpoints of the step's last real execution, and says whose */
  borrowCheckpoints(executionId: string, step: string, env: string): Promise<UndoSource>;
  checkpoints(executionId: string): CheckpointRecords;
  attemptStarted(a: AttemptRef, dryRun: boolean, firstStartedAt: Date | null): Promise<void>;
  planned(a: AttemptRef, plan: unknown): Promise<void>;
  succeeded(a: AttemptRef, result: unknown): Promise<void>;
  /** an attempt failed and the step will be tried again */
  retrying(a: AttemptRef, message: string): Promise<void>;
  /** the step gave up; `attemptFailed` when this attempt's failure is what ended it (audited as one) */
  failed(a: AttemptRef, message: string, attemptFailed: boolean): Promise<void>;
  /** stopped by a shutdown: back to pending, resumed from its checkpoints by the next worker */
  interrupted(executionId: string): Promise<void>;
  cancelled(a: AttemptRef, by: string | undefined, message: string): Promise<void>;
  progress(executionId: string, value: unknown): Promise<void>;
}

const json = (v: unknown) => v as Prisma.InputJsonValue;

/** {@link StepRecords} on the state database. */
export function stepRecords(db: Db, clock: Clock): StepRecords {
  const attemptAudit = (a: AttemptRef, message: string) =>
    ({
      actor: "cutover",
      action: "step.attempt",
      target: a.step,
      outcome: "failed",
      runId: a.runId,
      details: { attempt: a.attempt, error: message },
    }) as const;
  const finishedAudit = (a: AttemptRef, action: string) =>
    ({
      actor: "cutover",
      action,
      target: a.step,
      outcome: "ok",
      runId: a.runId,
      details: { attempt: a.attempt },
    }) as const;
  return {
    inheritCheckpoints: (executionId, step, env) => inheritCheckpoints(db, executionId, step, env),
    borrowCheckpoints: (executionId, step, env) => borrowCheckpoints(db, executionId, step, env),
    checkpoints: (executionId) => checkpointStore(db, executionId),
    async attemptStarted(a, dryRun, firstStartedAt) {
      await db.$transaction(async (tx) => {
        await tx.stepExecution.update({
          where: { id: a.executionId },
          data: {
            status: "running",
            attempts: a.attempt,
            startedAt: firstStartedAt ?? clock.now(),
            error: null,
          },
        });
        await audit(tx, {
          actor: "cutover",
          action: dryRun ? "step.plan" : "step.start",
          target: a.step,
          outcome: "started",
          runId: a.runId,
          details: { attempt: a.attempt },
        });
      });
    },
    async planned(a, plan) {
      await db.$transaction(async (tx) => {
        await tx.stepExecution.update({
          where: { id: a.executionId },
          data: { status: "succeeded", plan: json(plan), finishedAt: clock.now() },
        });
        await audit(tx, finishedAudit(a, "step.plan"));
      });
    },
    async succeeded(a, result) {
      await db.$transaction(async (tx) => {
        await tx.stepExecution.update({
          where: { id: a.executionId },
          data: { status: "succeeded", result: json(result), finishedAt: clock.now() },
        });
        await audit(tx, finishedAudit(a, "step.finish"));
      });
    },
    async retrying(a, message) {
      await db.$transaction(async (tx) => {
        await tx.stepExecution.update({ where: { id: a.executionId }, data: { error: message } });
        await audit(tx, attemptAudit(a, message));
      });
    },
    async failed(a, message, attemptFailed) {
      await db.$transaction(async (tx) => {
        if (attemptFailed) await audit(tx, attemptAudit(a, message));
        await tx.stepExecution.update({
          where: { id: a.executionId },
          data: { status: "failed", error: message, finishedAt: clock.now() },
        });
        await audit(tx, {
          actor: "cutover",
          action: "step.fail",
          target: a.step,
          outcome: "failed",
          runId: a.runId,
          details: { error: message },
        });
      });
    },
    async interrupted(executionId) {
      await db.stepExecution.update({ where: { id: executionId }, data: { status: "pending" } });
    },
    async cancelled(a, by, message) {
      await db.$transaction(async (tx) => {
        await tx.stepExecution.update({
          where: { id: a.executionId },
          data: { status: "cancelled", error: message, finishedAt: clock.now() },
        });
        await audit(tx, {
          actor: by ?? "cutover",
          action: "step.cancel",
          target: a.step,
          outcome: "info",
          runId: a.runId,
        });
      });
    },
    async progress(executionId, value) {
      await db.stepExecution.update({ where: { id: executionId }, data: { progress: json(value) } });
    },
  };
}

/** A step execution with its run, for a worker taking one of its parts. */
export async function loadExecution(db: Db, executionId: string) {
  return db.stepExecution.findUnique({ where: { id: executionId }, include: { run: true } });
}

/** The error a failed step execution stored. */
export async function stepError(db: Db, executionId: string): Promise<string | null> {
  const row = await db.stepExecution.findUnique({ where: { id: executionId }, select: { error: true } });
  return row?.error ?? null;
}

/** The results of the latest real, successful executions of these steps in an environment, newest first. */
export async function latestResults(
  db: Db,
  env: string,
  stepIds: string[],
  take: number,
): Promise<unknown[]> {
  const rows = await db.stepExecution.findMany({
    where: { step: { in: stepIds }, status: "succeeded", run: { env, dryRun: false } },
    orderBy: { finishedAt: "desc" },
    take,
    select: { result: true },
  });
  return rows.map((r) => r.result);
}

/**
 * Resume points of one step execution, by key. The shape the step context exposes
 * (`ctx.checkpoint`); typed keys are declared on top of it by each step.
 */
export interface CheckpointRecords {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

/** A checkpoint store on the state database: one row per (execution, key). */
export function checkpointStore(db: Db, executionId: string, keyPrefix = ""): CheckpointRecords {
  return {
    async get<T>(key: string) {
      const row = await db.checkpoint.findUnique({
        where: { executionId_key: { executionId, key: keyPrefix + key } },
      });
      return row ? (row.value as T) : undefined;
    },
    async set(key, value) {
      const json = value as Prisma.InputJsonValue;
      await db.checkpoint.upsert({
        where: { executionId_key: { executionId, key: keyPrefix + key } },
        create: { executionId, key: keyPrefix + key, value: json },
        update: { value: json },
      });
    },
  };
}

/** Every checkpoint of an execution whose key starts with `keyPrefix` (a sharded step's parts). */
export async function checkpointsUnder(
  db: Db,
  executionId: string,
  keyPrefix: string,
): Promise<Array<{ key: string; value: Prisma.JsonValue }>> {
  return db.checkpoint.findMany({
    where: { executionId, key: { startsWith: keyPrefix } },
    select: { key: true, value: true },
  });
}

export async function deleteCheckpoint(db: Db, executionId: string, key: string): Promise<void> {
  await db.checkpoint.deleteMany({ where: { executionId, key } });
}

/**
 * The execution a rerun resumes from and an undo undoes: of the earlier real (not dry-run)
 * executions of `step` in `env` that ended, the newest. Query arguments, so that each caller
 * includes what it reads of it.
 */
function lastEnded(executionId: string, step: string, env: string) {
  return {
    where: {
      step,
      id: { not: executionId },
      status: { in: ["failed", "cancelled", "succeeded"] },
      run: { env, dryRun: false },
    },
    orderBy: { updatedAt: "desc" },
  } satisfies Prisma.StepExecutionFindFirstArgs;
}

/** Copies another execution's checkpoints into `executionId` (a key it has already is kept). */
async function copyCheckpoints(
  db: Db,
  executionId: string,
  from: ReadonlyArray<{ key: string; value: Prisma.JsonValue }>,
): Promise<void> {
  await db.checkpoint.createMany({
    data: from.map((c) => ({ executionId, key: c.key, value: c.value as Prisma.InputJsonValue })),
    skipDuplicates: true,
  });
}

/**
 * A rerun after a failure or a cancel starts from where the last unfinished execution of the same
 * step stopped: its checkpoints are copied into the new execution once, before its first attempt.
 */
export async function inheritCheckpoints(
  db: Db,
  executionId: string,
  step: string,
  env: string,
): Promise<void> {
  const own = await db.checkpoint.count({ where: { executionId } });
  if (own > 0) return;
  // Only the latest earlier execution counts: after a success, a rerun starts afresh.
  const previous = await db.stepExecution.findFirst({
    ...lastEnded(executionId, step, env),
    include: { checkpoints: true },
  });
  if (!previous || previous.status === "succeeded" || previous.checkpoints.length === 0) return;
  await copyCheckpoints(db, executionId, previous.checkpoints);
}

/** What an undo step knows of the run it undoes. */
export interface UndoSource {
  /** the run whose execution of the step is undone; absent when the step never ran here */
  runId?: string;
  /** true when the last thing done to the step was an undo that finished */
  alreadyUndone: boolean;
  /** what the step recorded as it ran, shown in the preview */
  recorded: Record<string, unknown>;
}

/** Whether a run's options make it an undo (`/migrate undo`, src/jobs/undo.ts). */
export function isUndoOptions(options: unknown): boolean {
  return typeof options === "object" && options !== null && (options as { undo?: unknown }).undo === true;
}

/**
 * Gives an undo execution the checkpoints of the step's last real execution (any outcome: an
 * aborted run is the usual reason to undo), so the step's `undo` reads what that run created.
 */
export async function borrowCheckpoints(
  db: Db,
  executionId: string,
  step: string,
  env: string,
): Promise<UndoSource> {
  const last = await db.stepExecution.findFirst({
    ...lastEnded(executionId, step, env),
    include: { checkpoints: true, run: { select: { id: true, options: true } } },
  });
  if (!last) return { alreadyUndone: false, recorded: {} };
  if (isUndoOptions(last.run.options)) {
    if (last.status === "succeeded") return { runId: last.run.id, alreadyUndone: true, recorded: {} };
    // an undo that failed part-way: its checkpoints are those it borrowed, carried on from there
  }
  const recorded = Object.fromEntries(last.checkpoints.map((c) => [c.key, c.value]));
  if ((await db.checkpoint.count({ where: { executionId } })) === 0 && last.checkpoints.length > 0) {
    await copyCheckpoints(db, executionId, last.checkpoints);
  }
  return { runId: last.run.id, alreadyUndone: false, recorded };
}
