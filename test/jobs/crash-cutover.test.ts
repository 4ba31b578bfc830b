import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { signalGroup, spawnServer } from "../../src/sandbox/child-bot.js";
import { FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { sendSlashCommand, sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { CALLBACK, INPUT } from "../../src/views/ids.js";
import { APPROVER, CHANNEL, OPERATOR } from "../helpers/bot.js";
import {
  CF_ACCOUNT,
  CF_TOKEN,
  cutoverConfig,
  NEW_IP,
  NEW_RECORD,
  OLD_IP,
  RECORD,
} from "../helpers/cutover-world.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/**
 * The DNS cutover with the bot SIGKILLed in the middle of it (after the switch, while it watches
 * both endpoints), then started again: the approved change is carried out once (the approval is
 * used once, one Pages redeploy), DNS ends switched, and the run keeps its one progress message.
 * The bot is the real process `npm start` runs; Cloudflare, Slack and the apps are fakes.
 */
let fake: FakeSlack;
let cf: FakeCloudflare;
let oldApp: AppServer;
let newApp: AppServer;
let state: TestDatabase;
let dir: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

async function startBot(): Promise<{ child: ChildProcess; port: number }> {
  const started = await spawnServer(["src/app.ts"], env);
  children.push(started.child);
  return started;
}

const kill9 = (child: ChildProcess) => signalGroup(child, "SIGKILL");

async function query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: state.url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const runStatus = async (target: string) =>
  (
    await query<{ status: string }>(
      "SELECT status FROM runs WHERE target = $1 ORDER BY created_at DESC LIMIT 1",
      [target],
    )
  )[0]?.status;

beforeAll(async () => {
  fake = new FakeSlack();
  await fake.start();
  cf = new FakeCloudflare({ apiToken: CF_TOKEN, accountId: CF_ACCOUNT });
  await cf.start();
  cf.addZone("example.com");
  cf.addRecord("example.com", { name: RECORD, type: "A", content: OLD_IP, ttl: 3600 });
  cf.addPagesProject("web", {
    envVars: {
      NEXT_PUBLIC_API_URL: "https://old.example.app",
      NEXT_PUBLIC_CDN_URL: "https://pub-old.r2.dev",
    },
  });
  oldApp = await startAppServer({ name: "old" });
  newApp = await startAppServer({ name: "new" });
  state = await createTestDatabase("crash_cutover");
  dir = await mkdtemp(path.join(tmpdir(), "cutover-crash-cutover-"));
  // a 20 s watch window: time to kill the bot after the switch, while it watches
  const config = cutoverConfig(oldApp, newApp).replace("watchWindowSeconds: 5", "watchWindowSeconds: 20");
  await writeFile(path.join(dir, "migration.yml"), `${config}\ndigest: { enabled: false }\n`);
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: `xoxb-${randomBytes(8).toString("hex")}`,
    SLACK_SIGNING_SECRET: randomBytes(16).toString("hex"),
    SLACK_API_URL: fake.apiUrl,
    PORT: "0",
    DATABASE_URL: state.url,
    CUTOVER_CONFIG: path.join(dir, "migration.yml"),
    CUTOVER_DATA_DIR: dir,
    CLOUDFLARE_API_TOKEN: CF_TOKEN,
    CLOUDFLARE_BASE_URL: cf.baseUrl,
  };
});

afterAll(async () => {
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL");
  await fake?.stop();
  await cf?.stop();
  await oldApp?.stop();
  await newApp?.stop();
  await state?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a DNS cutover killed mid-way", () => {
  it("finishes after SIGKILL and a restart: switched once, the approval used once, one progress message", async () => {
    const first = await startBot();
    const url = `http://127.0.0.1:${first.port}/slack/events`;
    const command = (text: string, port = first.port) =>
      sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret: env.SLACK_SIGNING_SECRET!,
        command: "/migrate",
        text,
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: OPERATOR }),
      });

    await command("run lower-ttl");
    await until("the TTL lowering", async () =>
      (await runStatus("lower-ttl")) === "succeeded" ? true : undefined,
    );
    // the old TTL (3600 s) must elapse before a cutover: age the lowering instead of waiting an hour
    const aged = new Date(Date.now() - 2 * 3600_000).toISOString();
    await query(
      "UPDATE checkpoints SET value = jsonb_set(value, '{loweredAt}', to_jsonb($1::text)) WHERE key = 'snapshot'",
      [aged],
    );
    await command("cutover");
    const approval = await until("the request", async () => {
      const [a] = await query<{ id: string }>("SELECT id FROM approvals WHERE status = 'pending' LIMIT 1");
      return a?.id;
    });
    const submitted = await sendViewSubmission({
      url,
      signingSecret: env.SLACK_SIGNING_SECRET!,
      callbackId: CALLBACK.approveCutover,
      privateMetadata: approval,
      userId: APPROVER,
      values: {
        [INPUT.confirmName.block]: {
          [INPUT.confirmName.action]: { type: "plain_text_input", value: RECORD },
        },
        [INPUT.note.block]: { [INPUT.note.action]: { type: "plain_text_input", value: "go" } },
      },
    });
    expect(submitted.body).toBe("");

    // Kill it after the switch, while it watches the endpoints.
    await until("the switch", async () =>
      cf.records("example.com").find((r) => r.name === RECORD)?.content === NEW_IP ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 2_000));
    await kill9(first.child);
    expect(await runStatus("dns-cutover")).toBe("running");

    // Restart: the recovery sweep resumes the run from its checkpoints.
    const second = await startBot();
    const final = await until(
      "the cutover to finish",
      async () => {
        const s = await runStatus("dns-cutover");
        return s && ["succeeded", "failed", "cancelled"].includes(s) ? s : undefined;
      },
      90_000,
    );
    const [run] = await query<{ error: string | null }>(
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
    const [a] = await query<{ status: string }>("SELECT status FROM approvals WHERE id = $1", [approval]);
    expect(a!.status).toBe("used");
    expect(await query("SELECT id FROM runs WHERE target = 'dns-cutover'")).toHaveLength(1);
    const resumed = await query("SELECT id FROM audit_events WHERE action = 'run.resume'");
    expect(resumed).toHaveLength(1);

    // one progress message for the cutover run, showing its final state
    await until("the final edit", async () =>
      fake.messages(CHANNEL).some((m) => /Run dns-cutover: succeeded/.test(m.text)) ? true : undefined,
    );
    expect(fake.messages(CHANNEL).filter((m) => m.text.includes("Run dns-cutover"))).toHaveLength(1);

    await signalGroup(second.child, "SIGTERM");
  }, 240_000);
});
