import type { Db } from "./client.js";

// What the bot keeps of Slack's traffic: the deliveries it has seen (so a retry acts once) and the
// modals it opened (so a submission can be told from a forged one).

/** A modal the bot opened, as Slack answered `views.open`. */
export interface OpenedView {
  viewId: string;
  hash: string;
  callbackId: string;
  /** the person it was opened for */
  userId: string;
  /** what it is about: an approval id, or the hash of the rollback values it showed */
  request: string;
}

/** Remembers a modal the bot opened, so its submission can be told from a forged one. */
export async function recordView(db: Db, view: OpenedView): Promise<void> {
  await db.slackView.upsert({
    where: { viewId: view.viewId },
    create: view,
    update: { hash: view.hash, callbackId: view.callbackId, userId: view.userId, request: view.request },
  });
}

export type ViewCheck =
  | { ok: true; request: string }
  | {
      ok: false;
      reason: "not opened by the bot" | "opened for someone else" | "changed" | "already submitted";
    };

/**
 * Whether a submission comes from a modal the bot opened for this person: same view id, the hash
 * Slack gave it, the same callback, the same person, not yet submitted. Reads only; a handler
 * that accepts the submission then {@link claimView}s it.
 */
export async function checkView(
  db: Db,
  sub: { viewId: string | undefined; hash: string | undefined; callbackId: string; userId: string },
): Promise<ViewCheck> {
  const row = sub.viewId ? await db.slackView.findUnique({ where: { viewId: sub.viewId } }) : null;
  if (!row || row.callbackId !== sub.callbackId) return { ok: false, reason: "not opened by the bot" };
  if (row.userId !== sub.userId) return { ok: false, reason: "opened for someone else" };
  if (row.hash !== sub.hash) return { ok: false, reason: "changed" };
  if (row.usedAt) return { ok: false, reason: "already submitted" };
  return { ok: true, request: row.request };
}

/** Marks a view submitted, once: of two submissions of one view exactly one gets true. */
export async function claimView(db: Db, viewId: string, now: Date): Promise<boolean> {
  const claimed = await db.slackView.updateMany({ where: { viewId, usedAt: null }, data: { usedAt: now } });
  return claimed.count === 1;
}

/** Records a Slack delivery key; true the first time it is seen (in any replica, across restarts). */
export async function recordDelivery(db: Db, key: string): Promise<boolean> {
  const inserted =
    await db.$executeRaw`INSERT INTO slack_deliveries (key) VALUES (${key}) ON CONFLICT DO NOTHING`;
  return inserted === 1;
}
