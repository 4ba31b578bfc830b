import type { Progress } from "./types.js";

/**
 * A step reports progress as often as it likes; storing it (and so editing the Slack message)
 * happens at most once per `intervalMs`, always with the latest value, and the last value is
 * never dropped (a trailing write follows the burst). Timers are the global ones, so a test
 * moves them with fake timers.
 *
 * @example const report = progressThrottle((p) => records.progress(id, p), 500); report({ done: 3 });
 */
export function progressThrottle(
  write: (p: Progress) => Promise<void>,
  intervalMs: number,
  onError: (err: unknown) => void,
): (p: Progress) => void {
  let last = Number.NEGATIVE_INFINITY;
  let pending: Progress | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (!pending) return;
    const value = pending;
    pending = undefined;
    last = Date.now();
    write(value).catch(onError);
  };
  return (p) => {
    pending = p;
    if (timer) return;
    timer = setTimeout(flush, Math.max(0, intervalMs - (Date.now() - last)));
    timer.unref();
  };
}
