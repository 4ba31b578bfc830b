import {
  ErrorCode,
  LogLevel,
  type WebAPIHTTPError,
  type WebAPIPlatformError,
  WebClient,
  WebClientEvent,
} from "@slack/web-api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { FakeSlack, type RecordedCall } from "../../src/sandbox/FakeSlack.js";

const TOKEN = "xoxb-sandbox-token-123";
const CHANNEL = "C0CUTOVER";

let fake: FakeSlack;
let client: WebClient;

function newClient(token: string, options: ConstructorParameters<typeof WebClient>[1] = {}): WebClient {
  return new WebClient(token, {
    slackApiUrl: fake.apiUrl,
    logLevel: LogLevel.ERROR,
    retryConfig: { retries: 0 },
    ...options,
  });
}

beforeAll(async () => {
  fake = new FakeSlack({ expectedToken: TOKEN });
  await fake.start();
  client = newClient(TOKEN);
});
afterAll(async () => {
  await fake.stop();
});
afterEach(() => {
  fake.reset();
});

describe("FakeSlack with the real WebClient", () => {
  it("listens on 127.0.0.1 and answers auth.test as the bot", async () => {
    expect(fake.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/$/);
    const auth = await client.auth.test();
    expect(auth.user_id).toBe("U0CUTOVER");
    expect(auth.bot_id).toBe("B0CUTOVER");
  });

  it("edits a message in place: the channel shows one message with the new text", async () => {
    const posted = await client.chat.postMessage({
      channel: CHANNEL,
      text: "Run started",
      blocks: [{ type: "section", text: { type: "mrkdwn", text: "*Run* started" } }],
    });
    expect(posted.ts).toMatch(/^\d{10}\.\d{6}$/);
    await client.chat.update({ channel: CHANNEL, ts: posted.ts!, text: "Run 40% done" });
    await client.chat.update({
      channel: CHANNEL,
      ts: posted.ts!,
      text: "Run finished",
      blocks: [{ type: "section", text: { type: "mrkdwn", text: "*Run* finished" } }],
    });

    const messages = fake.messages(CHANNEL);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ ts: posted.ts, text: "Run finished", edits: 2 });
    expect(messages[0]!.blocks).toEqual([
      { type: "section", text: { type: "mrkdwn", text: "*Run* finished" } },
    ]);
    // blocks arrive as a JSON string in a form body and are recorded parsed
    expect(fake.calls("chat.postMessage")[0]!.args.blocks).toEqual([
      { type: "section", text: { type: "mrkdwn", text: "*Run* started" } },
    ]);
  });

  it("hands out increasing, unique ts values", async () => {
    const a = await client.chat.postMessage({ channel: CHANNEL, text: "one" });
    const b = await client.chat.postMessage({ channel: CHANNEL, text: "two" });
    // on the wall clock, as Slack's are, so `oldest` and `latest` filters by time work
    expect(a.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(Math.abs(Number(a.ts) - Date.now() / 1000)).toBeLessThan(5);
    // ts values stay unique across reset(): an app may still hold one from before
    expect(Number(b.ts)).toBeGreaterThan(Number(a.ts));
    expect(fake.messages(CHANNEL).map((m) => m.text)).toEqual(["one", "two"]);
  });

  it("refuses to update a message that does not exist", async () => {
    const err = await client.chat
      .update({ channel: CHANNEL, ts: "1700000999.000100", text: "x" })
      .catch((e: WebAPIPlatformError) => e);
    expect((err as WebAPIPlatformError).data?.error).toBe("message_not_found");
  });

  it("nests thread replies under their parent and deletes messages", async () => {
    const parent = await client.chat.postMessage({ channel: CHANNEL, text: "Run r1" });
    await client.chat.postMessage({ channel: CHANNEL, thread_ts: parent.ts!, text: "step 1 done" });
    await client.chat.postMessage({ channel: CHANNEL, thread_ts: parent.ts!, text: "step 2 done" });
    const other = await client.chat.postMessage({ channel: CHANNEL, text: "noise" });

    let messages = fake.messages(CHANNEL);
    expect(messages.map((m) => m.text)).toEqual(["Run r1", "noise"]);
    expect(messages[0]!.replies.map((r) => r.text)).toEqual(["step 1 done", "step 2 done"]);
    expect(messages[0]!.replies[0]!.thread_ts).toBe(parent.ts);

    await client.chat.delete({ channel: CHANNEL, ts: other.ts! });
    messages = fake.messages(CHANNEL);
    expect(messages.map((m) => m.text)).toEqual(["Run r1"]);
  });

  it("keeps ephemeral messages apart from the channel", async () => {
    await client.chat.postEphemeral({ channel: CHANNEL, user: "U0ALICE", text: "only you can see this" });
    expect(fake.messages(CHANNEL)).toEqual([]);
    expect(fake.ephemerals("U0ALICE").map((e) => e.text)).toEqual(["only you can see this"]);
    expect(fake.ephemerals("U0BOB")).toEqual([]);
  });

  it("opens a modal, records the parsed view, and updates it by id", async () => {
    const view = {
      type: "modal" as const,
      callback_id: "cutover_confirm",
      private_metadata: "run-42",
      title: { type: "plain_text" as const, text: "Confirm cutover" },
      submit: { type: "plain_text" as const, text: "Flip DNS" },
      blocks: [{ type: "section" as const, text: { type: "mrkdwn" as const, text: "Are you sure?" } }],
    };
    const opened = await client.views.open({ trigger_id: "123.456.abc", view });
    expect(opened.view?.id).toMatch(/^V/);
    expect(opened.view?.callback_id).toBe("cutover_confirm");

    const call = await fake.waitFor("views.open");
    expect(call.args.view).toMatchObject({ callback_id: "cutover_confirm", private_metadata: "run-42" });

    await client.views.update({ view_id: opened.view!.id!, view: { ...view, private_metadata: "run-43" } });
    const [stored] = fake.views();
    expect(stored).toMatchObject({ id: opened.view!.id, via: "views.update", updates: 1 });
    expect(stored!.view.private_metadata).toBe("run-43");

    const missing = await client.views
      .update({ view_id: "V404", view })
      .catch((e: WebAPIPlatformError) => e.data.error);
    expect(missing).toBe("not_found");
  });

  it("answers directory look-ups from what was set up", async () => {
    fake.setUsergroup("S0APPROVERS", ["U0ALICE", "U0BOB"]);
    fake.setUser("U0ALICE", { name: "alice", real_name: "Alice Chan" });
    fake.setChannel(CHANNEL, { name: "cutover" });

    const group = await client.usergroups.users.list({ usergroup: "S0APPROVERS" });
    expect(group.users).toEqual(["U0ALICE", "U0BOB"]);
    const user = await client.users.info({ user: "U0ALICE" });
    expect(user.user?.real_name).toBe("Alice Chan");
    const channel = await client.conversations.info({ channel: CHANNEL });
    expect(channel.channel?.name).toBe("cutover");
    const unknown = await client.usergroups.users
      .list({ usergroup: "S0NOPE" })
      .catch((e: WebAPIPlatformError) => e.data.error);
    expect(unknown).toBe("no_such_subteam");
  });

  it("answers unknown methods with unknown_method", async () => {
    const err = await client.apiCall("cutover.nope").catch((e: WebAPIPlatformError) => e);
    expect((err as WebAPIPlatformError).code).toBe(ErrorCode.PlatformError);
    expect((err as WebAPIPlatformError).data.error).toBe("unknown_method");
  });

  it("runs the external upload flow end to end and shares the file in the channel", async () => {
    const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    const parent = await client.chat.postMessage({ channel: CHANNEL, text: "Cost report" });
    const result = await client.filesUploadV2({
      channel_id: CHANNEL,
      thread_ts: parent.ts!,
      file: bytes,
      filename: "cost.png",
      title: "Cost by day",
      initial_comment: "Here is the chart",
    });
    expect(result.ok).toBe(true);

    expect(fake.calls().map((c) => c.method)).toEqual([
      "chat.postMessage",
      "files.getUploadURLExternal",
      "file_upload",
      "files.completeUploadExternal",
    ]);
    const [file] = fake.files();
    expect(file).toMatchObject({ name: "cost.png", title: "Cost by day", length: 3000, uploaded: true });
    expect(file!.bytes.equals(bytes)).toBe(true);

    const reply = fake.messages(CHANNEL)[0]!.replies[0]!;
    expect(reply.text).toBe("Here is the chart");
    expect(reply.files).toEqual([{ id: file!.id, name: "cost.png", title: "Cost by day", size: 3000 }]);
  });

  it("accepts a raw upload body as well as multipart", async () => {
    const got = await client.files.getUploadURLExternal({ filename: "plan.txt", length: 5 });
    const res = await fetch(got.upload_url!, { method: "POST", body: "hello" });
    expect(res.status).toBe(200);
    await client.files.completeUploadExternal({
      files: [{ id: got.file_id!, title: "Plan" }],
      channel_id: CHANNEL,
    });
    expect(fake.files()[0]!.bytes.toString()).toBe("hello");
    expect(fake.messages(CHANNEL)[0]!.files?.[0]?.title).toBe("Plan");
  });

  it("refuses to complete an upload whose bytes never arrived", async () => {
    const got = await client.files.getUploadURLExternal({ filename: "x.bin", length: 1 });
    const err = await client.files
      .completeUploadExternal({ files: [{ id: got.file_id! }], channel_id: CHANNEL })
      .catch((e: WebAPIPlatformError) => e.data.error);
    expect(err).toBe("file_not_found");
    expect(fake.messages(CHANNEL)).toEqual([]);
  });

  it("rate-limits with 429 and Retry-After; WebClient waits and retries", async () => {
    const retrying = newClient(TOKEN, {
      retryConfig: { retries: 2, factor: 1, minTimeout: 0, maxTimeout: 0 },
    });
    const limited: number[] = [];
    retrying.on(WebClientEvent.RATE_LIMITED, (seconds: number) => limited.push(seconds));
    fake.failNext("chat.postMessage", "ratelimited", { status: 429, retryAfterSeconds: 0 });

    const posted = await retrying.chat.postMessage({ channel: CHANNEL, text: "after the limit" });
    expect(posted.ok).toBe(true);
    expect(limited).toEqual([0]);
    expect(fake.calls("chat.postMessage").map((c) => c.status)).toEqual([429, 200]);
    expect(fake.messages(CHANNEL).map((m) => m.text)).toEqual(["after the limit"]);
  });

  it("fails with HTTP 500 and with a Slack error when told to", async () => {
    fake.failNext("chat.postMessage", "internal_error", { status: 500 });
    const http = await client.chat
      .postMessage({ channel: CHANNEL, text: "x" })
      .catch((e: WebAPIHTTPError) => e);
    expect((http as WebAPIHTTPError).code).toBe(ErrorCode.HTTPError);
    expect((http as WebAPIHTTPError).statusCode).toBe(500);

    fake.failNext("chat.update", "cant_update_message");
    const posted = await client.chat.postMessage({ channel: CHANNEL, text: "kept" });
    const platform = await client.chat
      .update({ channel: CHANNEL, ts: posted.ts!, text: "changed" })
      .catch((e: WebAPIPlatformError) => e.data.error);
    expect(platform).toBe("cant_update_message");
    expect(fake.messages(CHANNEL).map((m) => m.text)).toEqual(["kept"]);
    // the fault was used up: the next update goes through
    await client.chat.update({ channel: CHANNEL, ts: posted.ts!, text: "changed" });
    expect(fake.messages(CHANNEL)[0]!.text).toBe("changed");
  });

  it("rejects a wrong token with invalid_auth and a missing one with not_authed", async () => {
    const wrong = newClient("xoxb-wrong-token");
    const err = await wrong.chat
      .postMessage({ channel: CHANNEL, text: "should not land" })
      .catch((e: WebAPIPlatformError) => e.data.error);
    expect(err).toBe("invalid_auth");
    expect(fake.messages(CHANNEL)).toEqual([]);
    const [call] = fake.calls("chat.postMessage");
    expect(call).toMatchObject({ token: "xoxb-wrong-token", error: "invalid_auth" });
    expect(call!.args).not.toHaveProperty("token");

    const res = await fetch(`${fake.apiUrl}auth.test`, { method: "POST" });
    expect(await res.json()).toEqual({ ok: false, error: "not_authed" });
  });

  it("takes JSON bodies and the token as a form field", async () => {
    const json = await fetch(`${fake.apiUrl}chat.postMessage`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ channel: CHANNEL, text: "as json" }),
    });
    expect(await json.json()).toMatchObject({ ok: true, channel: CHANNEL });
    const form = await fetch(`${fake.apiUrl}chat.postMessage`, {
      method: "POST",
      body: new URLSearchParams({ token: TOKEN, channel: CHANNEL, text: "as form" }),
    });
    expect(await form.json()).toMatchObject({ ok: true });
    expect(fake.messages(CHANNEL).map((m) => m.text)).toEqual(["as json", "as form"]);
    expect(fake.calls().map((c) => c.token)).toEqual([TOKEN, TOKEN]);
  });
});

