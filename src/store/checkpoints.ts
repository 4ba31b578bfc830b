import type { Prisma } from "../generated/prisma/client.js";
import type { Db } from "./client.js";

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
