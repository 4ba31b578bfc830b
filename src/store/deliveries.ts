import type { Db } from "./client.js";

/** Records a Slack delivery key; true the first time it is seen (in any replica, across restarts). */
export async function recordDelivery(db: Db, key: string): Promise<boolean> {
  const inserted =
    await db.$executeRaw`INSERT INTO slack_deliveries (key) VALUES (${key}) ON CONFLICT DO NOTHING`;
  return inserted === 1;
}
