import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CostExplorerApi } from "../../src/cloud/cost-explorer.js";
import { parseMigrationFile } from "../../src/config/load.js";
import { ErrorCode } from "../../src/errors.js";
import { createCostReportStep } from "../../src/jobs/steps/ops/cost-report.js";
import { createKpiMonitorStep } from "../../src/jobs/steps/ops/kpi-monitor.js";
import { monitoringState } from "../../src/kpi/KpiMonitor.js";
import { createLogger } from "../../src/log.js";
import { createPorts } from "../../src/ports.js";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { makeStepContext } from "../helpers/step-context.js";

let state: TestDatabase;
let db: Db;
let api: AppServer;
const log = createLogger({ secrets: [], level: "silent" });

const file = (endpoints: string) =>
  parseMigrationFile(
    `version: 1
project: shop
environment: steps
slack: { channel: C0MIGRATE }
access: { operators: [U0OP], approvers: [U0AP], channels: [C0MIGRATE] }
kpis:
  probes:
    endpoints: ${endpoints}
cost: { monthlyTarget: 85, budgetAlert: 100 }
runbook:
  phases:
    - id: p
      title: P
      steps:
        - { id: monitor, uses: kpi.monitor }
        - { id: cost, uses: cost.report }
`,
    { checkEnv: false },
  );

beforeAll(async () => {
  state = await createTestDatabase("kpi_steps");
  db = createPrismaClient(state.url);
  api = await startAppServer({ name: "api" });
});
afterAll(async () => {
  await api?.stop();
  await db?.$disconnect();
  await state?.drop();
});
beforeEach(async () => {
  await db.kpiMonitorState.deleteMany();
  await db.costCache.deleteMany();
});

describe("kpi.monitor", () => {
  it("plans, switches sampling on with a first round, verifies, and undoes", async () => {
    const f = file(`[{ id: api, url: "${api.healthUrl}" }]`);
    const step = createKpiMonitorStep({
      env: {},
      ports: createPorts({ env: {} }, f),
      file: f,
      dataDir: "/tmp",
      log,
      db,
    });
    const input = step.parse(undefined);
    const ctx = makeStepContext({ run: { requestedBy: "U0OP" } });
    expect((await step.plan(input, ctx)).summary).toMatch(
      /^would sample `api` \(http:\/\/127\.0\.0\.1:\d+\/health\) every 60 s/,
    );
    const out = await step.run(input, ctx);
    expect(out.summary).toMatch(/this round: api \d+(\.\d)? ms$/);
    const watched = await step.run(step.parse({ days: 14 }), ctx);
    expect(watched.summary).toMatch(
      /; day 1 of 14: availability 100\.00 %, avg \d+(\.\d)? ms, error rate 0\.00 %, DB –$/,
    );
    expect(await monitoringState(db, "steps")).toMatchObject({ enabled: true, changedBy: "U0OP" });
    expect((await step.verify(input, ctx)).ok).toBe(true);
    expect((await step.plan(input, ctx)).changes[0]?.action).toBe("none");
    await step.undo?.(input, ctx);
    expect((await monitoringState(db, "steps"))?.enabled).toBe(false);
    expect((await step.verify(input, ctx)).summary).toBe("sampling is off");
  });

  it("says what to add when there is nothing to probe, and rejects options it does not have", async () => {
    const step = createKpiMonitorStep({
      env: {},
      ports: createPorts({ env: {} }, file("[]")),
      file: file("[]"),
      dataDir: "/tmp",
      log,
      db,
    });
    const ctx = makeStepContext();
    await expect(step.run({}, ctx)).rejects.toMatchObject({
      code: ErrorCode.ConfigInvalid,
      hint: expect.stringContaining("kpis.probes.endpoints"),
    });
    expect(() => step.parse({ every: 5 })).toThrow(/kpi\.monitor: .*every/);
  });
});

describe("cost.report", () => {
  const fake = (deny: boolean): CostExplorerApi => ({
    async costByServiceDaily() {
      if (deny)
        throw Object.assign(new Error("not authorized to perform: ce:GetCostAndUsage"), {
          name: "AccessDeniedException",
        });
      return [
        { date: "2026-11-01", service: "Amazon Lightsail", amount: 50, unit: "USD" },
        { date: "2026-11-02", service: "Amazon Lightsail", amount: 60, unit: "USD" },
      ];
    },
    async forecast() {
      return { amount: 400, unit: "USD" };
    },
    async reservationRecommendation() {
      return undefined;
    },
  });
  const now = () => new Date("2026-11-03T06:00:00Z");

  it("reports the month and tells the channel when it heads over the budget alert", async () => {
    const step = createCostReportStep({
      env: {},
      ports: createPorts({ env: {} }, file("[]")),
      file: file("[]"),
      dataDir: "/tmp",
      log,
      db,
      now,
      costExplorer: () => fake(false),
    });
    const alerts: string[] = [];
    const ctx = { ...makeStepContext(), alert: (a: { text: string }) => void alerts.push(a.text) };
    const out = await step.run(step.parse({}), ctx);
    expect(out.summary).toMatch(
      /^\$110\.00 month to date, forecast \$510\.00 for the month against \$85\.00 \(budget alert \$100\.00\): over-budget/,
    );
    expect(alerts).toEqual([
      expect.stringMatching(
        /^🚨 Cost: the month is heading for \$510\.00, above the budget alert of \$100\.00/,
      ),
    ]);
    expect((await step.verify(step.parse({}), ctx)).ok).toBe(true);
  });

  it("fails without retries when Cost Explorer refuses, naming the permission", async () => {
    const step = createCostReportStep({
      env: {},
      ports: createPorts({ env: {} }, file("[]")),
      file: file("[]"),
      dataDir: "/tmp",
      log,
      db,
      now,
      costExplorer: () => fake(true),
    });
    await expect(step.run(step.parse({}), makeStepContext())).rejects.toMatchObject({
      code: ErrorCode.AwsPermissionDenied,
      message: expect.stringContaining("Missing IAM permission: `ce:GetCostAndUsage`"),
    });
  });
});
