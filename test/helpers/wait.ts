import { vi } from "vitest";
import type { Db } from "../../src/store/client.js";

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
  await waitForValue(what, cond, (ok) => ok, opts);
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

/** A run and its steps once the run has finished (succeeded, failed or cancelled). */
export function runFinished(db: Db, runId: string, opts: { timeoutMs?: number; intervalMs?: number } = {}) {
  return waitForValue(
    `run ${runId} to finish`,
    () => db.run.findUnique({ where: { id: runId }, include: { steps: { orderBy: { position: "asc" } } } }),
    (run) => run !== null && ["succeeded", "failed", "cancelled"].includes(run.status),
    { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: opts.intervalMs ?? 100 },
  ).then((run) => run!);
}
