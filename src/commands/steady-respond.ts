import type { RespondFn } from "@slack/bolt";

/** Waits before the second and third tries of a reply. */
const DELAYS_MS = [250, 1_000] as const;

/**
 * A response_url reply that survives a dropped connection. Bolt's `respond` posts once; a
 * connection reset on the way (a reused keep-alive socket Slack's side just closed, a blip)
 * would lose the only answer a person gets to a command or a click. Network failures, 429 and
 * 5xx are tried twice more; any other status (an expired or used-up response_url) is not. A
 * reply Slack did take but whose answer was lost may then show twice: for an ephemeral answer
 * that is the lesser harm.
 */
export function steadyRespond(
  respond: RespondFn,
  delaysMs: readonly number[] = DELAYS_MS,
  timeoutMs = 10_000,
): RespondFn {
  return async (message) => {
    for (let attempt = 0; ; attempt++) {
      let timer: NodeJS.Timeout | undefined;
      try {
        // A reply that hangs must not hold its after-ack slot for ever; it is not sent again
        // (it may still land), the wait just ends.
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new SlowReplyError(`Slack did not take the reply within ${timeoutMs / 1000} s`)),
            timeoutMs,
          );
        });
        return await Promise.race([respond(message), late]);
      } catch (err) {
        const status = (err as { statusCode?: unknown }).statusCode;
        const retryable =
          !(err instanceof SlowReplyError) && (typeof status !== "number" || status === 429 || status >= 500);
        const delay = delaysMs[attempt];
        if (!retryable || delay === undefined) throw err;
        await new Promise((resolve) => setTimeout(resolve, delay));
      } finally {
        clearTimeout(timer);
      }
    }
  };
}

class SlowReplyError extends Error {}

/**
 * A listener whose `respond` is {@link steadyRespond}: wraps it where it is registered, so every
 * command and button replies the same way without each listener having to remember.
 */
export function withSteadyRespond<A extends { respond: RespondFn }>(
  listener: (args: A) => Promise<unknown>,
): (args: A) => Promise<void> {
  return async (args) => {
    await listener({ ...args, respond: steadyRespond(args.respond) });
  };
}
