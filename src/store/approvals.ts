import { createHash } from "node:crypto";
import type { Approval, Prisma } from "../generated/prisma/client.js";
import type { Db } from "./client.js";

/** JSON with keys sorted at every level, so equal changes hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The hash an approval is bound to: if anything in the change differs later, the approval is void. */
export function hashChange(change: unknown): string {
  return createHash("sha256").update(canonicalJson(change)).digest("hex");
}

export interface NewApproval {
  action: string;
  change: unknown;
  requestedBy: string;
  channel: string | null;
  expiresAt: Date;
  runId?: string | null;
}

export async function createApproval(db: Db, req: NewApproval): Promise<Approval> {
  return db.approval.create({
    data: {
      action: req.action,
      change: req.change as Prisma.InputJsonValue,
      changeHash: hashChange(req.change),
      requestedBy: req.requestedBy,
      channel: req.channel,
      expiresAt: req.expiresAt,
      runId: req.runId ?? null,
    },
  });
}

export type DecideResult =
  | { ok: true; approval: Approval }
  | { ok: false; reason: "not_found" | "self" | "expired" | "already_decided"; approval?: Approval };

/**
 * Approves or rejects a pending request. The UPDATE's WHERE clause is the arbiter: of two people
 * clicking at once exactly one changes the row, and an expired or self-approval changes nothing.
 */
export async function decideApproval(
  db: Db,
  id: string,
  decision: { by: string; approve: boolean; note?: string | null; now?: Date },
): Promise<DecideResult> {
  const now = decision.now ?? new Date();
  const current = await db.approval.findUnique({ where: { id } });
  if (!current) return { ok: false, reason: "not_found" };
  if (current.requestedBy === decision.by) return { ok: false, reason: "self", approval: current };
  const changed = await db.approval.updateMany({
    where: { id, status: "pending", expiresAt: { gt: now }, requestedBy: { not: decision.by } },
    data: {
      status: decision.approve ? "approved" : "rejected",
      decidedBy: decision.by,
      decidedAt: now,
      note: decision.note ?? null,
    },
  });
  const after = await db.approval.findUniqueOrThrow({ where: { id } });
  if (changed.count === 1) return { ok: true, approval: after };
  if (after.status === "pending" && after.expiresAt <= now) {
    await db.approval.updateMany({ where: { id, status: "pending" }, data: { status: "expired" } });
    return { ok: false, reason: "expired", approval: { ...after, status: "expired" } };
  }
  return { ok: false, reason: "already_decided", approval: after };
}

/** The requester takes the request back while it is still pending. */
export async function withdrawApproval(db: Db, id: string, by: string): Promise<boolean> {
  const changed = await db.approval.updateMany({
    where: { id, status: "pending", requestedBy: by },
    data: { status: "withdrawn", decidedBy: by, decidedAt: new Date() },
  });
  return changed.count === 1;
}

export type ConsumeResult =
  | { ok: true }
  | { ok: false; reason: "not_approved" | "expired" | "changed" | "used" };

/**
 * Uses an approval once, for exactly the change it was given for. `currentChange` is the change
 * as computed now, from live state: any difference from the approved one voids the approval.
 */
export async function consumeApproval(
  db: Db,
  id: string,
  currentChange: unknown,
  now = new Date(),
  /** the run carrying it out: recorded on the approval, and a rerun of that same run after a
   *  crash between using the approval and its first checkpoint finds it used by itself */
  runId?: string,
): Promise<ConsumeResult> {
  const hash = hashChange(currentChange);
  const changed = await db.approval.updateMany({
    where: { id, status: "approved", changeHash: hash, expiresAt: { gt: now } },
    data: { status: "used", usedAt: now, ...(runId ? { runId } : {}) },
  });
  if (changed.count === 1) return { ok: true };
  const row = await db.approval.findUnique({ where: { id } });
  if (!row || row.status === "pending" || row.status === "rejected" || row.status === "withdrawn")
    return { ok: false, reason: "not_approved" };
  if (row.status === "used" && runId !== undefined && row.runId === runId && row.changeHash === hash)
    return { ok: true };
  if (row.status === "used") return { ok: false, reason: "used" };
  if (row.expiresAt <= now) return { ok: false, reason: "expired" };
  if (row.changeHash !== hash) {
    await db.approval.updateMany({ where: { id, status: "approved" }, data: { status: "void" } });
    return { ok: false, reason: "changed" };
  }
  return { ok: false, reason: "not_approved" };
}
