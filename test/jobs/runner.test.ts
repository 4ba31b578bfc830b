import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import type { StepDefinition } from "../../src/jobs/define-step.js";
import type { Runner } from "../../src/jobs/Runner.js";
import type { Db } from "../../src/store/client.js";
import { runnerFile, runRequest, startRunnerOnNewDb, type TestRunner, testStep } from "../helpers/runner.js";
import { waitForValue } from "../helpers/wait.js";

const FILE = runnerFile({
  engine: { attempts: 3, backoffMs: 20 },
  phases: `    - id: one
      title: One
      steps:
        - { id: flaky, uses: test.flaky }
        - { id: after, uses: test.flaky }
    - id: two
      title: Two
      steps:
        - { id: slow, uses: test.slow }
        - { id: absent, uses: kpi.monitor }
`,
});

let db: Db;
let tr: TestRunner;
let runner: Runner;
const failuresLeft = new Map<string, number>();
const calls: Array<{ step: string; attempt: number; resumedFrom: number | undefined }> = [];
let notes: string[] = [];

const step = testStep;

const registry = new Map<string, StepDefinition<unknown>>([
  [
    "test.flaky",
    step("test.flaky", {
      async run(_input, ctx) {
        const resumedFrom = await ctx.checkpoint.get<number>("mark");
        calls.push({ step: ctx.run.id, attempt: ctx.attempt, resumedFrom });
        await ctx.checkpoint.set("mark", (resumedFrom ?? 0) + 1);
        const left = failuresLeft.get(ctx.run.id) ?? 0;
        if (left > 0) {
          failuresLeft.set(ctx.run.id, left - 1);
          throw new CutoverError(ErrorCode.Unreachable, "the far side hung up");
        }
        return { summary: "flaky step done" };
      },
    }),
  ],
  [
    "test.slow",
    step("test.slow", {
      async run(_input, ctx) {
        for (let i = 0; i < 200; i++) {
          ctx.signal.throwIfAborted();
          ctx.progress({ done: i, total: 200, unit: "ticks" });
          await new Promise((r) => setTimeout(r, 25));
        }
        return { summary: "slow done" };
      },
    }),
  ],
]);

/** The run once it reaches one of `statuses`. */
const waitFor = (runId: string, statuses: string[], timeoutMs = 15_000) =>
  waitForValue(
    `run ${runId} to be ${statuses.join(" or ")}`,
    () =>
      db.run.findUniqueOrThrow({
        where: { id: runId },
        include: { steps: { orderBy: { position: "asc" } } },
      }),
    (run) => statuses.includes(run.status),
    { timeoutMs },
  );

beforeAll(async () => {
  tr = await startRunnerOnNewDb("runner", { file: FILE, registry });
  ({ runner, db, notes } = tr);
});

afterAll(async () => {
  await tr?.stop();
});

const request = (target: string, extra: Parameters<typeof runRequest>[1] = {}) =>
  runner.submit(runRequest(target, extra));

