import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMigrationFile } from "../../src/config/load.js";
import { parseStepDuration } from "../../src/config/schema.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import type { StepDefinition } from "../../src/jobs/define-step.js";
import type { Runner } from "../../src/jobs/Runner.js";
import type { Db } from "../../src/store/client.js";
import { runnerYaml, runRequest, startRunnerOnNewDb, type TestRunner, testStep } from "../helpers/runner.js";
import { runFinished, waitUntil } from "../helpers/wait.js";

const YAML = (steps: string) =>
  runnerYaml({
    engine: { attempts: 3, backoffMs: 20, stallSeconds: 1 },
    phases: `    - id: one
      title: One
      steps:
${steps}`,
  });

const FILE = parseMigrationFile(
  YAML(`        - { id: blackhole, uses: test.blackhole, timeout: 2s }
        - { id: deaf, uses: test.deaf, timeout: 1s }
        - { id: stalls, uses: test.stall }
        - { id: quiet, uses: test.quiet }
        - { id: unlimited, uses: test.blackhole, timeout: none }
`),
  { checkEnv: false },
);

let db: Db;
let tr: TestRunner;
let runner: Runner;
let notes: string[] = [];
let deafStillRunning = false;

const step = testStep;

/** Waits until the signal aborts, as an SDK call does when its connection is black-holed. */
const hang = (signal: AbortSignal) =>
  new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(new Error("This operation was aborted")), { once: true });
  });

