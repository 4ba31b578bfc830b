import type { Prisma } from "../generated/prisma/client.js";
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
    if (attempt < 3) return createRun(db, run, takeLock, requested, attempt + 1);
    throw err;
  }
}

export async function findLock(db: Db, env: string): Promise<LockHolder | null> {
  return db.envLock.findUnique({ where: { env } });
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
