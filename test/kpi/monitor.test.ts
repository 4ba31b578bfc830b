import { Writable } from "node:stream";
import { PgBoss } from "pg-boss";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseMigrationFile } from "../../src/config/load.js";
import type { MigrationFile } from "../../src/config/schema.js";
import { KPI_QUEUE, KpiMonitor, setMonitoring } from "../../src/kpi/KpiMonitor.js";
import { createDatabaseTimer, type DatabaseTimer } from "../../src/kpi/sampler.js";
import { DB_TARGET } from "../../src/kpi/summary.js";
import { createLogger } from "../../src/log.js";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import type { Reply } from "../../src/views/blocks.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitUntil } from "../helpers/wait.js";

const quietLog = createLogger({
  secrets: [],
  level: "warn",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});

function fileFor(
  endpoints: Array<{ id: string; url: string }>,
  opts: { step?: boolean; timeoutMs?: number } = {},
) {
  return parseMigrationFile(
    `version: 1
project: shop
environment: kpi-test
slack: { channel: C0MIGRATE }
access: { operators: [U0OP], approvers: [U0AP], channels: [C0MIGRATE] }
kpis:
  probes:
    intervalSeconds: 60
    timeoutMs: ${opts.timeoutMs ?? 400}
    endpoints:
${endpoints.map((e) => `      - { id: ${e.id}, url: "${e.url}" }`).join("\n")}
  retentionDays: 30
runbook:
  phases:
    - id: p
      title: P
      steps:
        - { id: ${opts.step === false ? "check" : "monitor"}, uses: ${opts.step === false ? "http.check" : "kpi.monitor"}${opts.step === false ? ', with: { url: "http://127.0.0.1:1/" }' : ""} }
`,
    { checkEnv: false },
  );
}

let state: TestDatabase;
let db: Db;
let api: AppServer;
let hang: AppServer;
const bosses: PgBoss[] = [];
let clock = Date.parse("2026-11-20T00:00:30Z");
const now = () => clock;
let posted: Reply[] = [];
let failPosts = 0;
const notify = async (reply: Reply) => {
  if (failPosts > 0) {
    failPosts--;
    throw new Error("slack is down");
  }
  posted.push(reply);
};

async function newBoss(): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: state.url, max: 2 });
  boss.on("error", () => undefined);
  await boss.start();
  bosses.push(boss);
  return boss;
}

function monitor(file: MigrationFile, boss: PgBoss, database?: DatabaseTimer): KpiMonitor {
  return new KpiMonitor({ db, boss, file, log: quietLog, notify, now, database });
}

beforeAll(async () => {
  state = await createTestDatabase("kpi_monitor");
  db = createPrismaClient(state.url);
  api = await startAppServer({ name: "api" });
  hang = await startAppServer({ name: "hang" });
  hang.setHanging(true);
});
afterAll(async () => {
  for (const b of bosses) await b.stop({ graceful: false, timeout: 2_000 }).catch(() => undefined);
  await api?.stop();
  await hang?.stop();
  await db?.$disconnect();
  await state?.drop();
});
beforeEach(async () => {
  await db.kpiSample.deleteMany();
  await db.kpiAlertState.deleteMany();
  await db.kpiMonitorState.deleteMany();
  posted = [];
  failPosts = 0;
  api.setFailing(false);
  api.setLatency(0);
});

const texts = () => posted.map((p) => p.text);

