import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";

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
