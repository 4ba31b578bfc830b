import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { MigrationFile, VerificationConfig } from "../../../src/config/schema.js";
import {
  createVerifyReliabilityStep,
  parseSupervisorStatus,
} from "../../../src/jobs/steps/verify/reliability.js";
import type { VerificationReport } from "../../../src/jobs/steps/verify/report.js";
import { type AppServer, startAppServer } from "../../../src/sandbox/app-servers.js";
import { createPrismaClient, type Db } from "../../../src/store/client.js";
import { verificationView } from "../../../src/views/verification.js";
import { createTestDatabase, type TestDatabase, withAdmin } from "../../helpers/db.js";
import { makeStepContext, type TestStepContext } from "../../helpers/step-context.js";
import { depsFor, fileWith, type HostWorld, row, startHostWorld } from "./world.js";

let w: HostWorld;
let app: AppServer;
let state: TestDatabase;
let db: Db;
const role = `cutover_pool_${process.pid}`;

beforeAll(async () => {
  [w, app, state] = await Promise.all([
    startHostWorld(),
    startAppServer({ name: "new" }),
    createTestDatabase("verify_rel"),
  ]);
  db = createPrismaClient(state.url);
  await withAdmin((c) =>
    c.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2`),
  );
});
afterAll(async () => {
  await db?.$disconnect();
  await Promise.all([w?.stop(), app?.stop(), state?.drop()]);
  await withAdmin((c) => c.query(`DROP ROLE IF EXISTS ${role}`)).catch(() => undefined);
});

/** Supervisor on the fake host: `gogojap` runs as pid 100; after a kill it comes back (or not). */
function emulateSupervisor(opts: { comesBack: boolean; afterMs: number }) {
  const pid = 100;
  let killedAt: number | undefined;
  w.host.on(/supervisorctl status 'gogojap'$/, () => {
    if (killedAt === undefined)
      return { stdout: `gogojap                          RUNNING   pid ${pid}, uptime 1:02:03\n` };
    if (!opts.comesBack)
      return {
        stdout:
          "gogojap                          BACKOFF   Exited too quickly (process log may have details)\n",
        code: 3,
      };
    if (Date.now() - killedAt < opts.afterMs)
      return { stdout: "gogojap                          STARTING\n", code: 3 };
    return { stdout: `gogojap                          RUNNING   pid ${pid + 1}, uptime 0:00:01\n` };
  });
  w.host.on(/^sudo -n kill -KILL \d+$/, () => {
    killedAt = Date.now();
    return {};
  });
}

beforeEach(() => {
  app.setFailing(false);
  w.host.on(/sh -c .*stat -c/, (command) =>
    command.includes("gogojap-celery-stderr.log")
      ? {
          stdout: "1700000000\n",
          stderr:
            "stat: cannot stat '/var/log/supervisor/gogojap-celery-stderr.log': No such file or directory\n",
          code: 1,
        }
      : { stdout: "1700000000\n20480 1699999880\n2\n" },
  );
});

async function run(
  edit: (v: VerificationConfig, f: MigrationFile) => void,
  opts: {
    ctx?: TestStepContext;
    raw?: Record<string, unknown>;
    env?: Record<string, string>;
    withDb?: boolean;
  } = {},
) {
  const file = await fileWith((f, v) => {
    w.point(f);
    f.target!.rds!.urlEnv = "TARGET_DB_URL";
    f.kpis.probes.endpoints = [{ id: "api-health", url: app.healthUrl, expectStatus: 200 }];
    v.reliability.dbConnectionPool.connections = 5;
    edit(v, f);
  });
  const step = createVerifyReliabilityStep(
    depsFor(
      file,
      w.dataDir,
      { ...w.env, TARGET_DB_URL: state.url, ...opts.env },
      opts.withDb === false ? undefined : db,
    ),
  );
  const ctx = opts.ctx ?? makeStepContext();
  const input = step.parse({ restartPollMs: 50, ...opts.raw });
  const outcome = await step.run(input, ctx);
  const verified = await step.verify(input, ctx);
  return { outcome, verified, report: ctx.checkpoints.get("report") as VerificationReport, ctx, step, input };
}

describe("verify.reliability: app auto-restart over SSH (opt-in)", () => {
  it("is skipped unless opted into, and then kills the app once and times Supervisor bringing it back", async () => {
    const off = await run(() => undefined, { raw: { only: ["autoRestart"] } });
    expect(row(off.report, "autoRestart")).toMatchObject({
      status: "skip",
      hint: expect.stringMatching(/autoRestart\.enabled: true/),
    });
    expect(w.host.ran(/kill -KILL/)).toHaveLength(0);

    emulateSupervisor({ comesBack: true, afterMs: 300 });
    const { report, outcome, ctx, step, input } = await run(
      (v) => {
        v.reliability.autoRestart = { enabled: true, service: "gogojap", withinSeconds: 5 };
      },
      { raw: { only: ["autoRestart"] } },
    );
    expect(w.host.ran(/kill -KILL/)).toEqual(["sudo -n kill -KILL 100"]);
    const r = row(report, "autoRestart");
    expect(r).toMatchObject({ status: "pass", figures: { restarted: true, oldPid: 100, newPid: 101 } });
    expect(r.figures.seconds).toBeGreaterThanOrEqual(0.3);
    expect(r.figures.seconds).toBeLessThan(5);
    expect(r.measured).toMatch(/^back in [\d.]+ s \(pid 100 → 101\)$/);
    expect(outcome.figures?.["autoRestart.ok"]).toBe(true);
    // a retry of the same run does not kill the app a second time
    await step.run(input, ctx);
    expect(w.host.ran(/kill -KILL/)).toHaveLength(1);
  });

  it("fails, bounded by withinSeconds, when Supervisor does not bring it back", async () => {
    emulateSupervisor({ comesBack: false, afterMs: 0 });
    const started = Date.now();
    const { report, verified } = await run(
      (v) => {
        v.reliability.autoRestart = { enabled: true, withinSeconds: 1 };
      },
      { raw: { only: ["autoRestart"] } },
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(verified.ok).toBe(false);
    expect(row(report, "autoRestart")).toMatchObject({
      title: "App auto-restart (gogojap)",
      status: "fail",
      measured: "not back after 1 s (now BACKOFF)",
      hint: expect.stringContaining("`autorestart=true` in /etc/supervisor/conf.d/gogojap.conf"),
    });
  });

  it("fails when the killed program's children outlive it (they keep its port), naming them", async () => {
    emulateSupervisor({ comesBack: true, afterMs: 0 });
    // the killed master's workers, still in its process group (uvicorn's do not watch their parent)
    w.host.on(/^pgrep -g 100 /, { stdout: "104\n105\n" });
    const { report } = await run(
      (v) => {
        v.reliability.autoRestart = { enabled: true, withinSeconds: 1 };
      },
      { raw: { only: ["autoRestart"] } },
    );
    expect(row(report, "autoRestart")).toMatchObject({
      status: "fail",
      measured: "RUNNING again as pid 101, but 2 processes of the killed pid 100's group still run after 1 s",
      hint: expect.stringContaining("PR_SET_PDEATHSIG"),
      figures: { restarted: false, leftovers: 2 },
    });
    w.host.on(/^pgrep -g 100 /, { stdout: "" });
  });

  it("reads supervisorctl's status lines", () => {
    expect(parseSupervisorStatus("gogojap RUNNING pid 12, uptime 0:00:09\n", "gogojap")).toEqual({
      state: "RUNNING",
      pid: 12,
    });
    expect(
      parseSupervisorStatus("gogojap-celery RUNNING pid 13\ngogojap STOPPED Mar 10\n", "gogojap"),
    ).toEqual({ state: "STOPPED" });
    expect(parseSupervisorStatus("gogojap:gogojap_00 RUNNING pid 14\n", "gogojap")).toEqual({
      state: "RUNNING",
      pid: 14,
    });
    expect(parseSupervisorStatus("", "gogojap")).toEqual({ state: "UNKNOWN" });
  });
});

describe("verify.reliability: database pool, error logs, monitoring", () => {
  it("opens the configured connections at once and reports the server's limit", async () => {
    const { report } = await run(() => undefined, { raw: { only: ["dbPool"] } });
    const r = row(report, "dbPool");
    expect(r).toMatchObject({ status: "pass", figures: { opened: 5, wanted: 5 } });
    expect(r.figures.maxConnections).toBeGreaterThanOrEqual(5);
    expect(r.figures.inUse).toBeGreaterThanOrEqual(5);
    expect(r.measured).toMatch(
      /^5 of 5 connections at once in [\d.]+ ms; the server allows \d+, \d+ in use$/,
    );
  });

  it("fails when the database refuses part of the pool, naming the refusal", async () => {
    const limited = new URL(state.url);
    limited.username = role;
    const { report } = await run(() => undefined, {
      raw: { only: ["dbPool"] },
      env: { TARGET_DB_URL: limited.toString() },
    });
    const r = row(report, "dbPool");
    expect(r).toMatchObject({ status: "fail", figures: { opened: 2, wanted: 5 } });
    expect(r.measured).toMatch(/too many connections for role/);
    expect(r.hint).toMatch(/max_connections/);
  });

  it("checks each error log exists on the host, with its size, age and error lines", async () => {
    const { report } = await run(
      (v) => {
        v.reliability.errorLogging.logPaths = [];
      },
      { raw: { only: ["errorLog"] } },
    );
    // without logPaths: each Supervisor program's stderr log
    expect(report.rows.map((r) => r.id)).toEqual([
      "errorLog.gogojap-stderr-log",
      "errorLog.gogojap-celery-stderr-log",
      "errorLog.gogojap-celery-beat-stderr-log",
    ]);
    expect(row(report, "errorLog.gogojap-stderr-log")).toMatchObject({
      status: "pass",
      measured: "20 KB, written 2 min ago, 2 error lines in the last 200",
      figures: { bytes: 20480, ageSeconds: 120, errorLines: 2 },
    });
    expect(row(report, "errorLog.gogojap-celery-stderr-log")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/No such file or directory/),
      hint: expect.stringMatching(/stderr_logfile/),
    });
  });

  it("checks the KPI probe targets answer, samples are fresh, and alerts have somewhere to go", async () => {
    const none = await run(() => undefined, { raw: { only: ["monitoring"] } });
    expect(row(none.report, "monitoring.probes")).toMatchObject({
      status: "pass",
      figures: { endpoints: 1, answering: 1 },
    });
    expect(row(none.report, "monitoring.samples")).toMatchObject({
      status: "skip",
      measured: "no sample yet",
    });
    expect(row(none.report, "monitoring.alerts")).toMatchObject({
      status: "pass",
      figures: { budgetAlert: 100 },
    });

    await db.kpiSample.create({
      data: {
        target: "api-health",
        ok: true,
        status: 200,
        latencyMs: 12,
        at: new Date(Date.now() - 3600_000),
      },
    });
    app.setFailing(true);
    const bad = await run(
      (_v, f) => {
        delete f.cost;
      },
      { raw: { only: ["monitoring"] } },
    );
    expect(row(bad.report, "monitoring.probes")).toMatchObject({
      status: "fail",
      measured: "0 of 1 answer as expected (api-health: HTTP 503)",
    });
    expect(row(bad.report, "monitoring.samples")).toMatchObject({
      status: "fail",
      hint: expect.stringMatching(/stopped sampling/),
    });
    expect(row(bad.report, "monitoring.samples").figures.ageSeconds).toBeGreaterThanOrEqual(3600);
    expect(row(bad.report, "monitoring.alerts")).toMatchObject({
      status: "fail",
      hint: expect.stringMatching(/budgetAlert/),
    });

    await db.kpiSample.create({ data: { target: "api-health", ok: true, status: 200, latencyMs: 12 } });
    app.setFailing(false);
    const fresh = await run(() => undefined, { raw: { only: ["monitoring"] } });
    expect(row(fresh.report, "monitoring.samples").status).toBe("pass");
    expect(fresh.verified.ok).toBe(true);
  });

  it("fails with no probe endpoints, and renders the whole report", async () => {
    emulateSupervisor({ comesBack: true, afterMs: 0 });
    await db.kpiSample.create({ data: { target: "api-health", ok: true, status: 200, latencyMs: 9 } });
    const { report, verified } = await run((v, f) => {
      f.kpis.probes.endpoints = [];
      v.reliability.autoRestart.enabled = true;
    });
    expect(row(report, "monitoring.probes")).toMatchObject({
      status: "fail",
      measured: "no KPI probe endpoints",
    });
    expect(report.rows.map((r) => `${r.id} ${r.status}`)).toEqual([
      "autoRestart pass",
      "dbPool pass",
      "errorLog.gogojap-stderr-log pass",
      "monitoring.probes fail",
      "monitoring.samples pass",
      "monitoring.alerts pass",
    ]);
    expect(verified.summary.split("\n")[0]).toBe("reliability: 5 of 6 checks passed, 1 failed");
    const view = verificationView(report);
    const text = JSON.stringify(view.blocks);
    expect(text).toContain("KPI probe targets");
    expect(text).toContain("kpis.probes.endpoints");
    expect(view.text).toBe("Reliability verification: 5 of 6 checks passed, 1 failed");
  });
});
