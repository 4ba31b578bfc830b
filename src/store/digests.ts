import type { Db } from "./client.js";

/** The daily digest's record per (environment, day): which replica posts it, and what came of it. */

/**
 * Claims the digest of (env, day) for `by`. True for exactly one caller: the one whose insert
 * created the row, or who took over a claim left stale (older than `leaseMs`, its process
 * presumably gone) or a failed one (at least `retryMs` old).
 */
export async function claimDigestDay(
  db: Db,
  opts: {
    env: string;
    day: string;
    by: string;
    now: Date;
    leaseMs: number;
    retryMs: number;
    channel?: string;
  },
): Promise<boolean> {
  const inserted = await db.digest.createMany({
    data: [
      {
        env: opts.env,
        day: opts.day,
        claimedBy: opts.by,
        claimedAt: opts.now,
        channel: opts.channel ?? null,
      },
    ],
    skipDuplicates: true,
  });
  if (inserted.count === 1) return true;
  const taken = await db.digest.updateMany({
    where: {
      env: opts.env,
      day: opts.day,
      OR: [
        { status: "claimed", claimedAt: { lte: new Date(opts.now.getTime() - opts.leaseMs) } },
        { status: "failed", claimedAt: { lte: new Date(opts.now.getTime() - opts.retryMs) } },
      ],
    },
    data: { status: "claimed", claimedBy: opts.by, claimedAt: opts.now, error: null },
  });
  return taken.count === 1;
}

/** Records the digest of (env, day) as posted: where, and its files (`note`: why without charts). */
export async function markDigestPosted(
  db: Db,
  env: string,
  day: string,
  posted: {
    at: Date;
    channel: string;
    ts?: string | undefined;
    fileIds: string[];
    note?: string | undefined;
  },
): Promise<void> {
  await db.digest.update({
    where: { env_day: { env, day } },
    data: {
      status: "posted",
      postedAt: posted.at,
      channel: posted.channel,
      messageTs: posted.ts ?? null,
      fileIds: posted.fileIds,
      error: posted.note ?? null,
    },
  });
}

/** Records the digest of (env, day) as failed with `error`: another tick may take it after the retry wait. */
export async function markDigestFailed(db: Db, env: string, day: string, error: string): Promise<void> {
  await db.digest.update({ where: { env_day: { env, day } }, data: { status: "failed", error } });
}