describe("a probe round", () => {
  it("samples every endpoint and the database; a hanging endpoint or query is bounded by the timeout", async () => {
    // 1.5 s: a 60 ms endpoint answers within it even on a loaded machine; the hanging one never does
    const file = fileFor(
      [
        { id: "api", url: api.healthUrl },
        { id: "hang", url: hang.healthUrl },
      ],
      { timeoutMs: 1_500 },
    );
    api.setLatency(60);
    const boss = await newBoss();
    const timer = createDatabaseTimer(
      async () => ({ side: "target", from: "the test", url: state.url }),
      "SELECT pg_sleep(0.02)",
    );
    const m = monitor(file, boss, timer);
    const started = performance.now();
    const report = await m.round(new Date(clock));
    // bounded by the timeout (plus the round's own work), not by the endpoint that never answers
    expect(performance.now() - started).toBeLessThan(1_500 + 2_000);
    const by = Object.fromEntries(report.samples.map((s) => [s.target, s]));
    expect(by.api).toMatchObject({ ok: true, status: 200 });
    expect(by.api!.latencyMs).toBeGreaterThanOrEqual(60);
    expect(by.hang).toMatchObject({
      ok: false,
      status: null,
      latencyMs: null,
      error: "no answer within 1500 ms",
    });
    expect(by[DB_TARGET]).toMatchObject({ ok: true, error: null });
    expect(by[DB_TARGET]!.latencyMs).toBeGreaterThanOrEqual(20);
    expect(await db.kpiSample.count()).toBe(3);
    expect(
      (await db.kpiMonitorState.findUnique({ where: { env: "kpi-test" } }))?.lastRoundAt?.getTime(),
    ).toBe(clock);
    await timer.close();

    const slow = createDatabaseTimer(
      async () => ({ side: "target", from: "the test", url: state.url }),
      "SELECT pg_sleep(6)",
    );
    // 1.5 s: room for the connection on a loaded machine, well short of the 6 s query
    const t0 = performance.now();
    const r = await slow.time(1_500);
    expect(performance.now() - t0).toBeLessThan(4_000);
    expect(r).toMatchObject({ ok: false, error: "target database: the query ran past 1500 ms" });
    await slow.close();
    const nowhere = createDatabaseTimer(
      async () => ({
        side: "target",
        from: "TARGET_DATABASE_URL",
        url: "postgresql://u:secretpw@127.0.0.1:9/db",
      }),
      "SELECT 1",
    );
    const refused = await nowhere.time(400);
    expect(refused.ok).toBe(false);
    expect(refused.error).toContain("connection refused");
    expect(refused.error).not.toContain("secretpw");
  });
});

describe("alerts", () => {
  it("post a breach once, not every round, and once again when it clears", async () => {
    const file = fileFor([{ id: "api", url: api.healthUrl }]);
    const m = monitor(file, await newBoss());
    const round = async () => m.round(new Date(clock));
    const step = async (ms: number) => {
      clock += ms;
      return round();
    };
    await round();
    expect(posted).toEqual([]); // all clear from the start: nothing to say

    api.setFailing(true);
    await step(60_000); // 1 of 2 failed: availability 50 %, error rate 50 %
    expect(texts()).toHaveLength(2);
    expect(texts()[0]).toMatch(
      /^🔴 KPI breach — Availability over the last 24 h is 50\.0 % \(target ≥ 99\.9 %\)/,
    );
    expect(texts()[0]).toContain("last error: HTTP 503 (api)");
    expect(texts()[1]).toMatch(
      /^🔴 KPI breach — Error rate over the last 7 days is 50\.0 % \(target ≤ 0\.1 %\)/,
    );
    await step(60_000); // second failure in a row: the endpoint is down
    expect(texts()).toHaveLength(3);
    expect(texts()[2]).toMatch(/^🔴 Endpoint api is down: its last 2 probes failed \(last error: HTTP 503\)/);
    await step(60_000);
    await step(60_000);
    expect(texts()).toHaveLength(3); // still failing: nothing new

    api.setFailing(false);
    await step(60_000);
    expect(texts()).toHaveLength(4);
    expect(texts()[3]).toBe("🟢 Endpoint api is answering again, after 3 min down.");
    await step(60_000);
    expect(texts()).toHaveLength(4); // availability over 24 h is still below target: no repeat

    clock += 25 * 3600_000; // the failures leave the daily window
    await round();
    expect(texts()).toHaveLength(5);
    expect(texts()[4]).toMatch(
      /^🟢 KPI back on target — Availability over the last 24 h is 100\.00 % \(target ≥ 99\.9 %\), after 1 day|^🟢 KPI back on target — Availability over the last 24 h is 100\.00 % \(target ≥ 99\.9 %\), after 25 h/,
    );

    clock += 7 * 24 * 3600_000; // and the weekly one
    await round();
    expect(texts()).toHaveLength(6);
    expect(texts()[5]).toMatch(/^🟢 KPI back on target — Error rate over the last 7 days is 0\.00 %/);
    const states = await db.kpiAlertState.findMany({ orderBy: { key: "asc" } });
    expect(states.filter((s) => s.breached)).toEqual([]);
  });

  it("flags slow answers and a slow database against their targets", async () => {
    // a 2 s timeout: the 230 ms answer is slow, not missing, even on a loaded machine
    const file = fileFor([{ id: "api", url: api.healthUrl }], { timeoutMs: 2_000 });
    api.setLatency(230);
    const timer = createDatabaseTimer(
      async () => ({ side: "target", from: "the test", url: state.url }),
      "SELECT pg_sleep(0.06)",
    );
    const m = monitor(file, await newBoss(), timer);
    await m.round(new Date(clock));
    await timer.close();
    expect(texts()).toHaveLength(2);
    expect(texts()[0]).toMatch(
      /^🔴 KPI breach — Average response time over the last 24 h is 2\d\d ms \(target ≤ 200 ms\)/,
    );
    expect(texts()[1]).toMatch(
      /^🔴 KPI breach — Database query time over the last 24 h is \d+(\.\d)? ms \(target ≤ 50 ms\)/,
    );
  });

  it("post a message that could not be sent at the next round", async () => {
    const file = fileFor([{ id: "api", url: api.healthUrl }]);
    const m = monitor(file, await newBoss());
    api.setFailing(true);
    failPosts = 1; // the availability breach fails to post; the error-rate one goes
    await m.round(new Date(clock));
    expect(texts()).toHaveLength(1);
    expect(texts()[0]).toContain("Error rate");
    expect((await db.kpiAlertState.findUnique({ where: { key: "availability" } }))?.breached).toBe(false);
    clock += 60_000;
    await m.round(new Date(clock));
    expect(texts().some((t) => t.startsWith("🔴 KPI breach — Availability"))).toBe(true);
    expect(texts().filter((t) => t.includes("Error rate"))).toHaveLength(1);
  });
});

