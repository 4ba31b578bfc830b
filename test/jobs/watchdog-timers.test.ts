import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { StepWatchdog } from "../../src/jobs/watchdog.js";

/*
 * The watchdog on the test's own time (fake timers): each limit trips at exactly its moment and
 * not a millisecond before, with no wall-clock wait. The runner-level test (watchdog.test.ts)
 * shows the same limits end real runs.
 */

beforeEach(() => {
  vi.useFakeTimers({ now: new Date("2026-11-30T15:59:00Z") });
});
afterEach(() => {
  vi.useRealTimers();
});

const run = new AbortController().signal;

describe("StepWatchdog", () => {
  it("stops an attempt at its time limit, not before, and says what to change", () => {
    const w = new StepWatchdog({ limitSeconds: 120 });
    const signal = w.beginAttempt(run);
    w.progress({ done: 2, total: 9, unit: "records" });
    vi.advanceTimersByTime(119_999);
    expect(signal.aborted).toBe(false);
    expect(w.expired).toBe(false);
    vi.advanceTimersByTime(1);
    expect(signal.aborted).toBe(true);
    expect(w.expired).toBe(true);
    expect(w.tripped).toEqual({ kind: "timeout", limitSeconds: 120 });
    expect(w.describe("dns-cutover", "Cloudflare answered 500")).toBe(
      "`dns-cutover` did not finish within 2 min, its time limit, and was stopped (last progress: 2 of 9 records); the last error was: Cloudflare answered 500; if it needs longer, set `timeout:` on the step in the migration file (for example `timeout: 2h`).",
    );
    w.stop();
  });

  it("stops a stalled attempt after stallSeconds of unchanged progress; re-sent progress does not count, new progress does", () => {
    const w = new StepWatchdog({ limitSeconds: undefined, stallSeconds: 20 });
    const signal = w.beginAttempt(run);
    w.progress({ done: 1, total: 10, unit: "objects" });
    vi.advanceTimersByTime(15_000);
    w.progress({ done: 2, total: 10, unit: "objects" }); // moved: the stall clock starts again
    vi.advanceTimersByTime(19_999);
    expect(signal.aborted).toBe(false);
    for (let i = 0; i < 5; i++) w.progress({ done: 2, total: 10, unit: "objects" }); // the same again
    vi.advanceTimersByTime(1);
    expect(signal.aborted).toBe(true);
    expect(w.tripped?.kind).toBe("stall");
    expect(w.describe("storage-sync", undefined)).toBe(
      "`storage-sync` showed no progress for 20 s (stuck at 2 of 10 objects); stopped this attempt.",
    );
    // the next attempt starts with a fresh stall clock
    const second = w.beginAttempt(run);
    w.progress({ done: 3, total: 10, unit: "objects" });
    vi.advanceTimersByTime(19_000);
    expect(second.aborted).toBe(false);
    w.stop();
  });

  it("says once per quiet stretch that it waits, with the time left before its limit", () => {
    const said: string[] = [];
    const w = new StepWatchdog({
      limitSeconds: 600,
      quiet: { afterMs: 60_000, say: (t) => said.push(t), step: "db-restore", runId: "0123456789abcdef" },
    });
    w.beginAttempt(run);
    w.progress({ done: 0, message: "building an index" });
    vi.advanceTimersByTime(59_999);
    expect(said).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(said).toEqual([
      "⏳ `db-restore` has shown no progress for 1 min (last: 0, building an index). It will be stopped at 10 min, its time limit, 9 min from now; `/migrate cancel 01234567` stops it sooner.",
    ]);
    vi.advanceTimersByTime(30_000);
    expect(said).toHaveLength(1);
    w.stop();
  });

  it("gives up on an attempt that ignores its signal after the grace period, and reports it stuck", async () => {
    const w = new StepWatchdog({ limitSeconds: 5, graceMs: 1_000 });
    w.beginAttempt(run);
    const guarded = w.guard(new Promise<never>(() => undefined));
    const outcome = guarded.then(
      () => "resolved",
      (err: Error) => err.message,
    );
    await vi.advanceTimersByTimeAsync(5_000 + 999);
    expect(w.stuck).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toBe("the step did not stop when asked");
    expect(w.stuck).toBe(true);
    expect(w.describe("deaf", undefined)).toContain("it did not stop when asked, so it may still be working");
    w.stop();
  });
  it("never stops a step without a limit (`timeout: none`), and says it has none", () => {
    const said: string[] = [];
    const w = new StepWatchdog({
      limitSeconds: null,
      quiet: { afterMs: 60_000, say: (t) => said.push(t), step: "db-restore", runId: "0123456789abcdef" },
    });
    const signal = w.beginAttempt(run);
    w.progress({ done: 0, message: "building an index" });
    vi.advanceTimersByTime(30 * 86_400_000);
    expect(signal.aborted).toBe(false);
    expect(w.expired).toBe(false);
    expect(said).toEqual([
      "⏳ `db-restore` has shown no progress for 1 min (last: 0, building an index). It has no time limit; `/migrate cancel 01234567` stops it sooner.",
    ]);
    w.stop();
  });
});