const registry = new Map<string, StepDefinition<unknown>>([
  [
    "test.blackhole",
    step("test.blackhole", {
      async run(_input, ctx) {
        // the first try gets a clear error, as an SDK gives after its own timeout; then it hangs
        if (ctx.attempt === 1)
          throw new CutoverError(ErrorCode.Unreachable, "Cloudflare did not answer within 30 s");
        ctx.progress({ done: 1, total: 3, unit: "records", message: "looking up zone example.com" });
        return hang(ctx.signal);
      },
    }),
  ],
  [
    "test.deaf",
    step("test.deaf", {
      // ignores its signal entirely: the runner must not wait on it for ever
      run: () => {
        deafStillRunning = true;
        return new Promise<never>(() => undefined);
      },
    }),
  ],
  [
    "test.stall",
    step("test.stall", {
      stallWatch: true,
      async run(_input, ctx) {
        const from = (await ctx.checkpoint.get<number>("done")) ?? 0;
        for (let i = from; i < 10; i++) {
          ctx.progress({ done: i, total: 10, unit: "objects" });
          await ctx.checkpoint.set("done", i + 1);
          // the first attempt's connection stalls half way, with progress still being re-sent
          if (ctx.attempt === 1 && i === 5) {
            const again = setInterval(() => ctx.progress({ done: i, total: 10, unit: "objects" }), 100);
            try {
              await hang(ctx.signal);
            } finally {
              clearInterval(again);
            }
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        return { summary: `copied 10 objects, resumed from ${from}` };
      },
    }),
  ],
  [
    "test.quiet",
    step("test.quiet", {
      // no stall watch: one quiet operation (an index build) may take longer than stallSeconds
      async run(_input, ctx) {
        ctx.progress({ done: 0, message: "building an index" });
        await new Promise((r) => setTimeout(r, 1_600));
        return { summary: "index built" };
      },
    }),
  ],
]);

async function runToEnd(target: string, timeoutMs = 20_000) {
  const submitted = await runner.submit(runRequest(target));
  if (!submitted.created) throw new Error(`not created: ${submitted.reason}`);
  const started = Date.now();
  const run = await runFinished(db, submitted.runId, { timeoutMs, intervalMs: 50 });
  return { run, ms: Date.now() - started };
}

beforeAll(async () => {
  tr = await startRunnerOnNewDb("watchdog", {
    file: FILE,
    registry,
    extra: { watchdogGraceMs: 300, quietNoteMs: 500 },
  });
  ({ runner, db, notes } = tr);
});

afterAll(async () => {
  await tr?.stop();
});

describe("the step watchdog", () => {
  it("stops a step at its time limit across attempts, names the last real error, and does not retry it", async () => {
    const { run, ms } = await runToEnd("blackhole");
    expect(run.status).toBe("failed");
    const execution = run.steps[0]!;
    expect(execution.attempts).toBe(2);
    expect(execution.error).toContain("`blackhole` did not finish within 2 s, its time limit");
    expect(execution.error).toContain("last progress: 1 of 3 records, looking up zone example.com");
    expect(execution.error).toContain("the last error was: Cloudflare did not answer within 30 s");
    expect(execution.error).toContain("set `timeout:` on the step in the migration file");
    expect(ms).toBeGreaterThanOrEqual(1_900);
    expect(ms).toBeLessThan(8_000);
  });

  it("moves on from a step that ignores being stopped, and says it may still be at work", async () => {
    const { run, ms } = await runToEnd("deaf");
    expect(deafStillRunning).toBe(true);
    expect(run.status).toBe("failed");
    expect(run.steps[0]!.attempts).toBe(1);
    expect(run.steps[0]!.error).toContain("did not finish within 1 s");
    expect(run.steps[0]!.error).toContain("it did not stop when asked, so it may still be working");
    expect(ms).toBeLessThan(8_000);
    // the lock is free again: the environment is not held by a step nobody waits for
    expect(await db.envLock.count()).toBe(0);
  });

  it("stops an attempt whose progress stopped changing and resumes it from its checkpoint", async () => {
    const { run } = await runToEnd("stalls");
    expect(run.status).toBe("succeeded");
    expect(run.steps[0]!.attempts).toBe(2);
    expect(
      notes.some((n) => n.includes("`stalls` showed no progress for 1 s (stuck at 5 of 10 objects)")),
    ).toBe(true);
    expect(JSON.stringify(run.steps[0]!.result)).toContain("resumed from 6");
  });

  it("leaves a step without stall watch alone through a long quiet operation, and says it is waiting", async () => {
    const { run } = await runToEnd("quiet");
    expect(run.status).toBe("succeeded");
    expect(run.steps[0]!.attempts).toBe(1);
    // one note per quiet stretch, in the run's thread
    const said = notes.filter((n) => n.startsWith("⏳ `quiet`"));
    expect(said).toEqual([
      `⏳ \`quiet\` has shown no progress for 500 ms (last: 0, building an index). It has no time limit; \`/migrate cancel ${run.id.slice(0, 8)}\` stops it sooner.`,
    ]);
    // a step with a time limit says when it will be stopped
    expect(
      notes.some((n) =>
        /^⏳ `blackhole` has shown no progress for 500 ms \(last: 1 of 3 records, looking up zone example.com\)\. It will be stopped at 2 s, its time limit, \d+ (ms|s) from now;/.test(
          n,
        ),
      ),
    ).toBe(true);
  });

  it("lets `timeout: none` lift the limit (cancel still stops it)", async () => {
    const submitted = await runner.submit(runRequest("unlimited"));
    if (!submitted.created) throw new Error("not created");
    // the runner gave its watchdog no limit: the quiet note says so, where a limited step's names
    // the moment it will be stopped (the fake-timer test shows a limitless watchdog never trips)
    await waitUntil("the quiet note of the unlimited step", () =>
      notes.some((n) => n.startsWith("⏳ `unlimited`") && n.includes("It has no time limit")),
    );
    const running = await db.run.findUniqueOrThrow({ where: { id: submitted.runId } });
    expect(running.status).toBe("running");
    await runner.cancel(submitted.runId, "U0OP");
    expect((await runFinished(db, submitted.runId, { timeoutMs: 5_000, intervalMs: 50 })).status).toBe(
      "cancelled",
    );
  });

  it("reads durations people write, and refuses others with an example", () => {
    expect(parseStepDuration("90s")).toBe(90);
    expect(parseStepDuration("20m")).toBe(1_200);
    expect(parseStepDuration("1h30m")).toBe(5_400);
    expect(parseStepDuration(45)).toBe(45);
    expect(parseStepDuration("none")).toBeNull();
    for (const bad of ["", "soon", "0s", "8d", "-5m", "1.5h", 0])
      expect(parseStepDuration(bad)).toBeUndefined();
    expect(() =>
      parseMigrationFile(YAML("        - { id: x, uses: test.blackhole, timeout: soon }\n"), {
        checkEnv: false,
      }),
    ).toThrow(/"soon" is not a duration — write it like "90s", "20m", "2h" or "1h30m"/);
  });
});
