import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import { backoffMs } from "../../src/jobs/backoff.js";
import type { Progress, StepDefinition } from "../../src/jobs/define-step.js";
import type { AbortReason } from "../../src/jobs/events.js";
import {
  type ExecutionToRun,
  progressThrottle,
  type RunToExecute,
  StepExecutor,
} from "../../src/jobs/step-executor.js";
import type { AttemptRef, StepRecords } from "../../src/store/steps.js";
import { runnerFile, testStep } from "../helpers/runner.js";

/**
 * The step executor against an in-memory record of executions and a clock the test moves: the
 * attempts, the back-off between them, checkpoints kept across attempts, cancel and shutdown.
 * No database, no queue, no sleeping.
 */

const FILE = runnerFile({
  engine: { attempts: 3, backoffMs: 1000 },
  phases: `    - id: one
      title: One
      steps:
        - { id: flaky, uses: test.flaky }
        - { id: gone, uses: test.not-in-this-build }
`,
});

/** StepRecords in memory: what the executor wrote, in order, and the checkpoints. */
function memoryRecords() {
  const events: string[] = [];
  const checkpoints = new Map<string, unknown>();
  const progress: Progress[] = [];
  const tag = (a: AttemptRef) => `${a.step}#${a.attempt}`;
  const records: StepRecords = {
    inheritCheckpoints: async () => undefined,
    borrowCheckpoints: async () => ({ alreadyUndone: false, recorded: {} }),
    checkpoints: (executionId) => ({
      get: async <T>(key: string) => checkpoints.get(`${executionId}/${key}`) as T | undefined,
      set: async (key, value) => void checkpoints.set(`${executionId}/${key}`, value),
    }),
    attemptStarted: async (a, dryRun) => void events.push(`${dryRun ? "plan" : "start"} ${tag(a)}`),
    planned: async (a) => void events.push(`planned ${tag(a)}`),
    succeeded: async (a) => void events.push(`succeeded ${tag(a)}`),
    retrying: async (a, message) => void events.push(`retrying ${tag(a)}: ${message}`),
    failed: async (a, message, attemptFailed) =>
      void events.push(`failed ${tag(a)}${attemptFailed ? "" : " (no attempt)"}: ${message}`),
    interrupted: async () => void events.push("interrupted"),
    cancelled: async (a, by) => void events.push(`cancelled ${tag(a)} by ${by}`),
    progress: async (_id, value) => void progress.push(value as Progress),
  };
  return { records, events, checkpoints, progress };
}

function setup(step: StepDefinition<unknown>) {
  const mem = memoryRecords();
  const clock = new ManualClock(new Date("2026-01-05T10:00:00Z"));
  const notes: string[] = [];
  const executor = new StepExecutor({
    records: mem.records,
    registry: new Map([[step.type, step]]),
    file: FILE,
    log: pino({ level: "silent" }),
    observer: { runChanged: () => undefined, runNote: (_id, text) => notes.push(text) },
    clock,
    // the top of the jitter's range, so the waits are the formula's ceiling
    random: () => 1,
  });
  return { ...mem, clock, notes, executor };
}

const RUN: RunToExecute = { id: "r1", env: "unit", requestedBy: "U0OP", dryRun: false, options: {} };
const execution = (step = "flaky"): ExecutionToRun => ({ id: "e1", step, attempts: 0, startedAt: null });

