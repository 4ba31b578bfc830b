import type { Prisma, StepExecution } from "../generated/prisma/client.js";
import { type AuditEntry, audit } from "./audit.js";
import type { Db } from "./client.js";

/** Statuses after which a run never changes again. */
export const FINISHED_STATUSES = ["succeeded", "failed", "cancelled"] as const;

export function isFinished(status: string): boolean {
  return (FINISHED_STATUSES as readonly string[]).includes(status);
}

export interface NewRun {
  env: string;
  kind: string;
  target: string;
  dryRun: boolean;
  options: Record<string, unknown>;
  requestedBy: string;
  channel: string | null;
  idempotencyKey: string | null;
  steps: Array<{ step: string }>;
}

export type LockHolder = { runId: string; holder: string; acquiredAt: Date };

export type CreateRunResult =
  | { created: true; runId: string }
  | { created: false; reason: "duplicate"; runId: string }
  | { created: false; reason: "locked"; lock: LockHolder };

function isUniqueViolation(err: unknown): boolean {
  return (
    typeof err === "object" && err !== null && "code" in err && (err as { code: string }).code === "P2002"
  );
}

/**
 * Creates a run with its step executions and, for a mutating run, takes the environment lock in
 * the same transaction. A repeated idempotency key (a Slack retry) returns the existing run.
 */
export async function createRun(
  db: Db,
  run: NewRun,
  takeLock: boolean,
  /** the audit event of the request, written in the transaction that creates the run */
  requested?: (runId: string) => AuditEntry,
  /**
   * puts the run on the job queue inside the creating transaction (pg-boss sends on it), so a
   * run exists if and only if its job does: no window where a crash leaves a run nobody queued
   */
  enqueue?: (tx: Prisma.TransactionClient, runId: string) => Promise<unknown>,
  attempt = 1,
): Promise<CreateRunResult> {
  if (run.idempotencyKey) {
    const existing = await db.run.findUnique({ where: { idempotencyKey: run.idempotencyKey } });
    if (existing) return { created: false, reason: "duplicate", runId: existing.id };
  }
  try {
    const id = await db.$transaction(async (tx) => {
      const created = await tx.run.create({
        data: {
          env: run.env,
          kind: run.kind,
          target: run.target,
          dryRun: run.dryRun,
          options: run.options as Prisma.InputJsonValue,
          requestedBy: run.requestedBy,
          channel: run.channel,
          idempotencyKey: run.idempotencyKey,
          steps: { create: run.steps.map((s, position) => ({ step: s.step, position })) },
        },
      });
      if (takeLock) {
        await tx.envLock.create({ data: { env: run.env, runId: created.id, holder: run.requestedBy } });
      }
      if (requested) await audit(tx, requested(created.id));
      if (enqueue) await enqueue(tx, created.id);
      return created.id;
    });
    return { created: true, runId: id };
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    if (run.idempotencyKey) {
      const existing = await db.run.findUnique({ where: { idempotencyKey: run.idempotencyKey } });
      if (existing) return { created: false, reason: "duplicate", runId: existing.id };
    }
    const lock = await db.envLock.findUnique({ where: { env: run.env } });
    if (lock) return { created: false, reason: "locked", lock };
    // the lock was released between our insert and this read: try once more
    if (attempt < 3) return createRun(db, run, takeLock, requested, enqueue, attempt + 1);
    throw err;
  }
}

export async function findLock(db: Db, env: string): Promise<LockHolder | null> {
  return db.envLock.findUnique({ where: { env } });
}

/** One round trip to the state database (the health check's). */
export async function pingStateDatabase(db: Db): Promise<void> {
  await db.$queryRaw`SELECT 1`;
}

/** How many runs there are in each status (the /metrics gauge). */
export async function runsByStatus(db: Db): Promise<Array<{ status: string; n: bigint }>> {
  return db.$queryRaw<
    Array<{ status: string; n: bigint }>
  >`SELECT status, count(*) AS n FROM runs GROUP BY status`;
}