describe("retention", () => {
  it("prunes samples past kpis.retentionDays, at most once an hour", async () => {
    const file = fileFor([{ id: "api", url: api.healthUrl }]);
    const m = monitor(file, await newBoss());
    const old = (days: number) => ({
      at: new Date(clock - days * 24 * 3600_000),
      target: "api",
      ok: true,
      status: 200,
      latencyMs: 5,
      error: null,
    });
    await db.kpiSample.createMany({ data: [old(31), old(40), old(29)] });
    const first = await m.round(new Date(clock));
    expect(first.pruned).toBe(2);
    expect(await db.kpiSample.count()).toBe(2); // the 29-day-old one and this round's
    await db.kpiSample.createMany({ data: [old(45)] });
    clock += 30 * 60_000;
    expect((await m.round(new Date(clock))).pruned).toBe(0);
    clock += 31 * 60_000;
    expect((await m.round(new Date(clock))).pruned).toBe(1);
  });
});

describe("the probe job", () => {
  it("runs each time slot once however many replicas tick, and not at all while switched off", async () => {
    const file = fileFor([{ id: "api", url: api.healthUrl }]);
    const [bossA, bossB] = [await newBoss(), await newBoss()];
    const a = monitor(file, bossA);
    const b = monitor(file, bossB);
    await a.start({ timer: false });
    await b.start({ timer: false });
    try {
      const before = api.requests().length;
      // the runbook has a kpi.monitor step that has not run: nothing is sampled
      expect(await a.tick()).toBeNull();
      expect(await b.tick()).toBeNull();

      await setMonitoring(db, "kpi-test", true, "U0OP", new Date(clock));
      const ids = [await a.tick(), await b.tick()];
      expect(ids.filter(Boolean)).toHaveLength(1); // the second replica's send was the same job
      await waitFor(async () => (await db.kpiSample.count()) === 1);
      clock += 60_000;
      const next = [await b.tick(), await a.tick()];
      expect(next.filter(Boolean)).toHaveLength(1);
      await waitFor(async () => (await db.kpiSample.count()) === 2);
      // every job queued for a slot is worked by now, so the count is final: no duplicate came
      await waitFor(async () => (await unfinishedKpiJobs()) === 0);
      expect(await db.kpiSample.count()).toBe(2);
      expect(api.requests().length - before).toBe(2);

      await setMonitoring(db, "kpi-test", false, "U0OP", new Date(clock));
      clock += 60_000;
      expect(await a.tick()).toBeNull();
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("samples without a switch when the runbook has no kpi.monitor step", async () => {
    const file = fileFor([{ id: "api", url: api.healthUrl }], { step: false });
    const m = monitor(file, await newBoss());
    await m.start({ timer: false });
    try {
      clock += 3600_000;
      expect(await m.tick()).not.toBeNull();
    } finally {
      await m.stop();
    }
  });
});

/** KPI probe jobs pg-boss still holds as queued, retrying or active. */
async function unfinishedKpiJobs(): Promise<number> {
  const rows = await db.$queryRawUnsafe<Array<{ n: bigint }>>(
    "SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state NOT IN ('completed', 'failed', 'cancelled')",
    KPI_QUEUE,
  );
  return Number(rows[0]?.n ?? 0);
}

const waitFor = (cond: () => Promise<boolean>, timeoutMs = 10_000) =>
  waitUntil("the monitor", cond, { timeoutMs, intervalMs: 100 });