describe("the step executor", () => {
  it("retries after the back-off, not before, and an attempt resumes from the last one's checkpoint", async () => {
    let failures = 2;
    const seen: Array<number | undefined> = [];
    const t = setup(
      testStep("test.flaky", {
        async run(_input, ctx) {
          const mark = await ctx.checkpoint.get<number>("mark");
          seen.push(mark);
          await ctx.checkpoint.set("mark", (mark ?? 0) + 1);
          if (failures-- > 0) throw new CutoverError(ErrorCode.Unreachable, "the far side hung up");
          return { summary: "done" };
        },
      }),
    );
    const done = t.executor.execute(RUN, execution(), new AbortController().signal);

    // the first attempt failed and the executor waits 1 s (1000 × 2^0) on the test's clock
    await vi.waitFor(() => expect(t.clock.waiting).toBe(1));
    expect(t.events).toEqual(["start flaky#1", "retrying flaky#1: the far side hung up"]);
    t.clock.advance(999);
    expect(t.clock.waiting).toBe(1);
    t.clock.advance(1);
    // the second wait is twice as long
    await vi.waitFor(() => expect(t.events).toHaveLength(4));
    expect(t.clock.waiting).toBe(1);
    t.clock.advance(1999);
    expect(t.clock.waiting).toBe(1);
    t.clock.advance(1);

    expect(await done).toBe("succeeded");
    expect(t.events).toEqual([
      "start flaky#1",
      "retrying flaky#1: the far side hung up",
      "start flaky#2",
      "retrying flaky#2: the far side hung up",
      "start flaky#3",
      "succeeded flaky#3",
    ]);
    expect(seen).toEqual([undefined, 1, 2]);
    expect(t.notes[0]).toBe("↻ flaky attempt 1 of 3 failed (the far side hung up); retrying in 1 s");
    expect(t.notes[1]).toBe("↻ flaky attempt 2 of 3 failed (the same error); retrying in 2 s");
    expect(t.notes[2]).toMatch(/^✓ flaky: done/);
  });

  it("does not retry an error no attempt can fix, and gives up after the last attempt", async () => {
    const t = setup(
      testStep("test.flaky", {
        async run() {
          throw new CutoverError(ErrorCode.TargetNotEmpty, "the target already has 14 tables");
        },
      }),
    );
    expect(await t.executor.execute(RUN, execution(), new AbortController().signal)).toBe("failed");
    expect(t.events).toEqual(["start flaky#1", "failed flaky#1: the target already has 14 tables"]);
    expect(t.clock.waiting).toBe(0);
    expect(t.notes).toEqual([expect.stringMatching(/^✗ flaky failed: the target already has 14 tables/)]);
  });

  it("fails without an attempt a step whose type this build does not have", async () => {
    const t = setup(testStep("test.flaky", {}));
    expect(await t.executor.execute(RUN, execution("gone"), new AbortController().signal)).toBe("failed");
    expect(t.events).toEqual([
      "failed gone#0 (no attempt): step type `test.not-in-this-build` is not available in this build of Cutover",
    ]);
  });

  it("a cancel during the back-off ends the step as cancelled, by whom, without another attempt", async () => {
    const t = setup(
      testStep("test.flaky", {
        async run() {
          throw new Error("connection reset");
        },
      }),
    );
    const run = new AbortController();
    const done = t.executor.execute(RUN, execution(), run.signal);
    await vi.waitFor(() => expect(t.clock.waiting).toBe(1));
    run.abort({ kind: "cancel", by: "U0OP" } satisfies AbortReason);
    expect(await done).toBe("cancelled");
    expect(t.events.at(-1)).toBe("cancelled flaky#2 by U0OP");
    expect(t.events.filter((e) => e.startsWith("start"))).toEqual(["start flaky#1", "start flaky#2"]);
  });

  it("a shutdown leaves the step pending, to resume from its checkpoint", async () => {
    const run = new AbortController();
    const t = setup(
      testStep("test.flaky", {
        async run(_input, ctx) {
          await ctx.checkpoint.set("rows", 500);
          run.abort({ kind: "shutdown" } satisfies AbortReason);
          ctx.signal.throwIfAborted();
          return { summary: "never" };
        },
      }),
    );
    expect(await t.executor.execute(RUN, execution(), run.signal)).toBe("shutdown");
    expect(t.events).toEqual(["start flaky#1", "interrupted"]);
    expect(t.checkpoints.get("e1/rows")).toBe(500);
  });

  it("a dry run plans once and stores the plan", async () => {
    const t = setup(testStep("test.flaky", {}));
    const result = await t.executor.execute(
      { ...RUN, dryRun: true },
      execution(),
      new AbortController().signal,
    );
    expect(result).toBe("succeeded");
    expect(t.events).toEqual(["plan flaky#1", "planned flaky#1"]);
  });
});

describe("progress throttle", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("stores at once, then at most once per interval, and always the latest value last", async () => {
    vi.useFakeTimers();
    const written: number[] = [];
    const report = progressThrottle(
      async (p) => void written.push(p.done),
      500,
      () => undefined,
    );
    report({ done: 1 });
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([1]);
    for (let i = 2; i <= 10; i++) {
      report({ done: i });
      await vi.advanceTimersByTimeAsync(40);
    }
    // 360 ms after the first write: nothing more yet
    expect(written).toEqual([1]);
    await vi.advanceTimersByTimeAsync(140);
    expect(written).toEqual([1, 10]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(written).toEqual([1, 10]);
  });
});

describe("the back-off", () => {
  it("doubles up to the cap, and the jitter draws below that ceiling", () => {
    expect([1, 2, 3, 4].map((n) => backoffMs(n, 1000, 5000, () => 1))).toEqual([1000, 2000, 4000, 5000]);
    expect(backoffMs(3, 1000, 60_000, () => 0.25)).toBe(1000);
    expect(backoffMs(1, 1000, 60_000, () => 0)).toBe(0);
  });
});
