import type { Prisma } from "../generated/prisma/client.js";
import type { Db } from "./client.js";

/**
 * Cost Explorer's answers, one per key (`usage:<env>`, `forecast:<env>`, …), kept for the UTC day
 * they were fetched on: Cost Explorer charges per request (src/cloud/cost-explorer.ts).
 */

/** The answer stored under `key` when it was fetched on `day` (YYYY-MM-DD, UTC); undefined otherwise. */
export async function cachedCost<T>(
  db: Db,
  key: string,
  day: string,
): Promise<{ value: T; fetchedAt: Date } | undefined> {
  const row = await db.costCache.findUnique({ where: { key } });
  if (!row || row.day !== day) return undefined;
  return { value: (row.value as { v: T }).v, fetchedAt: row.fetchedAt };
}

/** Stores `value` under `key` for `day`, replacing what was there. */
export async function storeCost<T>(
  db: Db,
  key: string,
  day: string,
  fetchedAt: Date,
  value: T,
): Promise<void> {
  // wrapped: a JSON column cannot hold a bare null
  const json = { v: value ?? null } as unknown as Prisma.InputJsonValue;
  await db.costCache.upsert({
    where: { key },
    create: { key, day, fetchedAt, value: json },
    update: { day, fetchedAt, value: json },
  });
}
