import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { renderBlocksAsText } from "../../src/views/text.js";
import {
  APPROVER,
  CHANNEL,
  OPERATOR,
  replyText,
  STRANGER,
  startTestBot,
  type TestBot,
} from "../helpers/bot.js";
import { type DenyingCostExplorer, startDenyingCostExplorer } from "../helpers/denying-cost-explorer.js";
import { waitForValue, waitUntil } from "../helpers/wait.js";

/*
 * `/migrate kpi` and `/migrate cost` through the real receiver, and the KPI probe job started
 * with the bot: the kpi.monitor step switches it on, the bot's own ticker then samples.
 */

function config(healthUrl: string): string {
  return `version: 1
project: testco
environment: kpi-cmd
slack:
  channel: ${CHANNEL}
access:
  operators: [${OPERATOR}]
  approvers: [${APPROVER}]
  channels: [${CHANNEL}]
  localOperator: test-terminal
kpis:
  probes:
    intervalSeconds: 10
    timeoutMs: 1000
    endpoints:
      - { id: api, url: "${healthUrl}" }
cost:
  monthlyTarget: 85
  budgetAlert: 100
runbook:
  phases:
    - id: operate
      title: Operate
      steps:
        - id: monitor
          title: Watch the KPIs
          uses: kpi.monitor
`;
}

let t: TestBot;
let api: AppServer;
let ce: DenyingCostExplorer;

beforeAll(async () => {
  api = await startAppServer({ name: "api" });
  // Cost Explorer that refuses everything, as AWS does for a policy without ce:*
  ce = await startDenyingCostExplorer(
    "User: arn:aws:iam::123456789012:user/bot is not authorized to perform: ce:GetCostAndUsage",
  );
  t = await startTestBot("kpi_cmd", {
    config: config(api.healthUrl),
    env: ce.env,
  });
});
afterAll(async () => {
  await t?.stop();
  await api?.stop();
  await ce?.stop();
});

async function blocksOf(res: Awaited<ReturnType<TestBot["command"]>>): Promise<string> {
  await replyText(t, res, 15_000);
  const id = res.responseUrl.split("/").pop();
  const call = t.fake
    .calls("response_url")
    .find((c) => (c.args as { response_url_id?: string }).response_url_id === id);
  return renderBlocksAsText((call?.args as { blocks?: unknown[] } | undefined)?.blocks);
}

describe("/migrate kpi", () => {
  it("says sampling waits for the kpi.monitor step, then shows the figures once it has run", async () => {
    const before = await blocksOf(await t.command("kpi"));
    expect(before).toContain("KPIS — THE LAST 24 H");
    expect(before).toContain("No KPI samples in the last 24 h.");
    expect(before).toContain(
      "Not sampling: sampling starts when the `monitor` step runs — `/migrate run monitor`",
    );

    expect(await replyText(t, await t.command("run monitor"))).toContain("queued as");
    const monitorRun = await waitForValue(
      "the monitor run to finish",
      () => t.bot.deps.db.run.findFirst({ where: { target: "monitor" }, orderBy: { createdAt: "desc" } }),
      (run) => run?.status === "succeeded" || run?.status === "failed",
      { intervalMs: 100 },
    );
    expect(monitorRun?.error ?? null).toBeNull();
    expect(monitorRun?.status).toBe("succeeded");
    const after = await blocksOf(await t.command("kpi"));
    expect(after).toContain("✅ *Availability*");
    expect(after).toContain("100.00 % (target ≥ 99.9 %)");
    expect(after).toMatch(
      /Sampling 1 endpoint every 10 s · last round|Sampling 1 endpoint every 10 s · no round yet/,
    );
  });

  it("keeps sampling from the bot's own probe job once switched on", async () => {
    const first = await t.bot.deps.db.kpiSample.count();
    expect(first).toBeGreaterThanOrEqual(1);
    await waitUntil(
      "the bot's KPI probe job to take a sample",
      // a round of the bot's own job: new samples and the round recorded, both (the samples are
      // written before the round is)
      async () =>
        (await t.bot.deps.db.kpiSample.count()) > first &&
        (await t.bot.deps.db.kpiMonitorState.findUnique({ where: { env: "kpi-cmd" } }))?.lastRoundAt != null,
      {
        timeoutMs: 25_000,
        intervalMs: 250,
      },
    );
    const state = await t.bot.deps.db.kpiMonitorState.findUnique({ where: { env: "kpi-cmd" } });
    expect(state?.lastRoundAt).not.toBeNull();
  }, 40_000);

  it("takes a window, and says what a window looks like when it cannot read one", async () => {
    expect(await replyText(t, await t.command("kpi 7d"))).toMatch(
      /^KPIs over the last 7 days: availability 100\.00 %/,
    );
    const bad = await t.command("kpi lately");
    expect(await replyText(t, bad)).toContain(
      "`lately` is not a window — write a number and m, h or d, e.g. `24h`, `7d` or `30m`.",
    );
    expect(await replyText(t, await t.command("kpi 400d"))).toContain("Samples are kept 90 days");
  });

  it("is open to approvers (it only reads) but not to strangers", async () => {
    expect(await replyText(t, await t.command("kpi", { user: APPROVER }))).toMatch(
      /^KPIs over the last 24 h/,
    );
    expect(await replyText(t, await t.command("kpi", { user: STRANGER }))).toContain("not an operator");
  });
});

describe("/migrate cost", () => {
  it("says cost is unavailable, why, and which IAM permission to add when Cost Explorer refuses", async () => {
    const text = await replyText(t, await t.command("cost"), 15_000);
    expect(text).toContain("💰 Cost unavailable: AWS refused ce:GetCostAndUsage");
    expect(text).toContain("Missing IAM permission: `ce:GetCostAndUsage`");
    expect(text).toContain(
      "ce:GetCostAndUsage, ce:GetCostForecast and ce:GetReservationPurchaseRecommendation",
    );
    expect(ce.calls()).toBe(1);
  });

  it("answers an argument it does not know with the usage", async () => {
    const text = await replyText(t, await t.command("cost monthly"));
    expect(text).toContain("`cost` takes nothing, or `refresh`");
  });
});
