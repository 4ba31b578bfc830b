import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningCutover, startCutover } from "../../src/app.js";
import { pngSize } from "../../src/charts/png.js";
import { createLogger } from "../../src/log.js";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { CHANNEL, OPERATOR, startTestBot, type TestBot } from "../helpers/bot.js";
import { type DenyingCostExplorer, startDenyingCostExplorer } from "../helpers/denying-cost-explorer.js";

/**
 * The daily digest as the bot posts it: due at start-up (the file says 00:00 UTC), one message
 * with two PNG charts uploaded through Slack's external upload flow, cost unavailable because
 * Cost Explorer refuses (the digest still posts, saying why), and no second digest from a
 * second replica on the same state database.
 */
let t: TestBot;
let api: AppServer;
let ce: DenyingCostExplorer;

function config(apiUrl: string): string {
  return `version: 1
project: digestco
environment: test
slack: { channel: ${CHANNEL} }
access:
  operators: [${OPERATOR}]
  approvers: [U0APPROVER]
  channels: [${CHANNEL}]
engine: { attempts: 1, backoffMs: 50 }
kpis:
  probes:
    intervalSeconds: 10
    endpoints:
      - { id: api-health, url: ${apiUrl}/health }
    database: { enabled: false }
cost:
  monthlyTarget: 85
  budgetAlert: 100
digest: { enabled: true, time: "00:00", timezone: UTC }
runbook:
  phases:
    - id: switch
      title: Verify and switch
      steps:
        - { id: monitoring, uses: kpi.monitor }
`;
}

beforeAll(async () => {
  api = await startAppServer({ name: "new" });
  // Cost Explorer that refuses every request, as with a role lacking ce:GetCostAndUsage
  ce = await startDenyingCostExplorer("User is not authorized to perform: ce:GetCostAndUsage");
  t = await startTestBot("digest-bot", {
    config: config(api.url),
    env: ce.env,
  });
});

afterAll(async () => {
  await t?.stop();
  await api?.stop();
  await ce?.stop();
});

describe("the daily digest, posted by the bot", () => {
  it("posts one message with two PNG charts, saying why cost is unavailable", async () => {
    // one message: the digest's blocks carried by the charts' share (files.completeUploadExternal)
    const post = await t.fake.waitFor(
      (c) => c.method === "files.completeUploadExternal" && JSON.stringify(c.args).includes("Daily digest"),
      { timeoutMs: 60_000 },
    );
    const body = JSON.stringify(post.args);
    expect(body).toContain("Cost");
    expect(body).toMatch(/unavailable/i);
    expect(body).toMatch(/ce:GetCostAndUsage|AccessDenied/);
    expect(ce.calls()).toBeGreaterThan(0);

    await expect
      .poll(async () => (await t.bot.deps.db.digest.findFirstOrThrow({ where: { env: "test" } })).status)
      .toBe("posted");
    // the charts went through files.getUploadURLExternal → upload → files.completeUploadExternal
    await expect
      .poll(() => t.fake.files().filter((f) => f.uploaded && f.channel === CHANNEL).length, {
        timeout: 10_000,
      })
      .toBe(2);
    for (const f of t.fake.files()) {
      expect(f.bytes.subarray(1, 4).toString("latin1")).toBe("PNG");
      const size = pngSize(f.bytes)!;
      expect(size.width).toBeGreaterThanOrEqual(400);
      expect(size.height).toBeGreaterThanOrEqual(200);
      expect(f.bytes.length).toBeGreaterThan(5_000);
    }
  }, 90_000);

  it("a second replica on the same state database posts no second digest that day", async () => {
    const before = t.fake.calls().length;
    let second: RunningCutover | undefined;
    try {
      second = await startCutover({
        env: { ...t.env, PORT: "0" },
        logger: createLogger({ secrets: [], level: "silent" }),
      });
      // its start-up check is over once its schedule sleeps until the next digest time
      const schedule = second.digest;
      if (!schedule) throw new Error("the second replica has no digest schedule");
      await expect.poll(() => schedule.nextRunAt, { timeout: 20_000 }).toBeDefined();
      // and asked again, it finds the day taken rather than posting
      expect((await schedule.tick()).kind).toBe("taken");
      const digests = t.fake
        .calls()
        .slice(before)
        .filter((c) => JSON.stringify(c.args).includes("Daily digest"));
      expect(digests).toHaveLength(0);
      expect(await t.bot.deps.db.digest.count()).toBe(1);
    } finally {
      await second?.stop();
    }
  });
});
