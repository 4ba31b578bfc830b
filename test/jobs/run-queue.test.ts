import pg from "pg";
import { PgBoss } from "pg-boss";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/clock.js";
import { LockService } from "../../src/jobs/locks.js";
import { RUN_QUEUE, RunQueue } from "../../src/jobs/run-queue.js";
import type { StepExecutor } from "../../src/jobs/step-executor.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createRun } from "../../src/store/runs.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { runnerFile, runRequest, testStep } from "../helpers/runner.js";

/**
 * The run queue without a worker: a run and its job are created together or not at all, and the
 * recovery sweep queues again only what a dead worker left (not a run whose job still waits).
 */

const FILE = runnerFile({
  phases: `    - id: one
      title: One
      steps:
        - { id: first, uses: test.step }
`,
});

let state: TestDatabase;
let db: Db;
let pool: pg.Pool;
let boss: PgBoss;

function queue(overrides: { boss?: PgBoss } = {}): RunQueue {
  const log = pino({ level: "silent" });
  return new RunQueue({
    db,
    boss: overrides.boss ?? boss,
    locks: new LockService(pool, log),
    steps: {} as StepExecutor,
    registry: new Map([["test.step", testStep("test.step", {})]]),
    file: FILE,
    log,
    observer: { runChanged: () => undefined, runNote: () => undefined },
    clock: systemClock,
  });
}

const request = runRequest("one");

const jobsOf = (runId: string) => boss.findJobs(RUN_QUEUE, { data: { runId } });

beforeAll(async () => {
  state = await createTestDatabase("run_queue");
  db = createPrismaClient(state.url);
  pool = new pg.Pool({ connectionString: state.url, max: 3 });
  boss = new PgBoss({ connectionString: state.url, max: 2 });
  await boss.start();
  await queue().prepare();
});

afterAll(async () => {
  await boss?.stop({ graceful: false });
  await pool?.end();
  await db?.$disconnect();
  await state?.drop();
});

describe("the run queue", () => {
  it("queues a run in the transaction that creates it", async () => {
    const submitted = await queue().submit(request);
    if (!submitted.created) throw new Error("not created");
    const jobs = await jobsOf(submitted.runId);
    expect(jobs.map((j) => [j.state, j.retryLimit])).toEqual([["created", 0]]);
    await db.envLock.deleteMany({});
  });

  it("leaves nothing behind when the job cannot be queued: no run, no lock, no audit event", async () => {
    const runsBefore = await db.run.count();
    const auditBefore = await db.auditEvent.count();
    const broken = new Proxy(boss, {
      get: (target, name, receiver) =>
        name === "send"
          ? async () => {
              throw new Error("the queue's table is gone");
            }
          : Reflect.get(target, name, receiver),
    });
    await expect(queue({ boss: broken }).submit(request)).rejects.toThrow("the queue's table is gone");
    expect(await db.run.count()).toBe(runsBefore);
    expect(await db.envLock.count()).toBe(0);
    expect(await db.auditEvent.count()).toBe(auditBefore);
  });

  it("the sweep queues again a run a dead worker left, once, and leaves a waiting one alone", async () => {
    // a run its worker died on: running, nobody holds its lock, its job long taken
    const created = await createRun(
      db,
      { ...request, env: "unit", kind: "phase", options: {}, steps: [{ step: "first" }] },
      false,
    );
    if (!created.created) throw new Error("not created");
    await db.run.update({ where: { id: created.runId }, data: { status: "running" } });
    const waiting = await queue().submit({ ...request, dryRun: true });
    if (!waiting.created) throw new Error("not created");

    expect(await queue().sweep()).toBe(1);
    expect((await jobsOf(created.runId)).map((j) => j.state)).toEqual(["created"]);
    expect(await jobsOf(waiting.runId)).toHaveLength(1);
    // its job now waits: the next sweep does not send another
    expect(await queue().sweep()).toBe(0);
  });
});
