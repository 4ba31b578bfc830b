import type { Prisma } from "../generated/prisma/client.js";
import type { Db } from "./client.js";

export type AuditOutcome = "ok" | "refused" | "failed" | "started" | "info";

export interface AuditEntry {
  actor: string;
  action: string;
  target?: string | null;
  outcome: AuditOutcome;
  details?: Record<string, unknown>;
  runId?: string | null;
}

/** What {@link audit} writes with: the client, or a transaction's, so a change and its event commit together. */
export type AuditWriter = Pick<Db, "auditEvent">;

/** Appends one audit event. Callers pass facts, never secrets. */
export async function audit(db: AuditWriter, entry: AuditEntry): Promise<void> {
  await db.auditEvent.create({
    data: {
      actor: entry.actor,
      action: entry.action,
      target: entry.target ?? null,
      outcome: entry.outcome,
      details: (entry.details ?? {}) as Prisma.InputJsonValue,
      runId: entry.runId ?? null,
    },
  });
}

export async function recentAudit(db: Db, take: number) {
  return db.auditEvent.findMany({ orderBy: { id: "desc" }, take });
}

/**
 * The latest event of `action` about `target` (the last rollback started, the last switch), or
 * the latest with `outcome` only.
 */
export async function lastAuditEvent(db: Db, action: string, target: string, outcome?: AuditOutcome) {
  return db.auditEvent.findFirst({
    where: { action, target, ...(outcome ? { outcome } : {}) },
    orderBy: { id: "desc" },
  });
}

/** The newest freeze or unfreeze of a database side (`details.side`) of an environment. */
export async function lastFreezeEvent(db: Db, env: string, side: string) {
  return db.auditEvent.findFirst({
    where: {
      action: { in: ["db.freeze", "db.unfreeze"] },
      target: env,
      details: { path: ["side"], equals: side },
    },
    orderBy: { id: "desc" },
  });
}

/** The first event of one of `actions` about `target` written after event `afterId`. */
export async function auditEventAfter(db: Db, afterId: bigint | number, target: string, actions: string[]) {
  return db.auditEvent.findFirst({ where: { id: { gt: afterId }, target, action: { in: actions } } });
}
