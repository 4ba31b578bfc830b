import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { LogLevel, WebClient } from "@slack/web-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { type RunningCutover, startCutover } from "../../src/app.js";
import { createLogger } from "../../src/log.js";
import { FakeSlack, type RecordedCall } from "../../src/sandbox/FakeSlack.js";
import { blockActionPayload } from "../../src/sandbox/slack-sender.js";
import { ACTION } from "../../src/views/ids.js";
import { CHANNEL, GROUP_MEMBER, OPERATOR, STRANGER, testConfig } from "../helpers/bot.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitUntil } from "../helpers/wait.js";

// The real bot (startCutover) in Socket Mode: it opens a WebSocket to FakeSlack with its
// app-level token, and commands arrive as envelopes the fake pushes and the bot acks.

const BOT_TOKEN = `xoxb-test-${randomBytes(8).toString("hex")}`;
const APP_TOKEN = `xapp-1-A0CUTOVER-${randomBytes(8).toString("hex")}`;

let fake: FakeSlack;
let state: TestDatabase;
let dir: string;
let bot: RunningCutover;
let httpPort: number;
const logs: string[] = [];

/** A port nobody listens on right now (Socket Mode's HTTP server does not report PORT=0's pick). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const until = (what: string, check: () => boolean, timeoutMs = 5_000) =>
  waitUntil(what, check, { timeoutMs, intervalMs: 25 });

function replyAt(responseUrl: string): Promise<RecordedCall> {
  const id = decodeURIComponent(responseUrl.split("/").pop() ?? "");
  return fake.waitFor(
    (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
    { timeoutMs: 5_000 },
  );
}

beforeAll(async () => {
  fake = new FakeSlack({ expectedToken: BOT_TOKEN, expectedAppToken: APP_TOKEN });
  await fake.start();
  fake.setUsergroup("S0OPS", [GROUP_MEMBER]);
  state = await createTestDatabase("socket_mode");
  dir = await mkdtemp(path.join(tmpdir(), "cutover-socket-"));
  const configPath = path.join(dir, "migration.yml");
  await writeFile(configPath, testConfig());
  httpPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_APP_TOKEN: APP_TOKEN,
    SLACK_API_URL: fake.apiUrl,
    PORT: String(httpPort),
    DATABASE_URL: state.url,
    CUTOVER_CONFIG: configPath,
    CUTOVER_DATA_DIR: dir,
    PROBE_DATABASE_URL: state.url,
  };
  const destination = new Writable({
    write(chunk, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ secrets: [BOT_TOKEN, APP_TOKEN], level: "info", destination });
  bot = await startCutover({ env, logger });
});

afterAll(async () => {
  // The bot first: with the fake gone, the Socket Mode client would keep trying to reconnect.
  await bot?.stop();
  await fake?.stop();
  await state?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("/migrate over Socket Mode", () => {
  it("connects with the app-level token, not the bot token", () => {
    const opens = fake.calls("apps.connections.open");
    expect(opens).toHaveLength(1);
    expect(opens[0]!.token).toBe(APP_TOKEN);
    expect(opens[0]!.error).toBeUndefined();
    expect(fake.socketConnections).toBe(1);
  });

  it("answers help inside the ack", async () => {
    const ack = await fake.sendSocketSlashCommand({
      command: "/migrate",
      text: "help",
      user_id: STRANGER,
      channel_id: "C0RANDOM",
    });
    expect(ack.ms).toBeLessThan(3_000);
    const text = JSON.stringify(ack.payload?.blocks);
    for (const sub of ["plan", "status", "run", "cancel", "audit"]) expect(text).toContain(`/migrate ${sub}`);
    expect(text).toContain("/rollback");
    const call = fake.calls("socket_mode").at(-1)!;
    expect(call.args).toMatchObject({ type: "slash_commands", envelope_id: ack.envelope_id });
    expect((call.args.payload as { text?: string }).text).toBe("help");
  });

  it("answers an unknown subcommand with a did-you-mean inside the ack", async () => {
    const ack = await fake.sendSocketSlashCommand({
      command: "/migrate",
      text: "stauts",
      user_id: OPERATOR,
      channel_id: CHANNEL,
    });
    expect(String(ack.payload?.text)).toContain("Did you mean `/migrate status`?");
  });

  it("acks /migrate status at once, then the status arrives at the response_url", async () => {
    const responseUrl = fake.responseUrl("socket-status", { channel: CHANNEL, user: OPERATOR });
    const ack = await fake.sendSocketSlashCommand({
      command: "/migrate",
      text: "status",
      user_id: OPERATOR,
      channel_id: CHANNEL,
      response_url: responseUrl,
    });
    expect(ack.response_url).toBe(responseUrl);
    expect(ack.ms).toBeLessThan(3_000);
    expect(ack.payload?.text).toBeUndefined();
    const reply = await replyAt(responseUrl);
    expect(String(reply.args.text)).toMatch(/^Migration status: \d+\/2 steps done/);
    expect(JSON.stringify(reply.args)).toContain("Phase 1 · Probe the target");
    expect(fake.ephemerals(OPERATOR).at(-1)?.text).toMatch(/^Migration status/);
  });

  it("refuses a stranger's status request, through the response_url", async () => {
    const ack = await fake.sendSocketSlashCommand({
      command: "/migrate",
      text: "status",
      user_id: STRANGER,
      channel_id: CHANNEL,
    });
    const reply = await replyAt(ack.response_url);
    expect(String(reply.args.text)).toContain("You are not an operator of this migration");
  });

  it("takes a button click as an interactive envelope", async () => {
    const responseUrl = fake.responseUrl("socket-click", { channel: CHANNEL, user: STRANGER });
    const ack = await fake.sendSocketInteractive(
      blockActionPayload({
        actionId: ACTION.cancelRun,
        value: "0000dead",
        userId: STRANGER,
        channelId: CHANNEL,
        responseUrl,
      }),
    );
    expect(ack.ms).toBeLessThan(3_000);
    expect(fake.calls("socket_mode").at(-1)?.args.type).toBe("interactive");
    expect(String((await replyAt(responseUrl)).args.text)).toContain("not an operator");
  });

  it("serves /healthz on the HTTP port, next to the Socket Mode connection", async () => {
    expect(bot.port).toBe(httpPort);
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, state: "ok" });
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    expect(metrics).toMatch(/cutover_slack_commands_total\{command="status",outcome="answered"\} \d+/);
  });

  it("reconnects when Slack asks it to, and keeps answering", async () => {
    fake.sendSocketDisconnect("refresh_requested");
    await until("the old connection closed", () => fake.socketConnections === 0);
    // The client waits its ping timeout (5 s) before it opens a new connection.
    await fake.waitForSocket({ timeoutMs: 15_000 });
    expect(fake.calls("apps.connections.open")).toHaveLength(2);
    const ack = await fake.sendSocketSlashCommand({ command: "/migrate", text: "help" });
    expect(JSON.stringify(ack.payload?.blocks)).toContain("/migrate status");
  }, 20_000);

  it("never writes the bot token or the app token to the log", () => {
    const all = logs.join("");
    expect(all).toContain("Cutover is up");
    expect(all).not.toContain(BOT_TOKEN);
    expect(all).not.toContain(APP_TOKEN);
  });

  it("closes its connection when it stops", async () => {
    await bot.stop();
    await until("the connection closed", () => fake.socketConnections === 0);
    await expect(
      fake.sendSocketSlashCommand({ command: "/migrate", text: "help" }, { timeoutMs: 300 }),
    ).rejects.toThrow(/no Socket Mode connection is open/);
    expect(fake.calls("apps.connections.open")).toHaveLength(2);
  });
});

describe("FakeSlack's Socket Mode side, bare", () => {
  it("refuses a bot token, hands out one-use tickets, and records an envelope nobody acked", async () => {
    const bare = new FakeSlack();
    await bare.start();
    try {
      const web = new WebClient(undefined, {
        slackApiUrl: bare.apiUrl,
        logLevel: LogLevel.ERROR,
        retryConfig: { retries: 0 },
      });
      await expect(web.apps.connections.open({ token: BOT_TOKEN })).rejects.toThrow(/not_allowed_token_type/);
      const { url } = await web.apps.connections.open({ token: APP_TOKEN });
      expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/socket\?ticket=/);

      const ws = new WebSocket(url!);
      const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
        ws.once("message", (data) => resolve(JSON.parse(String(data))));
        ws.once("error", reject);
      });
      expect(hello.type).toBe("hello");
      const again = new WebSocket(url!);
      await expect(
        new Promise((resolve, reject) => {
          again.once("open", resolve);
          again.once("error", reject);
        }),
      ).rejects.toThrow(/401/);

      // a client that never acks
      await expect(
        bare.sendSocketSlashCommand({ command: "/migrate", text: "help" }, { timeoutMs: 200 }),
      ).rejects.toThrow(/no ack/);
      const [call] = bare.calls("socket_mode");
      expect(call).toMatchObject({ status: 504, error: "no_ack", args: { type: "slash_commands" } });
      ws.terminate();
    } finally {
      await bare.stop();
    }
  });
});
