import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { vi } from "vitest";
import { type RunningCutover, startCutover } from "../../src/app.js";
import type { Clock } from "../../src/clock.js";
import { createLogger } from "../../src/log.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { checkMessage, type SlackRefusal } from "../../src/sandbox/slack-limits.js";
import {
  newTriggerId,
  type SendResult,
  sendBlockAction,
  sendSlashCommand,
} from "../../src/sandbox/slack-sender.js";
import { TcpProxy } from "../../src/sandbox/tcp-proxy.js";
import { createTestDatabase, type TestDatabase } from "./db.js";

export const OPERATOR = "U0OPERATOR";
export const SECOND_OPERATOR = "U0OPERATOR2";
export const APPROVER = "U0APPROVER";
export const STRANGER = "U0STRANGER";
export const GROUP_MEMBER = "U0GROUPIE";
export const CHANNEL = "C0MIGRATE";
export const OTHER_CHANNEL = "C0RANDOM";

/** A small migration file: the access rules of the tests and one phase of real work. */
export function testConfig(opts: { probeRows?: number; pauseMs?: number; attempts?: number } = {}): string {
  return `version: 1
project: testco
environment: test
slack:
  channel: ${CHANNEL}
access:
  operators: [${OPERATOR}, ${SECOND_OPERATOR}, S0OPS]
  approvers: [${APPROVER}]
  channels: [${CHANNEL}]
  localOperator: test-terminal
engine:
  attempts: ${opts.attempts ?? 2}
  backoffMs: 50
digest: { enabled: false }
runbook:
  phases:
    - id: probe
      title: Probe the target
      steps:
        - id: write-rows
          title: Write numbered rows
          uses: db.write-probe
          with: { urlEnv: PROBE_DATABASE_URL, table: probe_rows, rows: ${opts.probeRows ?? 500}, batch: 100, pauseMs: ${opts.pauseMs ?? 0} }
    - id: later
      title: Not yet built
      steps:
        - id: monitor
          uses: kpi.monitor
`;
}

export interface TestBot {
  bot: RunningCutover;
  fake: FakeSlack;
  state: TestDatabase;
  eventsUrl: string;
  signingSecret: string;
  logs: string[];
  env: NodeJS.ProcessEnv;
  command(
    text: string,
    opts?: {
      user?: string;
      channel?: string;
      triggerId?: string;
      retryNum?: number;
      command?: string;
      /** the response_url of an earlier delivery (a retry repeats it) */
      responseUrl?: string;
    },
  ): Promise<SendResult & { responseUrl: string }>;
  click(
    actionId: string,
    value: string,
    opts?: { user?: string; channel?: string; triggerId?: string },
  ): Promise<SendResult & { responseUrl: string }>;
  /** the TCP proxy between the bot and the Slack Web API (with `slackProxy`) */
  proxy?: TcpProxy;
  stop(): Promise<void>;
}

/**
 * The real bot (startCutover) in this process, over a fresh state database, talking to a
 * FakeSlack; requests go through the real HTTP receiver, signed.
 */
