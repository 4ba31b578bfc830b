import { setTimeout as sleep } from "node:timers/promises";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { Progress, StepContext } from "../../define-step.js";

/**
 * Polls until `check` says done, reporting what it waits for; bounded by `timeoutMs`.
 * The timeout error names the thing waited for and its last state.
 */
export async function waitFor(opts: {
  /** "instance app-server to be running" */
  what: string;
  timeoutMs: number;
  intervalMs: number;
  ctx: Pick<StepContext, "signal" | "progress">;
  check: () => Promise<{ done: boolean; state: string }>;
}): Promise<void> {
  const started = Date.now();
  let last = "unknown";
  for (;;) {
    opts.ctx.signal.throwIfAborted();
    const r = await opts.check();
    last = r.state;
    if (r.done) return;
    const elapsed = Math.round((Date.now() - started) / 1000);
    if (Date.now() - started >= opts.timeoutMs) {
      throw new CutoverError(
        ErrorCode.TimedOut,
        `Gave up waiting for ${opts.what} after ${elapsed} s (last state: ${last}).`,
        {
          hint: "Check it in the AWS console; run the step again to keep waiting (nothing is created twice).",
        },
      );
    }
    opts.ctx.progress({
      done: elapsed,
      total: Math.round(opts.timeoutMs / 1000),
      unit: "s",
      message: `waiting for ${opts.what} (now ${last})`,
    } satisfies Progress);
    await sleep(opts.intervalMs, undefined, { signal: opts.ctx.signal });
  }
}
