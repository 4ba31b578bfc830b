import type { ChildProcess } from "node:child_process";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMigrationFile } from "../../../src/config/load.js";
import { buildDeps } from "../../../src/deps.js";
import { readVerifyReport, runDatabaseVerify } from "../../../src/jobs/steps/db/verify.js";
import { createDatabaseFrom, createTestDatabase, queryOnce, type TestDatabase } from "../../helpers/db.js";
import { runFinished, waitForValue, waitUntil } from "../../helpers/wait.js";
import { shardSupervisor, startShardWorker } from "../shard-workers.js";
import { createFixtureSource, dbConfig, makeDeps } from "./fixture.js";

/**
 * db.verify with `tableJobs`, its groups of tables taken by two worker processes (replicas, as far
 * as step parts go) sharing the state database: the one comparing the large table is killed with
 * SIGKILL in the middle of it, pg-boss hands the group to the other, and the report the run saves
 * is the one a single process makes, the deliberate difference in that table included.
 */

let source: TestDatabase;
let target: TestDatabase;
let state: TestDatabase;
const children: ChildProcess[] = [];
const BULK = "public.bulk";

beforeAll(async () => {
  source = await createFixtureSource("vk_src");
  // large enough that comparing it takes several seconds in 1 MB slices, one connection a side, even
  // on a quiet machine (at 500k rows a quiet machine compared it between two progress writes)
  await queryOnce(
    source.url,
    `CREATE TABLE ${BULK} AS SELECT g AS id, md5(g::text) || repeat('x', 120) AS payload FROM generate_series(1, 1500000) g;
     ALTER TABLE ${BULK} ADD PRIMARY KEY (id)`,
  );
  // the catalog's sizes (what the groups are dealt by, and the progress's total) after an ANALYZE
  await queryOnce(source.url, `ANALYZE ${BULK}`);
  [target, state] = await Promise.all([
    createDatabaseFrom("vk_dst", source.name),
    createTestDatabase("vk_state"),
  ]);
  await queryOnce(target.url, `UPDATE ${BULK} SET payload = 'changed on the target' WHERE id = 377777`);
  await queryOnce(
    target.url,
    "UPDATE inventory.warehouses SET name = name || ' (moved)' WHERE code = (SELECT min(code) FROM inventory.warehouses)",
  );
}, 180_000);
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await Promise.allSettled([target?.drop(), source?.drop(), state?.drop()]);
});