export type RunWithSteps = Prisma.RunGetPayload<{ include: { steps: true } }>;

export async function loadRun(db: Db, runId: string): Promise<RunWithSteps | null> {
  return db.run.findUnique({ where: { id: runId }, include: { steps: { orderBy: { position: "asc" } } } });
}

/** Finds a run by its full id or a unique prefix of it (people type the first 8 characters). */
export async function findRunByPrefix(db: Db, idOrPrefix: string): Promise<RunWithSteps[]> {
  const prefix = idOrPrefix.toLowerCase();
  if (!/^[0-9a-f-]{4,36}$/.test(prefix)) return [];
  const rows = await db.$queryRaw<Array<{ id: string }>>`
    SELECT id::text AS id FROM runs WHERE id::text LIKE ${`${prefix}%`} ORDER BY created_at DESC LIMIT 2`;
  const runs = await Promise.all(rows.map((r) => loadRun(db, r.id)));
  return runs.filter((r): r is RunWithSteps => r !== null);
}

export async function recentRuns(db: Db, env: string, take: number): Promise<RunWithSteps[]> {
  return db.run.findMany({
    where: { env },
    orderBy: { createdAt: "desc" },
    take,
    include: { steps: { orderBy: { position: "asc" } } },
  });
}

/** The latest execution of each step id in an environment (for `/migrate status`). */
export async function latestStepExecutions(
  db: Db,
  env: string,
): Promise<Map<string, Prisma.StepExecutionGetPayload<{ include: { run: true } }>>> {
  const rows = await db.stepExecution.findMany({
    where: { run: { env } },
    orderBy: [{ updatedAt: "desc" }],
    include: { run: true },
    take: 500,
  });
  const latest = new Map<string, (typeof rows)[number]>();
  for (const row of rows) {
    // newest first; a real execution outranks a newer dry run
    const seen = latest.get(row.step);
    if (!seen || (seen.run.dryRun && !row.run.dryRun)) latest.set(row.step, row);
  }
  return latest;
}

/** Which executions `newestExecution` looks at, and by which time it picks the newest. */
export interface NewestExecutionQuery {
  statuses: string[];
  newestBy?: "finishedAt" | "startedAt";
}

/** An execution read with the one checkpoint asked for (`checkpoints` is empty when it has none). */
export type ExecutionWithCheckpoint = Prisma.StepExecutionGetPayload<{ include: { checkpoints: true } }>;

/**
 * The newest real (not dry-run) execution in `env` of any of the step ids `steps` whose status is
 * one of `statuses`, newest by when it finished (or started). With `checkpoint`, also that
 * checkpoint of it; without, no checkpoint is read (most callers want only the times and status).
 * Null when there is none (or no step id is given).
 */
export async function newestExecution(
  db: Db,
  env: string,
  steps: string[],
  opts: NewestExecutionQuery & { checkpoint: string },
): Promise<ExecutionWithCheckpoint | null>;
export async function newestExecution(
  db: Db,
  env: string,
  steps: string[],
  opts: NewestExecutionQuery,
): Promise<StepExecution | null>;
export async function newestExecution(
  db: Db,
  env: string,
  steps: string[],
  opts: NewestExecutionQuery & { checkpoint?: string },
): Promise<StepExecution | null> {
  if (steps.length === 0) return null;
  const newestBy = opts.newestBy ?? "finishedAt";
  return db.stepExecution.findFirst({
    where: {
      step: { in: steps },
      status: { in: opts.statuses },
      run: { env, dryRun: false },
      ...(newestBy === "finishedAt" ? { finishedAt: { not: null } } : {}),
    },
    orderBy: { [newestBy]: "desc" },
    ...(opts.checkpoint === undefined
      ? {}
      : { include: { checkpoints: { where: { key: opts.checkpoint } } } }),
  });
}

