import { createHmac } from "node:crypto";
import type { AddressInfo } from "node:net";
import { App, type BlockAction, type ButtonAction, LogLevel } from "@slack/bolt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import {
  sendBlockAction,
  sendSlashCommand,
  sendViewSubmission,
  signSlackRequest,
} from "../../src/sandbox/slack-sender.js";

const SECRET = "sandbox-signing-secret";
const TOKEN = "xoxb-sandbox-bot-token";
const CHANNEL = "C0CUTOVER";

let fake: FakeSlack;
let app: App;
let url: string;
let authTestsAtStart = -1;

/** what the listeners saw, so tests can check the ids that reached them */
const seen = {
  commands: [] as { command: string; text: string; user: string; retryNum: number | undefined }[],
  actions: [] as { actionId: string; blockId: string; value: string | undefined; user: string; ts: string }[],
  views: [] as { callbackId: string; viewId: string; metadata: string; reason: string | null | undefined }[],
};

beforeAll(async () => {
  fake = new FakeSlack({ expectedToken: TOKEN });
  await fake.start();
  app = new App({
    signingSecret: SECRET,
    token: TOKEN,
    botId: "B0CUTOVER",
    botUserId: "U0CUTOVER",
    clientOptions: { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } },
    logLevel: LogLevel.ERROR,
  });

  app.command("/migrate", async ({ ack, command, respond, context }) => {
    await ack();
    seen.commands.push({
      command: command.command,
      text: command.text,
      user: command.user_id,
      retryNum: context.retryNum,
    });
    await respond({
      response_type: "ephemeral",
      text: `Planning \`${command.text}\` for <@${command.user_id}>`,
    });
  });

  app.action<BlockAction<ButtonAction>>("approve_cutover", async ({ ack, body, action, client }) => {
    await ack();
    seen.actions.push({
      actionId: action.action_id,
      blockId: action.block_id,
      value: action.value,
      user: body.user.id,
      ts: body.message?.ts ?? "",
    });
    await client.chat.update({
      channel: body.channel?.id ?? "",
      ts: body.message?.ts ?? "",
      text: `Approved by <@${body.user.id}>`,
    });
  });

  app.view("cutover_confirm", async ({ ack, view, client }) => {
    await ack();
    const reason = view.state.values.reason?.reason_input?.value;
    seen.views.push({
      callbackId: view.callback_id,
      viewId: view.id,
      metadata: view.private_metadata,
      reason,
    });
    await client.chat.postMessage({
      channel: CHANNEL,
      text: `Cutover ${view.private_metadata} confirmed: ${reason}`,
    });
  });

  // app.start() hands back the receiver's http.Server: that is where the port is.
  const server = await app.start(0);
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  authTestsAtStart = fake.calls("auth.test").length;
});

afterAll(async () => {
  await app.stop();
  await fake.stop();
});

afterEach(() => {
  fake.reset();
  seen.commands.length = 0;
  seen.actions.length = 0;
  seen.views.length = 0;
});

