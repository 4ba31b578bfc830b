import { vi } from "vitest";

/**
 * Waits until `cond` holds, with a deadline: the suite's one wait helper, over vitest's
 * `vi.waitFor` (which retries on a falsy or throwing callback). A timeout names what was awaited.
 * Never use a sleep to prove that something did NOT happen; wait for what happens instead.
 *
 * @example await waitUntil("the run to finish", async () => (await runStatus(id)) === "succeeded");
 */
export async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await cond())) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: opts.timeoutMs ?? 20_000, interval: opts.intervalMs ?? 50 },
  );
}

/** Resolves to `get()`'s first value that `ok` accepts, within the deadline. */
export function waitForValue<T>(
  what: string,
  get: () => T | Promise<T>,
  ok: (value: T) => boolean,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await get();
      if (!ok(value))
        throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(value)?.slice(0, 300)})`);
      return value;
    },
    { timeout: opts.timeoutMs ?? 20_000, interval: opts.intervalMs ?? 50 },
  );
}