/** Marks a run to be cancelled (any worker on any replica sees it) and audits who asked. */
export async function requestCancel(db: Db, runId: string, by: string, target: string): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.run.update({ where: { id: runId }, data: { cancelRequestedBy: by } });
    await audit(tx, { actor: by, action: "run.cancel", target, outcome: "ok", runId });
  });
}

/** Who asked to cancel a run, if anyone: how a cancel reaches the replica working it. */
export async function cancelRequestedBy(db: Db, runId: string): Promise<string | null> {
  const row = await db.run.findUnique({ where: { id: runId }, select: { cancelRequestedBy: true } });
  return row?.cancelRequestedBy ?? null;
}

export async function findRun(db: Db, runId: string) {
  return db.run.findUnique({ where: { id: runId } });
}

/** Runs not finished: queued or running (the recovery sweep looks for ones nobody works). */
export async function unfinishedRunIds(db: Db): Promise<string[]> {
  const rows = await db.run.findMany({
    where: { status: { in: ["queued", "running"] } },
    select: { id: true },
  });
  return rows.map((r) => r.id);
}

/** Unfinished runs of the given targets (a rollback cancels the cutover runs under way). */
export async function unfinishedRunsOf(db: Db, targets: string[]) {
  return db.run.findMany({ where: { status: { in: ["queued", "running"] }, target: { in: targets } } });
}

/** A worker starts (or resumes, when it was running) a run. */
export async function markRunStarted(db: Db, run: RunWithSteps, now: Date): Promise<void> {
  const resumed = run.status === "running";
  await db.$transaction(async (tx) => {
    await tx.run.update({
      where: { id: run.id },
      data: { status: "running", startedAt: run.startedAt ?? now },
    });
    await audit(tx, {
      actor: "cutover",
      action: resumed ? "run.resume" : "run.start",
      target: run.target,
      outcome: "started",
      runId: run.id,
    });
  });
}

export type FinishedStatus = "succeeded" | "failed" | "cancelled";

/**
 * Finishes a run in one transaction with everything that goes with it: the steps it leaves
 * behind (`rest`), the lock, and the `run.finish` event. Whoever sees the run finished sees its
 * steps finished, the lock free and the event written; a crash commits all or none of them.
 */
export async function finishRun(
  db: Db,
  runId: string,
  status: FinishedStatus,
  error: string | null,
  now: Date,
  rest?: { steps: Array<"pending" | "running">; to: "cancelled" | "skipped" },
): Promise<void> {
  await db.$transaction(async (tx) => {
    if (rest) {
      await tx.stepExecution.updateMany({
        where: { runId, status: { in: rest.steps } },
        data: { status: rest.to, ...(rest.to === "cancelled" ? { finishedAt: now } : {}) },
      });
    }
    const finished = await tx.run.update({ where: { id: runId }, data: { status, error, finishedAt: now } });
    await tx.envLock.deleteMany({ where: { env: finished.env, runId } });
    await audit(tx, {
      actor: "cutover",
      action: "run.finish",
      target: finished.target,
      outcome: status === "succeeded" ? "ok" : status === "cancelled" ? "info" : "failed",
      runId,
      details: error ? { status, error } : { status },
    });
  });
}

/** The channel a run was asked for in (its message goes there). */
export async function runChannel(db: Db, runId: string): Promise<string | null> {
  const row = await db.run.findUnique({ where: { id: runId }, select: { channel: true } });
  return row?.channel ?? null;
}

/** Stores the run's Slack message once: true for the first process to claim it. */
export async function claimRunMessage(db: Db, runId: string, ts: string): Promise<boolean> {
  const claimed = await db.run.updateMany({ where: { id: runId, messageTs: null }, data: { messageTs: ts } });
  return claimed.count === 1;
}

export async function runMessageTs(db: Db, runId: string): Promise<string | null> {
  const row = await db.run.findUnique({ where: { id: runId }, select: { messageTs: true } });
  return row?.messageTs ?? null;
}
