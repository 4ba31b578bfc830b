/** Calls fn at most once a second (and once more at the end with `flush`). */
export function throttle(fn: () => void | Promise<void>, everyMs = 1_000) {
  let last = 0;
  let running: Promise<void> | undefined;
  return {
    poke() {
      if (Date.now() - last < everyMs || running) return;
      last = Date.now();
      running = Promise.resolve(fn())
        .catch(() => undefined)
        .finally(() => {
          running = undefined;
        });
    },
    async flush() {
      await running;
      last = Date.now();
      await fn();
    },
  };
}