describe("signSlackRequest", () => {
  it("signs v0:<ts>:<body> with HMAC-SHA256 under the secret", () => {
    const headers = signSlackRequest("s3cret", "a=1&b=2", 1_700_000_123);
    const expected = createHmac("sha256", "s3cret").update("v0:1700000123:a=1&b=2").digest("hex");
    expect(headers).toEqual({
      "x-slack-signature": `v0=${expected}`,
      "x-slack-request-timestamp": "1700000123",
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(signSlackRequest("other", "a=1&b=2", 1_700_000_123)["x-slack-signature"]).not.toBe(
      headers["x-slack-signature"],
    );
  });
});

describe("signed requests through Bolt's HTTPReceiver", () => {
  it("starts without calling auth.test when given botId and botUserId", () => {
    expect(authTestsAtStart).toBe(0);
  });

  it("acks a slash command with 200 and the handler's respond() reaches the response_url", async () => {
    const responseUrl = fake.responseUrl("cmd-1", { channel: CHANNEL, user: "U0ALICE" });
    const res = await sendSlashCommand({
      url,
      signingSecret: SECRET,
      command: "/migrate",
      text: "plan db",
      userId: "U0ALICE",
      channelId: CHANNEL,
      responseUrl,
    });
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);

    const call = await fake.waitFor("response_url");
    expect(call.args).toMatchObject({
      response_type: "ephemeral",
      text: "Planning `plan db` for <@U0ALICE>",
    });
    expect(fake.ephemerals("U0ALICE").map((e) => e.text)).toEqual(["Planning `plan db` for <@U0ALICE>"]);
    expect(seen.commands).toEqual([
      { command: "/migrate", text: "plan db", user: "U0ALICE", retryNum: undefined },
    ]);
  });

  it("passes Slack's retry headers through to the listener", async () => {
    const res = await sendSlashCommand({
      url,
      signingSecret: SECRET,
      command: "/migrate",
      text: "status",
      responseUrl: fake.responseUrl(),
      retryNum: 1,
      retryReason: "http_timeout",
    });
    expect(res.status).toBe(200);
    await fake.waitFor("response_url");
    expect(seen.commands[0]?.retryNum).toBe(1);
  });

  it("rejects a request signed with the wrong secret with 401, and runs nothing", async () => {
    const res = await sendSlashCommand({
      url,
      signingSecret: "not-the-secret",
      command: "/migrate",
      text: "run",
      responseUrl: fake.responseUrl(),
    });
    expect(res.status).toBe(401);
    expect(seen.commands).toEqual([]);
  });

  it("rejects a timestamp older than five minutes with 401", async () => {
    const res = await sendSlashCommand({
      url,
      signingSecret: SECRET,
      timestampSeconds: Math.floor(Date.now() / 1000) - 6 * 60,
      command: "/migrate",
      text: "run",
      responseUrl: fake.responseUrl(),
    });
    expect(res.status).toBe(401);
    expect(seen.commands).toEqual([]);
  });

  it("rejects a body altered after signing with 401", async () => {
    const res = await sendSlashCommand({
      url,
      signingSecret: SECRET,
      command: "/migrate",
      text: "plan",
      responseUrl: fake.responseUrl(),
      tamper: (body) => body.replace("text=plan", "text=cutover"),
    });
    expect(res.status).toBe(401);
    expect(seen.commands).toEqual([]);
  });

  it("delivers a button click to the action listener, which edits the message", async () => {
    const posted = await app.client.chat.postMessage({ channel: CHANNEL, text: "Approve DNS cutover?" });
    const res = await sendBlockAction({
      url,
      signingSecret: SECRET,
      actionId: "approve_cutover",
      blockId: "approval",
      value: "run-42",
      userId: "U0BOB",
      channelId: CHANNEL,
      messageTs: posted.ts!,
      responseUrl: fake.responseUrl(),
    });
    expect(res.status).toBe(200);

    await fake.waitFor("chat.update");
    expect(seen.actions).toEqual([
      { actionId: "approve_cutover", blockId: "approval", value: "run-42", user: "U0BOB", ts: posted.ts },
    ]);
    expect(fake.messages(CHANNEL).map((m) => [m.text, m.edits])).toEqual([["Approved by <@U0BOB>", 1]]);
  });

  it("delivers a modal submission to the view listener with its ids and values", async () => {
    const res = await sendViewSubmission({
      url,
      signingSecret: SECRET,
      callbackId: "cutover_confirm",
      viewId: "V0MODAL1",
      privateMetadata: "run-42",
      values: { reason: { reason_input: { type: "plain_text_input", value: "window agreed" } } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe("");

    await fake.waitFor("chat.postMessage");
    expect(seen.views).toEqual([
      { callbackId: "cutover_confirm", viewId: "V0MODAL1", metadata: "run-42", reason: "window agreed" },
    ]);
    expect(fake.messages(CHANNEL).map((m) => m.text)).toEqual(["Cutover run-42 confirmed: window agreed"]);
  });
});
