import type { RespondFn } from "@slack/bolt";
import { Semaphore } from "../util/semaphore.js";

// Getting a command's answer out after its ack: the work runs a few at a time (AfterAck), and the
// reply through the response URL is tried again on a dropped connection and given up in time.

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

/**
 * The work that follows an ack (deduplication, the handler's database reads, the reply through
 * the response URL), run a few at a time. A burst of commands then never makes the acks of the
 * later ones wait behind the handlers of the earlier ones on the one event loop: each ack needs
 * only a sliver of the loop, and it gets it between two handlers instead of after twenty.
 */
export class AfterAck {
  private readonly slots: Semaphore;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`AfterAck limit must be ≥ 1, got ${limit}`);
    this.slots = new Semaphore(limit);
  }

  /** How many jobs wait for a turn (exported as a gauge). */
  get queued(): number {
    return this.slots.queued;
  }

  /** Runs `job` once fewer than `limit` others run; resolves or rejects as it does. */
  run<T>(job: () => Promise<T>): Promise<T> {
    return this.slots.run(async () => {
      // Yield once so the ack's response is written before the handler takes the loop.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return await job();
    });
  }
}