describe("Runner", () => {
  it("retries a throwing step with back-off and keeps its checkpoint between attempts", async () => {
    const submitted = await request("one");
    if (!submitted.created) throw new Error("not created");
    failuresLeft.set(submitted.runId, 2);
    const run = await waitFor(submitted.runId, ["succeeded", "failed"]);
    expect(run.status).toBe("succeeded");
    expect(run.steps.map((s) => [s.step, s.status, s.attempts])).toEqual([
      ["flaky", "succeeded", 3],
      ["after", "succeeded", 1],
    ]);
    const mine = calls.filter((c) => c.step === submitted.runId);
    expect(mine.slice(0, 3).map((c) => c.resumedFrom)).toEqual([undefined, 1, 2]);
    expect(notes.some((n) => n.includes("attempt 1 of 3 failed") && n.includes("the far side hung up"))).toBe(
      true,
    );
    const audit = await db.auditEvent.findMany({ where: { runId: submitted.runId, action: "step.attempt" } });
    expect(audit.map((a) => a.outcome)).toEqual(["failed", "failed"]);
  });

  it("fails the run after the last attempt, skips the rest, frees the lock, and a rerun starts from the checkpoint", async () => {
    const submitted = await request("one");
    if (!submitted.created) throw new Error("not created");
    failuresLeft.set(submitted.runId, 5);
    const run = await waitFor(submitted.runId, ["succeeded", "failed"]);
    expect(run.status).toBe("failed");
    expect(run.error).toContain("flaky: the far side hung up");
    expect(run.steps.map((s) => s.status)).toEqual(["failed", "skipped"]);
    expect(await db.envLock.count()).toBe(0);

    const again = await request("flaky");
    if (!again.created) throw new Error("not created");
    await waitFor(again.runId, ["succeeded"]);
    const rerun = calls.filter((c) => c.step === again.runId);
    expect(rerun[0]!.resumedFrom).toBe(3);
  });

  it("refuses a second mutating run while one holds the lock, naming the holder; a dry run still goes", async () => {
    const slow = await request("two");
    if (!slow.created) throw new Error("not created");
    await waitFor(slow.runId, ["running"]);
    const second = await request("one", { requestedBy: "U0OTHER" });
    expect(second.created).toBe(false);
    if (second.created || second.reason !== "locked") throw new Error("expected a lock refusal");
    expect(second.lock.holder).toBe("U0OP");
    expect(second.lock.runId).toBe(slow.runId);
    const dry = await request("one", { dryRun: true, requestedBy: "U0OTHER" });
    expect(dry.created).toBe(true);
    if (dry.created) {
      const planned = await waitFor(dry.runId, ["succeeded", "failed"]);
      expect(planned.steps[0]!.plan).toEqual({
        summary: "would do test.flaky",
        changes: [{ action: "create", target: "test.flaky" }],
      });
    }

    // cancel the slow one: it stops at its next await, the lock is freed
    expect(await runner.cancel(slow.runId, "U0OP")).toBe("cancelling");
    const cancelled = await waitFor(slow.runId, ["cancelled", "succeeded", "failed"]);
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.steps.map((s) => s.status)).toEqual(["cancelled", "cancelled"]);
    expect((cancelled.steps[0]!.progress as { done: number }).done).toBeLessThan(200);
    expect(await db.envLock.count()).toBe(0);
  });

  it("fails clearly on a step type this build does not have", async () => {
    const submitted = await request("absent");
    if (!submitted.created) throw new Error("not created");
    const run = await waitFor(submitted.runId, ["failed", "succeeded"]);
    expect(run.status).toBe("failed");
    expect(run.steps[0]!.error).toBe("step type `kpi.monitor` is not available in this build of Cutover");
  });

  it("treats a repeated idempotency key as the same run", async () => {
    const a = await request("after", { idempotencyKey: "slack:trigger-1" });
    const b = await request("after", { idempotencyKey: "slack:trigger-1" });
    expect(a.created).toBe(true);
    expect(b).toMatchObject({ created: false, reason: "duplicate" });
    if (a.created && !b.created && b.reason === "duplicate") expect(b.runId).toBe(a.runId);
    if (a.created) await waitFor(a.runId, ["succeeded"]);
  });

  it("names the closest phase or step when the target is unknown", async () => {
    await expect(request("flaki")).rejects.toThrow(
      "There is no phase or step called `flaki`. Did you mean `flaky`?",
    );
  });

  it("every transition of a run is audited", async () => {
    const submitted = await request("after");
    if (!submitted.created) throw new Error("not created");
    await waitFor(submitted.runId, ["succeeded"]);
    const actions = (
      await db.auditEvent.findMany({ where: { runId: submitted.runId }, orderBy: { id: "asc" } })
    ).map((a) => a.action);
    expect(actions).toEqual(["run.request", "run.start", "step.start", "step.finish", "run.finish"]);
  });

  it("a failed and a cancelled run are audited with each change: attempts, the step's failure, the finish", async () => {
    const failing = await request("after");
    if (!failing.created) throw new Error("not created");
    failuresLeft.set(failing.runId, 5);
    // read at the moment the run is seen finished: its events are already there, never a moment later
    await waitFor(failing.runId, ["failed"]);
    const failed = await db.auditEvent.findMany({ where: { runId: failing.runId }, orderBy: { id: "asc" } });
    expect(failed.map((a) => [a.action, a.outcome])).toEqual([
      ["run.request", "started"],
      ["run.start", "started"],
      ["step.start", "started"],
      ["step.attempt", "failed"],
      ["step.start", "started"],
      ["step.attempt", "failed"],
      ["step.start", "started"],
      ["step.attempt", "failed"],
      ["step.fail", "failed"],
      ["run.finish", "failed"],
    ]);

    const slow = await request("slow");
    if (!slow.created) throw new Error("not created");
    await waitForValue(
      "the slow step to be at work",
      () => db.stepExecution.findFirstOrThrow({ where: { runId: slow.runId, step: "slow" } }),
      (s) => s.status === "running",
    );
    await runner.cancel(slow.runId, "U0OP");
    await waitFor(slow.runId, ["cancelled"]);
    const cancelled = await db.auditEvent.findMany({ where: { runId: slow.runId }, orderBy: { id: "asc" } });
    expect(cancelled.map((a) => a.action)).toEqual([
      "run.request",
      "run.start",
      "step.start",
      "run.cancel",
      "step.cancel",
      "run.finish",
    ]);
  });
});
