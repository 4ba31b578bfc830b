import type { Clock } from "../clock.js";
import type { Prisma } from "../generated/prisma/client.js";
import { audit } from "./audit.js";
import {
  borrowCheckpoints,
  type CheckpointRecords,
  checkpointStore,
  inheritCheckpoints,
  type UndoSource,
} from "./checkpoints.js";
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
