import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { AnyMiddlewareArgs, Middleware } from "@slack/bolt";
import type { Metrics } from "../metrics.js";
import type { Db } from "../store/client.js";
import { recordDelivery } from "../store/slack.js";

// Every request's checks before a listener sees it: a timestamp from the future is refused at the
// receiver, and a delivery Slack retries is acked and dropped.

/** How far a request's timestamp may be from the clock, either way: Slack's own five minutes. */
export const REQUEST_SKEW_SECONDS = 5 * 60;

/**
 * Wraps the HTTP receiver's listener so a signed request whose `x-slack-request-timestamp` is
 * more than five minutes in the future is refused with 401, as Bolt already refuses one more than
 * five minutes old. A signature over a future time would otherwise stay replayable for as long as
 * the forger chose.
 */
export function refuseFutureRequests(
  inner: RequestListener,
  now: () => Date,
  onRefused: (ts: string) => void = () => undefined,
): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const header = req.headers["x-slack-request-timestamp"];
    const ts = Number(Array.isArray(header) ? header[0] : header);
    if (Number.isFinite(ts) && ts - now().getTime() / 1000 > REQUEST_SKEW_SECONDS) {
      onRefused(String(header));
      // the body is not read: nothing of it reaches a listener
      res.writeHead(401, { "content-type": "text/plain" });
      res.end("request timestamp is in the future");
      req.resume();
      return;
    }
    inner(req, res);
  };
}

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
