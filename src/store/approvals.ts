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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An approval id is a UUID; anything else (a forged or mangled button value) names no request. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

export interface NewApproval {
  action: string;
  change: unknown;
  requestedBy: string;
  channel: string | null;
  expiresAt: Date;
  runId?: string | null;
}

/** The key that holds a request live: one per kind of request and environment. */
export function liveKeyOf(action: string, change: unknown): string {
  const env = (change as { environment?: unknown } | null)?.environment;
  return `${action}:${typeof env === "string" ? env : ""}`;
}

/** Another request of the same kind and environment is live (pending or approved). */
export class LiveRequestExists extends Error {
  constructor(readonly holder: Approval) {
    super(`a ${holder.action} request from ${holder.requestedBy} is already ${holder.status}`);
  }
}

/**
 * Stores a pending request. At most one request per kind and environment is live (pending or
 * approved): the unique `live_key` index decides, so of twenty concurrent requests exactly one is
 * stored and the rest get {@link LiveRequestExists}. A live request past its expiry is expired
 * first, so it never blocks a new one.
 */
export async function createApproval(db: Db, req: NewApproval, now = new Date()): Promise<Approval> {
  const liveKey = liveKeyOf(req.action, req.change);
  await db.approval.updateMany({
    where: { liveKey, expiresAt: { lte: now } },
    data: { status: "expired", liveKey: null },
  });
  try {
    return await createRow(db, req, liveKey);
  } catch (err) {
    if ((err as { code?: string }).code !== "P2002") throw err;
    const holder = await db.approval.findUnique({ where: { liveKey } });
    // the holder was decided between our insert and this read: one more try, then give up
    if (!holder) return createRow(db, req, liveKey);
    throw new LiveRequestExists(holder);
  }
}

async function createRow(db: Db, req: NewApproval, liveKey: string): Promise<Approval> {
  return db.approval.create({
    data: {
      liveKey,
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
      ...(decision.approve ? {} : { liveKey: null }),
      decidedBy: decision.by,
      decidedAt: now,
      note: decision.note ?? null,
    },
  });
  const after = await db.approval.findUniqueOrThrow({ where: { id } });
  if (changed.count === 1) return { ok: true, approval: after };
  if (after.status === "pending" && after.expiresAt <= now) {
    await db.approval.updateMany({
      where: { id, status: "pending" },
      data: { status: "expired", liveKey: null },
    });
    return { ok: false, reason: "expired", approval: { ...after, status: "expired" } };
  }
  return { ok: false, reason: "already_decided", approval: after };
}

/** The requester takes the request back while it is still pending. */
export async function withdrawApproval(db: Db, id: string, by: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  const changed = await db.approval.updateMany({
    where: { id, status: "pending", requestedBy: by },
    data: { status: "withdrawn", decidedBy: by, decidedAt: new Date(), liveKey: null },
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
    data: { status: "used", usedAt: now, liveKey: null, ...(runId ? { runId } : {}) },
  });
  if (changed.count === 1) {
    const used = await db.approval.findUniqueOrThrow({ where: { id } });
    const env = (used.change as { environment?: unknown } | null)?.environment;
    if (typeof env === "string") await voidOtherApprovals(db, used.action, env, id);
    return { ok: true };
  }
  const row = await db.approval.findUnique({ where: { id } });
  if (!row || row.status === "pending" || row.status === "rejected" || row.status === "withdrawn")
    return { ok: false, reason: "not_approved" };
  if (row.status === "used" && runId !== undefined && row.runId === runId && row.changeHash === hash)
    return { ok: true };
  if (row.status === "used") return { ok: false, reason: "used" };
  if (row.expiresAt <= now) return { ok: false, reason: "expired" };
  if (row.changeHash !== hash) {
    await db.approval.updateMany({
      where: { id, status: "approved" },
      data: { status: "void", liveKey: null },
    });
    return { ok: false, reason: "changed" };
  }
  return { ok: false, reason: "not_approved" };
}

/**
 * An approval is good for the one switch it was given for: once a cutover is carried out or
 * rolled back, every other pending or approved request of that kind and environment is void, so
 * a spare can never switch production later. Returns how many were voided.
 */
export async function voidOtherApprovals(
  db: Db,
  action: string,
  environment: string,
  except?: string,
): Promise<number> {
  const voided = await db.approval.updateMany({
    where: {
      action,
      status: { in: ["pending", "approved"] },
      change: { path: ["environment"], equals: environment },
      ...(except ? { id: { not: except } } : {}),
    },
    data: { status: "void", liveKey: null },
  });
  return voided.count;
}

/** A request by its id; null for an id that is not one (a forged or mangled button value). */
export async function findApproval(db: Db, id: string): Promise<Approval | null> {
  return isUuid(id) ? db.approval.findUnique({ where: { id } }) : null;
}

export async function getApproval(db: Db, id: string): Promise<Approval> {
  return db.approval.findUniqueOrThrow({ where: { id } });
}

/** The cutover request of an environment still pending or approved and not expired at `now`. */
export async function liveCutoverRequest(db: Db, env: string, now: Date): Promise<Approval | null> {
  return openRequest(db, "dns.cutover", now, env);
}

/**
 * A request of `action` still pending or approved and not expired at `now` (of environment `env`
 * when given).
 */
export async function openRequest(db: Db, action: string, now: Date, env?: string): Promise<Approval | null> {
  return db.approval.findFirst({
    where: {
      action,
      status: { in: ["pending", "approved"] },
      expiresAt: { gt: now },
      ...(env === undefined ? {} : { change: { path: ["environment"], equals: env } }),
    },
  });
}

/**
 * The newest approved, unused and unexpired request of `action` (of environment `env` when
 * given): the one a step run by hand goes ahead on.
 */
export async function readyApproval(
  db: Db,
  action: string,
  now: Date,
  env?: string,
): Promise<Approval | null> {
  return db.approval.findFirst({
    where: {
      action,
      status: "approved",
      expiresAt: { gt: now },
      ...(env === undefined ? {} : { change: { path: ["environment"], equals: env } }),
    },
    orderBy: { decidedAt: "desc" },
  });
}

/** The newest request of `action` for environment `env` that a step used (the switch that went ahead). */
export async function lastUsedApproval(db: Db, action: string, env: string): Promise<Approval | null> {
  return db.approval.findFirst({
    where: { action, status: "used", change: { path: ["environment"], equals: env } },
    orderBy: { usedAt: "desc" },
  });
}

/** Every request still waiting for its second person at `now`, oldest first (the digest's "waiting"). */
export async function pendingRequests(db: Db, now: Date) {
  return db.approval.findMany({
    where: { status: "pending", expiresAt: { gt: now } },
    orderBy: { createdAt: "asc" },
    select: { action: true, requestedBy: true, expiresAt: true },
  });
}

/** Where a request was posted (its message, to edit later), and why it went ahead outside the window. */
export async function setApprovalMessage(
  db: Db,
  id: string,
  messageTs: string,
  note?: string | null,
): Promise<void> {
  await db.approval.update({ where: { id }, data: { messageTs, ...(note === undefined ? {} : { note }) } });
}

/** The run carrying out an approved request. */
export async function setApprovalRun(db: Db, id: string, runId: string): Promise<void> {
  await db.approval.update({ where: { id }, data: { runId } });
}
