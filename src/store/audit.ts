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

/** The latest event of `action` about `target` (the last rollback started, the last switch). */
export async function lastAuditEvent(db: Db, action: string, target: string) {
  return db.auditEvent.findFirst({ where: { action, target }, orderBy: { id: "desc" } });
}

/** The first event of one of `actions` about `target` written after event `afterId`. */
export async function auditEventAfter(db: Db, afterId: bigint | number, target: string, actions: string[]) {
  return db.auditEvent.findFirst({ where: { id: { gt: afterId }, target, action: { in: actions } } });
}