describe("response_url", () => {
  it("records ephemeral replies for the person and edits the original on replace_original", async () => {
    const posted = await client.chat.postMessage({ channel: CHANNEL, text: "Approve cutover?" });
    const url = fake.responseUrl("act-1", { channel: CHANNEL, user: "U0ALICE", messageTs: posted.ts! });
    expect(url).toMatch(/\/response\/act-1$/);

    const post = (body: unknown) =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ text: "Working on it" })).status).toBe(200);
    await post({ replace_original: true, text: "Approved by @U0ALICE" });
    await post({ response_type: "in_channel", text: "DNS flip scheduled" });

    expect(fake.ephemerals("U0ALICE").map((e) => [e.text, e.source])).toEqual([
      ["Working on it", "response_url"],
    ]);
    expect(fake.messages(CHANNEL).map((m) => [m.text, m.edits])).toEqual([
      ["Approved by @U0ALICE", 1],
      ["DNS flip scheduled", 0],
    ]);
    expect(fake.calls("response_url").map((c) => c.args.response_url_id)).toEqual([
      "act-1",
      "act-1",
      "act-1",
    ]);
  });
});

describe("following the channel", () => {
  it("emits every call, and waitFor resolves with calls that arrive later", async () => {
    const seen: string[] = [];
    const onCall = (c: RecordedCall) => seen.push(c.method);
    fake.on("call", onCall);
    const waiting = fake.waitFor((c) => c.method === "chat.update" && c.args.text === "done");
    const posted = await client.chat.postMessage({ channel: CHANNEL, text: "start" });
    await client.chat.update({ channel: CHANNEL, ts: posted.ts!, text: "done" });
    const call = await waiting;
    fake.off("call", onCall);
    expect(call.args.ts).toBe(posted.ts);
    expect(seen).toEqual(["chat.postMessage", "chat.update"]);
  });

  it("times out with the list of calls it did see, and no token", async () => {
    await client.chat.postMessage({ channel: CHANNEL, text: "only this" });
    const err = await fake.waitFor("views.open", { timeoutMs: 30 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("waited 30 ms for a views.open call, none came");
    expect((err as Error).message).toContain('chat.postMessage {"channel":"C0CUTOVER","text":"only this"}');
    expect((err as Error).message).not.toContain(TOKEN);
  });
});

describe("FakeSlack refuses what Slack refuses (Block Kit limits, src/sandbox/slack-limits.ts)", () => {
  const section = (text: string) => ({ type: "section", text: { type: "mrkdwn", text } });
  const button = (extra: Record<string, unknown> = {}) => ({
    type: "button",
    action_id: "go",
    text: { type: "plain_text", text: "Go" },
    ...extra,
  });
  const actions = (...elements: unknown[]) => ({ type: "actions", elements });
  const modal = (extra: Record<string, unknown> = {}, blocks: unknown[] = [section("hi")]) => ({
    type: "modal",
    title: { type: "plain_text", text: "Roll back" },
    close: { type: "plain_text", text: "Cancel" },
    blocks,
    ...extra,
  });
  const input = (element: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    type: "input",
    block_id: "b",
    label: { type: "plain_text", text: "Value" },
    element: { type: "plain_text_input", action_id: "v", ...element },
    ...extra,
  });

  async function post(blocks: unknown[], text: string | null = "fallback") {
    return postRaw({
      channel: CHANNEL,
      ...(text === null ? {} : { text }),
      blocks: JSON.stringify(blocks),
    });
  }
  async function postRaw(fields: Record<string, string>): Promise<{ error?: string; detail?: string }> {
    const res = await fetch(`${fake.apiUrl}chat.postMessage`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    });
    const body = (await res.json()) as {
      ok: boolean;
      error?: string;
      response_metadata?: { messages?: string[] };
    };
    return body.ok
      ? {}
      : {
          error: body.error!,
          ...(body.response_metadata ? { detail: body.response_metadata.messages!.join(" ") } : {}),
        };
  }
  async function open(view: unknown) {
    const res = await fetch(`${fake.apiUrl}views.open`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ trigger_id: "T1", view: JSON.stringify(view) }),
    });
    const body = (await res.json()) as {
      ok: boolean;
      error?: string;
      response_metadata?: { messages?: string[] };
    };
    return body.ok ? {} : { error: body.error, detail: body.response_metadata?.messages?.join(" ") };
  }

  it("takes a message right at every limit", async () => {
    const at = (n: number) => "x".repeat(n);
    const blocks = [
      { type: "header", text: { type: "plain_text", text: at(150) } },
      section(at(3000)),
      { type: "section", fields: Array.from({ length: 10 }, () => ({ type: "mrkdwn", text: at(2000) })) },
      { type: "context", elements: Array.from({ length: 10 }, () => ({ type: "mrkdwn", text: "c" })) },
      actions(
        ...Array.from({ length: 25 }, (_, i) =>
          button({
            action_id: `a${i}`.padEnd(255, "x"),
            text: { type: "plain_text", text: at(75) },
            value: at(2000),
            url: `https://x/${at(2990)}`,
          }),
        ),
      ),
      actions(
        button({
          confirm: {
            title: { type: "plain_text", text: at(100) },
            text: { type: "mrkdwn", text: at(300) },
            confirm: { type: "plain_text", text: at(30) },
            deny: { type: "plain_text", text: at(30) },
          },
        }),
      ),
      ...Array.from({ length: 44 }, () => ({ type: "divider" })),
    ];
    expect(blocks).toHaveLength(50);
    expect(await post(blocks, at(40_000))).toEqual({});
    expect(fake.refusals()).toEqual([]);
  });

  it.each([
    ["51 blocks", Array.from({ length: 51 }, () => ({ type: "divider" })), "invalid_blocks", "/blocks"],
    ["a section of 3,001", [section("x".repeat(3001))], "invalid_blocks", "/blocks/0/text/text"],
    ["an empty section", [section("")], "invalid_blocks", "/blocks/0/text/text"],
    [
      "11 fields",
      [{ type: "section", fields: Array.from({ length: 11 }, () => ({ type: "mrkdwn", text: "f" })) }],
      "invalid_blocks",
      "/blocks/0/fields",
    ],
    [
      "a field of 2,001",
      [{ type: "section", fields: [{ type: "mrkdwn", text: "f".repeat(2001) }] }],
      "invalid_blocks",
      "/blocks/0/fields/0/text",
    ],
    [
      "a header of 151",
      [{ type: "header", text: { type: "plain_text", text: "h".repeat(151) } }],
      "invalid_blocks",
      "/blocks/0/text/text",
    ],
    [
      "a mrkdwn header",
      [{ type: "header", text: { type: "mrkdwn", text: "*h*" } }],
      "invalid_blocks",
      "/blocks/0/text",
    ],
    [
      "a context of 11",
      [{ type: "context", elements: Array.from({ length: 11 }, () => ({ type: "mrkdwn", text: "c" })) }],
      "invalid_blocks",
      "/blocks/0/elements",
    ],
    [
      "26 buttons",
      [actions(...Array.from({ length: 26 }, (_, i) => button({ action_id: `a${i}` })))],
      "invalid_blocks",
      "/blocks/0/elements",
    ],
    [
      "a button text of 76",
      [actions(button({ text: { type: "plain_text", text: "b".repeat(76) } }))],
      "invalid_blocks",
      "/blocks/0/elements/0/text/text",
    ],
    [
      "a button value of 2,001",
      [actions(button({ value: "v".repeat(2001) }))],
      "invalid_blocks",
      "/blocks/0/elements/0/value",
    ],
    [
      "a button url of 3,001",
      [actions(button({ url: `https://x/${"u".repeat(2991)}` }))],
      "invalid_blocks",
      "/blocks/0/elements/0/url",
    ],
    [
      "an action_id of 256",
      [actions(button({ action_id: "a".repeat(256) }))],
      "invalid_blocks",
      "/blocks/0/elements/0/action_id",
    ],
    [
      "two action_ids alike in a block",
      [actions(button(), button())],
      "invalid_blocks",
      "/blocks/0/elements/1/action_id",
    ],
    [
      "two block_ids alike",
      [
        { ...section("a"), block_id: "x" },
        { ...section("b"), block_id: "x" },
      ],
      "invalid_blocks",
      "/blocks/1/block_id",
    ],
    [
      "a block_id of 256",
      [{ ...section("a"), block_id: "x".repeat(256) }],
      "invalid_blocks",
      "/blocks/0/block_id",
    ],
    [
      "a confirm text of 301",
      [
        actions(
          button({
            confirm: {
              title: { type: "plain_text", text: "Sure?" },
              text: { type: "mrkdwn", text: "t".repeat(301) },
              confirm: { type: "plain_text", text: "Yes" },
              deny: { type: "plain_text", text: "No" },
            },
          }),
        ),
      ],
      "invalid_blocks",
      "/blocks/0/elements/0/confirm/text/text",
    ],
    [
      "a confirm title of 101",
      [
        actions(
          button({
            confirm: {
              title: { type: "plain_text", text: "t".repeat(101) },
              text: { type: "mrkdwn", text: "Sure?" },
              confirm: { type: "plain_text", text: "Yes" },
              deny: { type: "plain_text", text: "No" },
            },
          }),
        ),
      ],
      "invalid_blocks",
      "/blocks/0/elements/0/confirm/title/text",
    ],
    ["an unknown block type", [{ type: "banner", text: "hi" }], "invalid_blocks", "/blocks/0/type"],
  ])("refuses a message with %s", async (_what, blocks, error, pointer) => {
    const res = await post(blocks as unknown[]);
    expect(res.error).toBe(error);
    expect(res.detail).toContain(`[json-pointer:${pointer}]`);
    // nothing reached the channel, and the refusal is on record with what was wrong
    expect(fake.messages(CHANNEL)).toEqual([]);
    expect(fake.refusals().map((c) => [c.method, c.error])).toEqual([["chat.postMessage", error]]);
  });

  it("refuses text over 40,000 with msg_too_long, and blocks without a top-level text with no_text", async () => {
    expect((await postRaw({ channel: CHANNEL, text: "x".repeat(40_001) })).error).toBe("msg_too_long");
    expect((await post([section("hi")], null)).error).toBe("no_text");
    expect((await post([section("hi")], " ")).error).toBe("no_text");
    expect(fake.messages(CHANNEL)).toEqual([]);
  });

  it("refuses the same through the real WebClient, chat.update and a response_url", async () => {
    const posted = await client.chat.postMessage({ channel: CHANNEL, text: "ok" });
    await expect(
      client.chat.update({
        channel: CHANNEL,
        ts: posted.ts!,
        text: "x",
        blocks: [section("y".repeat(3001)) as never],
      }),
    ).rejects.toMatchObject({ data: { error: "invalid_blocks" } });
    expect(fake.messages(CHANNEL)[0]!.text).toBe("ok");
    const url = fake.responseUrl("r1", { channel: CHANNEL, user: "U1" });
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "t", blocks: [actions(button({ value: "v".repeat(2001) }))] }),
    });
    expect(((await res.json()) as { error: string }).error).toBe("invalid_blocks");
    expect(fake.ephemerals()).toEqual([]);
    expect(fake.refusals().map((c) => c.method)).toEqual(["chat.update", "response_url"]);
  });

  it("takes a modal at its limits and refuses one past them with invalid_arguments", async () => {
    const ok = modal(
      {
        title: { type: "plain_text", text: "t".repeat(24) },
        submit: { type: "plain_text", text: "s".repeat(24) },
        private_metadata: "m".repeat(3000),
        callback_id: "c".repeat(255),
      },
      [
        input(
          {
            placeholder: { type: "plain_text", text: "p".repeat(150) },
            max_length: 3000,
            initial_value: "i".repeat(3000),
          },
          {
            label: { type: "plain_text", text: "l".repeat(2000) },
            hint: { type: "plain_text", text: "h".repeat(2000) },
          },
        ),
        ...Array.from({ length: 99 }, () => ({ type: "divider" })),
      ],
    );
    expect(await open(ok)).toEqual({});
    const bad: Array<[unknown, string]> = [
      [modal({ title: { type: "plain_text", text: "t".repeat(25) } }), "/view/title/text"],
      [modal({ title: { type: "mrkdwn", text: "t" } }), "/view/title"],
      [modal({ close: { type: "plain_text", text: "c".repeat(25) } }), "/view/close/text"],
      [modal({ private_metadata: "m".repeat(3001) }), "/view/private_metadata"],
      [modal({ callback_id: "c".repeat(256) }), "/view/callback_id"],
      [
        modal(
          {},
          Array.from({ length: 101 }, () => ({ type: "divider" })),
        ),
        "/view/blocks",
      ],
      [
        modal({ submit: { type: "plain_text", text: "OK" } }, [
          input({ placeholder: { type: "plain_text", text: "p".repeat(151) } }),
        ]),
        "/view/blocks/0/element/placeholder/text",
      ],
      [
        modal({ submit: { type: "plain_text", text: "OK" } }, [
          input({ max_length: 10, initial_value: "i".repeat(11) }),
        ]),
        "/view/blocks/0/element/initial_value",
      ],
      [
        modal({ submit: { type: "plain_text", text: "OK" } }, [input({ initial_value: "i".repeat(3001) })]),
        "/view/blocks/0/element/initial_value",
      ],
      [
        modal({ submit: { type: "plain_text", text: "OK" } }, [
          input({}, { label: { type: "plain_text", text: "l".repeat(2001) } }),
        ]),
        "/view/blocks/0/label/text",
      ],
      [
        modal({ submit: { type: "plain_text", text: "OK" } }, [
          input({}, { hint: { type: "plain_text", text: "h".repeat(2001) } }),
        ]),
        "/view/blocks/0/hint/text",
      ],
      [modal({}, [input({})]), "/view/submit"],
    ];
    for (const [view, pointer] of bad) {
      const res = await open(view);
      expect(res.error, pointer).toBe("invalid_arguments");
      expect(res.detail).toContain(`[json-pointer:${pointer}]`);
    }
    expect(fake.views()).toHaveLength(1);
  });
});

describe("FakeSlack over Socket Mode", () => {
  it("refuses a reply in an ack that breaks a Block Kit limit, as it refuses a message", async () => {
    const open = (await (
      await fetch(`${fake.apiUrl}apps.connections.open`, {
        method: "POST",
        headers: { authorization: "Bearer xapp-1-test" },
      })
    ).json()) as { url: string };
    const ws = new WebSocket(open.url);
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data)) as { type: string; envelope_id?: string };
      if (!msg.envelope_id) return;
      const text = msg.type === "slash_commands" ? "hi" : "";
      ws.send(
        JSON.stringify({
          envelope_id: msg.envelope_id,
          payload: { text, blocks: [{ type: "section", text: { type: "mrkdwn", text: "x".repeat(3001) } }] },
        }),
      );
    });
    try {
      await fake.waitForSocket();
      await fake.sendSocketSlashCommand({ command: "/migrate", text: "help" });
      const [call] = fake.refusals();
      expect(call).toMatchObject({ method: "socket_mode", error: "invalid_blocks" });
      expect(call!.detail).toContain("[json-pointer:/blocks/0/text/text]");
    } finally {
      ws.close();
    }
  });
});