describe("db.verify in table jobs across processes", () => {
  it("a worker killed mid-table: another compares that group again and the report is one process's", async () => {
    const yaml = dbConfig().replace(
      /(uses: db\.verify\n\s+with: )\{ jobs: 2 \}/,
      "$1{ jobs: 1, tableJobs: 2, sliceMb: 1 }",
    );
    expect(yaml).toContain("tableJobs: 2");
    const single = await makeDeps(source.url, target.url, { config: yaml });
    const env = single.env as Record<string, string>;
    const job = { yaml, env, dataDir: single.dataDir, databaseUrl: state.url, workers: 1 };
    const [a, b] = await Promise.all([startShardWorker(job, children), startShardWorker(job, children)]);

    // this process submits and executes the run (as the CLI does) but takes no parts itself
    const file = parseMigrationFile(yaml, { checkEnv: false });
    const deps = await buildDeps({
      file: { ...file, engine: { ...file.engine, shardWorkers: 0 } },
      log: pino({ level: "silent" }),
      databaseUrl: state.url,
      dataDir: single.dataDir,
      env,
    });
    try {
      const submitted = await deps.runner.submit({
        target: "db-verify",
        dryRun: false,
        requestedBy: "U0OPERATOR",
        channel: null,
        idempotencyKey: null,
      });
      if (!submitted.created) throw new Error("the run was not created");
      const runId = submitted.runId;
      const execution = deps.runner.execute(runId);

      // the group holding the large table (alone: it is the largest), in the middle of its comparison
      const parts = async () =>
        deps.db.checkpoint.findMany({
          where: { key: { startsWith: "shard/tables/" }, execution: { runId } },
          select: { key: true, value: true },
        });
      const busy = await waitForValue(
        "a worker to be in the middle of the large table",
        async () => {
          const rows = await parts();
          const finished = new Set(
            rows.filter((r) => r.key.endsWith("/result")).map((r) => r.key.split("/")[2]),
          );
          return rows.find((r) => {
            const p = r.value as { worker?: number; done?: number; total?: number };
            return (
              r.key.endsWith("/progress") &&
              !finished.has(r.key.split("/")[2]) &&
              (p.total ?? 0) > 100_000_000 &&
              (p.done ?? 0) > 0 &&
              (p.done ?? 0) < (p.total ?? 0) * 0.9
            );
          });
        },
        (row) => row !== undefined,
        { timeoutMs: 120_000, intervalMs: 50 },
      );
      const index = busy!.key.split("/")[2];
      const victim = (busy!.value as { worker: number }).worker === a.pid ? a : b;
      const survivor = victim === a ? b : a;
      victim.kill("SIGKILL");
      const killedAt = Date.now();
      // when the survivor was first seen on the group (its progress or its result)
      let takenAt: number | undefined;

      const supervisor = await shardSupervisor(state.url);
      try {
        await waitUntil(
          `the group with the large table to be compared again by the other worker`,
          async () => {
            await supervisor.nudge();
            const progress = await deps.db.checkpoint.findFirst({
              where: { key: `shard/tables/${index}/progress`, execution: { runId } },
            });
            if ((progress?.value as { worker?: number } | undefined)?.worker === survivor.pid)
              takenAt ??= Date.now();
            const result = await deps.db.checkpoint.findFirst({
              where: { key: `shard/tables/${index}/result`, execution: { runId } },
            });
            const done = (result?.value as { worker?: number } | undefined)?.worker === survivor.pid;
            if (done) takenAt ??= Date.now();
            return done;
          },
          { timeoutMs: 150_000, intervalMs: 1_000 },
        );
      } finally {
        await supervisor.stop();
      }
      // the hand-over: the heartbeat (10 s) and the next supervisor pass (every 10 s, src/ports.ts);
      // at pg-boss's default pass of 60 s it took 10-70 s
      const handOverSeconds = ((takenAt ?? Date.now()) - killedAt) / 1000;
      console.log(
        `group ${index}: handed over to the survivor ${handOverSeconds.toFixed(1)} s after the kill`,
      );
      expect(handOverSeconds).toBeLessThan(45);
      const run = await runFinished(deps.db, runId, { timeoutMs: 120_000 });
      await execution;
      // the differences were found: the step fails its verify, as one process's would
      const step = run.steps[0]!;
      expect(step.status).toBe("failed");
      expect(step.error).toMatch(/^verification failed/);

      const inJobs = await readVerifyReport(single.dataDir, single.file.environment);
      const whole = await runDatabaseVerify(single);
      expect(inJobs?.differences).toEqual(whole.differences);
      expect(inJobs?.totals).toEqual(whole.totals);
      expect(inJobs?.tablesCompared).toBe(whole.tablesCompared);
      expect(inJobs?.bytesRead).toBe(whole.bytesRead);
      const bulk = inJobs?.differences.find((d) => d.object === BULK);
      expect(bulk?.what).toBe("content");
      expect(JSON.stringify(bulk)).toContain("377777");
      expect(inJobs?.differences.map((d) => d.object)).toContain("inventory.warehouses");
      // the killed worker's part was taken up again once: its group's result is the survivor's
      const results = (await parts()).filter((r) => /^shard\/tables\/\d+\/result$/.test(r.key));
      expect(results).toHaveLength(2);
    } finally {
      survivorStop(a, b);
      await deps.close();
    }
  }, 420_000);
});

function survivorStop(...workers: ChildProcess[]) {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill("SIGTERM");
}
