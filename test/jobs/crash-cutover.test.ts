import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { signalGroup } from "../../src/sandbox/child-bot.js";
import { FakeCloudflare, seedExampleCutover } from "../../src/sandbox/FakeCloudflare.js";
import { sendBlockAction, sendSlashCommand, sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { ACTION, CALLBACK } from "../../src/views/ids.js";
import { APPROVER, CHANNEL, OPERATOR } from "../helpers/bot.js";
import { type ChildBotWorld, startChildBotWorld } from "../helpers/child-bot-world.js";
import {
  approvalValues,
  CF_ACCOUNT,
  CF_TOKEN,
  cutoverConfig,
  NEW_IP,
  NEW_RECORD,
  RECORD,
} from "../helpers/cutover-world.js";

/**
 * The DNS cutover with the bot SIGKILLed in the middle of it (after the switch, while it watches
 * both endpoints), then started again: the approved change is carried out once (the approval is
 * used once, one Pages redeploy), DNS ends switched, and the run keeps its one progress message.
 * The bot is the real process `npm start` runs; Cloudflare, Slack and the apps are fakes.
 */
let w: ChildBotWorld;
let cf: FakeCloudflare;
let oldApp: AppServer;
let newApp: AppServer;

const runStatus = async (target: string) =>
  (
    await w.query<{ status: string }>(
      "SELECT status FROM runs WHERE target = $1 ORDER BY created_at DESC LIMIT 1",
      [target],
    )
  )[0]?.status;

beforeAll(async () => {
  cf = new FakeCloudflare({ apiToken: CF_TOKEN, accountId: CF_ACCOUNT });
  await cf.start();
  seedExampleCutover(cf);
  oldApp = await startAppServer({ name: "old" });
  newApp = await startAppServer({ name: "new" });
  // a 20 s watch window: time to kill the bot after the switch, while it watches
  const config = cutoverConfig(oldApp, newApp).replace("watchWindowSeconds: 5", "watchWindowSeconds: 20");
  w = await startChildBotWorld("crash_cutover", {
    config: `${config}\ndigest: { enabled: false }\n`,
    env: { CLOUDFLARE_API_TOKEN: CF_TOKEN, CLOUDFLARE_BASE_URL: cf.baseUrl },
  });
});

afterAll(async () => {
  await w?.stop();
  await cf?.stop();
  await oldApp?.stop();
  await newApp?.stop();
});

describe("a DNS cutover killed mid-way", () => {
  it("finishes after SIGKILL and a restart: switched once, the approval used once, one progress message", async () => {
    const first = await w.startBot();
    const url = `http://127.0.0.1:${first.port}/slack/events`;
    const command = (text: string, port = first.port) =>
      sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret: w.env.SLACK_SIGNING_SECRET!,
        command: "/migrate",
        text,
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: w.fake.responseUrl(undefined, { channel: CHANNEL, user: OPERATOR }),
      });

    await command("run lower-ttl");
    await w.until("the TTL lowering", async () =>
      (await runStatus("lower-ttl")) === "succeeded" ? true : undefined,
    );
    // the old TTL (3600 s) must elapse before a cutover: age the lowering instead of waiting an hour
    const aged = new Date(Date.now() - 2 * 3600_000).toISOString();
    await w.query(
      "UPDATE checkpoints SET value = jsonb_set(value, '{loweredAt}', to_jsonb($1::text)) WHERE key = 'snapshot'",
      [aged],
    );
    await command("cutover");
    const approval = await w.until("the request", async () => {
      const [a] = await w.query<{ id: string }>("SELECT id FROM approvals WHERE status = 'pending' LIMIT 1");
      return a?.id;
    });
    // the approver clicks Approve…; the submission comes from the modal the bot opened
    await sendBlockAction({
      url,
      signingSecret: w.env.SLACK_SIGNING_SECRET!,
      actionId: ACTION.approveCutover,
      value: approval,
      userId: APPROVER,
      channelId: CHANNEL,
      responseUrl: w.fake.responseUrl(undefined, { channel: CHANNEL, user: APPROVER }),
    });
    const modal = await w.until("the approver's modal", async () => {
      const v = w.fake.latestView(CALLBACK.approveCutover, approval);
      if (!v) return undefined;
      const [row] = await w.query<{ view_id: string }>("SELECT view_id FROM slack_views WHERE view_id = $1", [
        v.id,
      ]);
      return row ? { viewId: v.id, viewHash: v.hash } : undefined;
    });
    const submitted = await sendViewSubmission({
      url,
      signingSecret: w.env.SLACK_SIGNING_SECRET!,
      ...modal,
      callbackId: CALLBACK.approveCutover,
      privateMetadata: approval,
      userId: APPROVER,
      values: approvalValues(RECORD, "go"),
    });
    expect(submitted.body).toBe("");

    // Kill it after the switch, while it watches the endpoints.
    await w.until("the switch", async () =>
      cf.records("example.com").find((r) => r.name === RECORD)?.content === NEW_IP ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 2_000));
    await w.kill9(first.child);
    expect(await runStatus("dns-cutover")).toBe("running");

    // Restart: the recovery sweep resumes the run from its checkpoints.
    const second = await w.startBot();
    const final = await w.until(
      "the cutover to finish",
      async () => {
        const s = await runStatus("dns-cutover");
        return s && ["succeeded", "failed", "cancelled"].includes(s) ? s : undefined;
      },
      90_000,
    );
    const [run] = await w.query<{ error: string | null }>(
      "SELECT error FROM runs WHERE target = 'dns-cutover' ORDER BY created_at DESC LIMIT 1",
    );
    expect(final, run?.error ?? "").toBe("succeeded");
    expect(cf.records("example.com").find((r) => r.name === RECORD)).toMatchObject({
      content: NEW_IP,
      ttl: 3600,
    });
    expect(cf.records("example.com").filter((r) => r.name === NEW_RECORD)).toHaveLength(1);
    // carried out once: one Pages redeploy, the approval used once, one run of the step
    expect(cf.deployments("web")).toHaveLength(1);
    const [a] = await w.query<{ status: string }>("SELECT status FROM approvals WHERE id = $1", [approval]);
    expect(a!.status).toBe("used");
    expect(await w.query("SELECT id FROM runs WHERE target = 'dns-cutover'")).toHaveLength(1);
    const resumed = await w.query("SELECT id FROM audit_events WHERE action = 'run.resume'");
    expect(resumed).toHaveLength(1);

    // one progress message for the cutover run, showing its final state
    await w.until("the final edit", async () =>
      w.fake.messages(CHANNEL).some((m) => /Run dns-cutover: succeeded/.test(m.text)) ? true : undefined,
    );
    expect(w.fake.messages(CHANNEL).filter((m) => m.text.includes("Run dns-cutover"))).toHaveLength(1);

    await signalGroup(second.child, "SIGTERM");
  }, 240_000);
});
