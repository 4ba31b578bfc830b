import type { AnyMiddlewareArgs, Middleware } from "@slack/bolt";
import type { Metrics } from "../metrics.js";
import type { Db } from "../store/client.js";

/** The key that identifies one delivery from Slack, the same on each of its retries. */
export function deliveryKey(body: Record<string, unknown>): string | undefined {
  if (typeof body.command === "string" && typeof body.trigger_id === "string")
    return `command:${body.trigger_id}`;
  const type = body.type;
  if (type === "block_actions" && typeof body.trigger_id === "string") return `action:${body.trigger_id}`;
  if (type === "view_submission" && typeof body.trigger_id === "string") return `view:${body.trigger_id}`;
  if (type === "event_callback" && typeof body.event_id === "string") return `event:${body.event_id}`;
  return undefined;
}

/**
 * Global middleware: a delivery Slack retries (same trigger or event id) is acknowledged and
 * dropped, so nothing acts twice. The record of handled deliveries lives in the state
 * database, so this holds across replicas and restarts.
 */
export function dedupeMiddleware(db: Db, metrics: Metrics): Middleware<AnyMiddlewareArgs> {
  return async (args) => {
    const key = deliveryKey(args.body as unknown as Record<string, unknown>);
    if (!key) return args.next();
    const inserted =
      await db.$executeRaw`INSERT INTO slack_deliveries (key) VALUES (${key}) ON CONFLICT DO NOTHING`;
    if (inserted === 0) {
      metrics.duplicates.inc();
      if ("ack" in args && typeof args.ack === "function") await (args.ack as () => Promise<void>)();
      return;
    }
    await args.next();
  };
}
