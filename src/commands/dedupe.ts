import type { AnyMiddlewareArgs, Middleware } from "@slack/bolt";
import type { Metrics } from "../metrics.js";
import type { Db } from "../store/client.js";
import { recordDelivery } from "../store/deliveries.js";

/** The key of an interaction (button, modal, event), the same on each of its retries. */
export function interactionKey(body: Record<string, unknown>): string | undefined {
  const type = body.type;
  if (type === "block_actions" && typeof body.trigger_id === "string") return `action:${body.trigger_id}`;
  if (type === "view_submission" && typeof body.trigger_id === "string") return `view:${body.trigger_id}`;
  if (type === "event_callback" && typeof body.event_id === "string") return `event:${body.event_id}`;
  return undefined;
}

/** True the first time a delivery key is seen (in any replica, across restarts); false for a retry. */
export async function firstDelivery(db: Db, metrics: Metrics, key: string): Promise<boolean> {
  const first = await recordDelivery(db, key);
  if (!first) metrics.duplicates.inc();
  return first;
}

/**
 * Global middleware: an interaction Slack retries is acknowledged and dropped, so nothing acts
 * twice. Slash commands are acked first and deduplicated by their listener (firstDelivery), so
 * their ack never waits on the database.
 */
export function dedupeMiddleware(db: Db, metrics: Metrics): Middleware<AnyMiddlewareArgs> {
  return async (args) => {
    const key = interactionKey(args.body as unknown as Record<string, unknown>);
    if (!key) return args.next();
    if (!(await firstDelivery(db, metrics, key))) {
      if ("ack" in args && typeof args.ack === "function") await (args.ack as () => Promise<void>)();
      return;
    }
    await args.next();
  };
}
