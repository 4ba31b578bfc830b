import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { type CostExplorerProxy, startCostExplorerProxy } from "../../src/sandbox/cost-explorer-proxy.js";
import type { FakeMessage } from "../../src/sandbox/FakeSlack.js";
import { CHANNEL, OPERATOR, startTestBot, type TestBot } from "../helpers/bot.js";
import { type MotoHandle, useMoto } from "../helpers/moto.js";

/*
 * The production wiring of what a run says in Slack: startCutover builds the deps (the Runner over
 * RunEvents), subscribes SlackProgress, and every step's notes, reports and alerts must reach the
 * fake Slack's channel as a person would see them. The runner tests use a hand-made observer, so
 * a fan-out that drops one kind of event (RunEvents once had no runReport) passes them all.
 */

let t: TestBot;
let app: AppServer;
let moto: MotoHandle;
let ce: CostExplorerProxy;

const config = (appUrl: string) => `version: 1
project: testco
environment: test
slack:
  channel: ${CHANNEL}
access:
  operators: [${OPERATOR}]
  approvers: [U0APPROVER]
  channels: [${CHANNEL}]
engine:
  attempts: 1
  backoffMs: 50
verification:
  baseUrl: ${appUrl}
  functional:
    - { id: health, kind: http, path: /health }
    - { id: products, kind: http, path: /api/v1/products, minItems: 1 }
cost:
  monthlyTarget: 5
  budgetAlert: 10
runbook:
  phases:
    - id: checks
      title: Checks
      steps:
        - { id: smoke, uses: verify.functional }
        - { id: spend, uses: cost.report }
`;

beforeAll(async () => {
  // a private moto: its Cost Explorer answers from a queue other test files may fill
  [app, moto] = await Promise.all([startAppServer({ name: "new" }), useMoto({ forcePrivate: true })]);
  ce = await startCostExplorerProxy(moto.endpoint);
  t = await startTestBot("events_wiring", {
    config: config(app.url),
    env: {
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_COST_EXPLORER: ce.url,
    },
  });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await ce?.close();
  await moto?.stop();
  await app?.stop();
});

async function runTo(target: string): Promise<{ runId: string; message: FakeMessage; status: string }> {
  const submitted = await t.bot.deps.runner.submit({
    target,
    dryRun: false,
    requestedBy: OPERATOR,
    channel: CHANNEL,
    idempotencyKey: null,
  });
  if (!submitted.created) throw new Error("the run was not created");
  const runId = submitted.runId;
  await expect
    .poll(async () => (await t.bot.deps.db.run.findUnique({ where: { id: runId } }))?.status, {
      timeout: 30_000,
      interval: 100,
    })
    .toMatch(/^(succeeded|failed|cancelled)$/);
  const row = await t.bot.deps.db.run.findUniqueOrThrow({ where: { id: runId } });
  const find = () => t.fake.messages(CHANNEL).find((m) => m.ts === row.messageTs);
  await expect.poll(find, { timeout: 10_000 }).toBeDefined();
  return { runId, status: row.status, message: find()! };
}

describe("what a run says reaches the channel through the production wiring", () => {
  it("posts step notes and step reports in the run's thread and alerts at the top of the channel", async () => {
    app.setRoute("/api/v1/products", { body: [{ id: 1 }, { id: 2 }] });
    const { runId, status } = await runTo("checks");
    expect(status).toBe("succeeded");
    // the alert, a top-level message, and the reports and notes in the thread, once all are sent
    await expect
      .poll(() => t.fake.messages(CHANNEL).find((m) => m.text.includes("Cost:"))?.text, { timeout: 10_000 })
      .toMatch(/🚨 Cost: the month is heading for .*above the budget alert of \$10\.00/);
    const row = await t.bot.deps.db.run.findUniqueOrThrow({ where: { id: runId } });
    const thread = async () =>
      t.fake
        .messages(CHANNEL)
        .find((m) => m.ts === row.messageTs)
        ?.replies.map((r) => r.text) ?? [];
    await expect.poll(thread, { timeout: 10_000 }).toHaveLength(3);
    const [report, smokeNote, spendNote] = await thread();
    // the verification table (a report: blocks) before the step's own note
    expect(report).toMatch(/functional/i);
    const reply = t.fake.messages(CHANNEL).find((m) => m.ts === row.messageTs)!.replies[0]!;
    expect(JSON.stringify(reply.blocks)).toContain("/api/v1/products");
    expect(smokeNote).toMatch(/smoke/);
    expect(spendNote).toMatch(/spend/);
    // the alert is no reply: the whole channel sees it, apart from the run's message
    const alert = t.fake.messages(CHANNEL).find((m) => m.text.includes("Cost:"))!;
    expect(alert.ts).not.toBe(row.messageTs);
    expect(alert.thread_ts).toBeUndefined();
  }, 60_000);

  it("posts the report of a failed verification, so the thread says which check failed", async () => {
    app.setRoute("/api/v1/products", { body: [] });
    const { message, status } = await runTo("smoke");
    expect(status).toBe("failed");
    await expect
      .poll(() => t.fake.messages(CHANNEL).find((m) => m.ts === message.ts)?.replies.length, {
        timeout: 10_000,
      })
      .toBeGreaterThanOrEqual(2);
    const replies = t.fake.messages(CHANNEL).find((m) => m.ts === message.ts)!.replies;
    const table = replies.find((r) => JSON.stringify(r.blocks ?? []).includes("/api/v1/products"));
    expect(table, replies.map((r) => r.text).join("\n")).toBeDefined();
    expect(JSON.stringify(table!.blocks)).toMatch(/0 items|fewer|want/);
  }, 60_000);
});