export async function startTestBot(
  label: string,
  opts: { config?: string; env?: Record<string, string>; slackProxy?: boolean; clock?: Clock } = {},
): Promise<TestBot> {
  const fake = new FakeSlack();
  await fake.start();
  // with slackProxy, the bot reaches the Slack Web API through a TCP proxy the test can cut
  let proxy: TcpProxy | undefined;
  if (opts.slackProxy) {
    proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(fake.apiUrl).port) });
    await proxy.start();
  }
  fake.setUsergroup("S0OPS", [GROUP_MEMBER]);
  const state = await createTestDatabase(label);
  const dir = await mkdtemp(path.join(tmpdir(), "cutover-bot-"));
  const configPath = path.join(dir, "migration.yml");
  // A test bot posts no daily digest (it would arrive at start-up after 09:00) unless its file asks.
  const config = opts.config ?? testConfig();
  await writeFile(configPath, /^digest:/m.test(config) ? config : `${config}\ndigest: { enabled: false }\n`);
  const signingSecret = randomBytes(16).toString("hex");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    SLACK_BOT_TOKEN: `xoxb-test-${randomBytes(8).toString("hex")}`,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: proxy ? `http://127.0.0.1:${proxy.port}/api/` : fake.apiUrl,
    PORT: "0",
    DATABASE_URL: state.url,
    CUTOVER_CONFIG: configPath,
    CUTOVER_DATA_DIR: dir,
    PROBE_DATABASE_URL: state.url,
    ...opts.env,
  };
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ secrets: [env.SLACK_BOT_TOKEN!, signingSecret], level: "info", destination });
  const bot = await startCutover({ env, logger, ...(opts.clock ? { clock: opts.clock } : {}) });
  const eventsUrl = `http://127.0.0.1:${bot.port}/slack/events`;
  let n = 0;
  return {
    bot,
    fake,
    state,
    eventsUrl,
    signingSecret,
    logs,
    env,
    async command(text, o = {}) {
      // a redelivery carries the payload it repeats, response_url included
      const responseUrl =
        o.responseUrl ??
        fake.responseUrl(`cmd-${++n}`, {
          channel: o.channel ?? CHANNEL,
          user: o.user ?? OPERATOR,
        });
      const res = await sendSlashCommand({
        url: eventsUrl,
        signingSecret,
        command: o.command ?? "/migrate",
        text,
        userId: o.user ?? OPERATOR,
        channelId: o.channel ?? CHANNEL,
        responseUrl,
        ...(o.triggerId ? { triggerId: o.triggerId } : {}),
        ...(o.retryNum !== undefined ? { retryNum: o.retryNum, retryReason: "http_timeout" } : {}),
      });
      // a reply inside the ack goes to Slack in the HTTP answer, past the fake: hold it to the same limits
      const refusal = ackRefusal(res.body);
      if (refusal)
        throw new Error(
          `Slack would refuse the ack's reply to "${text}": ${refusal.error} ${refusal.message}`,
        );
      return { ...res, responseUrl };
    },
    async click(actionId, value, o = {}) {
      const responseUrl = fake.responseUrl(`act-${++n}`, {
        channel: o.channel ?? CHANNEL,
        user: o.user ?? OPERATOR,
      });
      const res = await sendBlockAction({
        url: eventsUrl,
        signingSecret,
        actionId,
        value,
        userId: o.user ?? OPERATOR,
        channelId: o.channel ?? CHANNEL,
        responseUrl,
        ...(o.triggerId ? { triggerId: o.triggerId } : {}),
      });
      return { ...res, responseUrl };
    },
    ...(proxy ? { proxy } : {}),
    async stop() {
      await bot.stop();
      await proxy?.stop();
      await fake.stop();
      await state.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** What Slack would refuse in a reply given in an ack's HTTP body (JSON with `text`/`blocks`). */
function ackRefusal(body: string | undefined): SlackRefusal | undefined {
  if (!body?.trim().startsWith("{")) return undefined;
  const parsed = JSON.parse(body) as { text?: unknown; blocks?: unknown };
  return parsed.text !== undefined || parsed.blocks !== undefined ? checkMessage(parsed) : undefined;
}

/** The text of the reply that reached a response URL (or the ack body, for replies in the ack). */
export async function replyText(
  bot: TestBot,
  res: SendResult & { responseUrl: string },
  timeoutMs = 5_000,
): Promise<string> {
  if (res.body?.trim().startsWith("{")) {
    const parsed = JSON.parse(res.body) as { text?: string };
    if (parsed.text) return parsed.text;
  }
  const id = res.responseUrl.split("/").pop();
  try {
    const call = await bot.fake.waitFor(
      (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
      { timeoutMs },
    );
    return String((call.args as { text?: string }).text ?? "");
  } catch (err) {
    // a missing reply says little on its own: the bot's warnings and errors say why
    const trouble = bot.logs.filter((line) => /"level":(40|50|60)/.test(line)).slice(-10);
    throw new Error(`${(err as Error).message}\nbot warnings and errors:\n${trouble.join("") || "(none)"}`);
  }
}

/** A modal the bot opened, as Slack would send its id and hash back on submission. */
export interface OpenedModal {
  viewId: string;
  viewHash: string;
}

/**
 * Does what a person does to get a modal (a button click, a slash command) with a trigger id of
 * its own, and resolves with the modal the bot opened for it; undefined when the bot answered
 * with a refusal instead (the reply at the response URL came first).
 */
export async function openModal(
  t: TestBot,
  open: (triggerId: string) => Promise<SendResult & { responseUrl: string }>,
  timeoutMs = 10_000,
): Promise<OpenedModal | undefined> {
  const triggerId = newTriggerId();
  const res = await open(triggerId);
  const replyId = res.responseUrl.split("/").pop();
  const call = await t.fake.waitFor(
    (c) =>
      (c.method === "views.open" && (c.args as { trigger_id?: string }).trigger_id === triggerId) ||
      (c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === replyId),
    { timeoutMs },
  );
  if (call.method !== "views.open") return undefined;
  const view = t.fake.views().find((v) => v.trigger_id === triggerId);
  if (!view) return undefined;
  // a person reads the modal before submitting it: by then the bot has stored what it opened
  await viewRecorded(t, view.id, timeoutMs);
  return { viewId: view.id, viewHash: view.hash };
}

/** The newest modal the bot opened with this callback (and private_metadata), once it has stored it. */
export async function latestModal(
  t: TestBot,
  callbackId: string,
  privateMetadata?: string,
): Promise<OpenedModal> {
  const view = t.fake.latestView(callbackId, privateMetadata);
  if (!view) throw new Error(`no ${callbackId} modal was opened`);
  await viewRecorded(t, view.id);
  return { viewId: view.id, viewHash: view.hash };
}

/**
 * Waits until the bot has stored the modal it opened. Raw SQL, so the attack suite still runs
 * (and fails for the hole it probes, not for a missing table) against a build without views.
 */
async function viewRecorded(t: TestBot, viewId: string, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(
    async () => {
      const rows = await t.bot.deps.db
        .$queryRawUnsafe<unknown[]>("SELECT 1 FROM slack_views WHERE view_id = $1", viewId)
        .catch((err: Error) => (/slack_views/.test(err.message) ? [1] : Promise.reject(err)));
      if (rows.length === 0) throw new Error(`the bot has not recorded view ${viewId}`);
    },
    { timeout: timeoutMs, interval: 20 },
  );
}
