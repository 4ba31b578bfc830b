import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createCloudflare } from "../src/cloud/cloudflare.js";
import { type AppServer, startAppServer } from "../src/sandbox/app-servers.js";
import { EXAMPLE_OLD_IP, FakeCloudflare, seedExampleCutover } from "../src/sandbox/FakeCloudflare.js";
import { FakeSlack, type RecordedCall } from "../src/sandbox/FakeSlack.js";
import {
  sendBlockAction,
  sendRollbackSubmission,
  sendSlashCommand,
  sendViewSubmission,
} from "../src/sandbox/slack-sender.js";
import { createPrismaClient, type Db } from "../src/store/client.js";
import { type StateDatabase, startEmbedded } from "../src/store/database.js";
import { ACTION, CALLBACK, INPUT } from "../src/views/ids.js";
import { startShippedBot, stopShippedBot } from "./_shipped-bot.js";

/**
 * `npm run bench -- rollback [--rounds 10]`
 *
 * The emergency way back, timed as a team would feel it: after a real cutover (TTL lowered,
 * requested by the operator, approved by a second person through the modal), DNS and Pages
 * are switched to the new values and the operator submits the /rollback modal with ROLLBACK
 * typed. Each round is timed from sending that signed view_submission to the moment the
 * channel is told the rollback is verified, and the Cloudflare fake is then checked to hold
 * the old record, TTL and Pages variables. Configured waits: none lie on this path (the Pages
 * redeploy is started, not awaited; the fake answers at once), so the figure is the bot's own.
 * The bot is the one users run (`node dist/app.js`, in a process of its own); this process reads
 * the state database it uses (DATABASE_URL, or an embedded PostgreSQL started here for both).
 * Anchor: issue 6's target, under 2 s (the plan's own is 5 minutes).
 * One JSON object on stdout; progress on stderr.
 */

const OPERATOR = "U0OPERATOR";
const APPROVER = "U0APPROVER";
const CHANNEL = "C0MIGRATE";
const OLD_IP = EXAMPLE_OLD_IP;
const NEW_IP = "198.51.100.7";
const RECORD = "api.example.com";
const ACCOUNT = "0123456789abcdef0123456789abcdef";
const TARGET_MS = 2_000;
const PLAN_TARGET_MS = 5 * 60_000;

const progress = (msg: string) => process.stderr.write(`[bench rollback] ${msg}\n`);

function parseArgs(args: string[]): { rounds: number } {
  const opts = { rounds: 10 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const raw = inline ?? args[++i];
    const n = Number(raw);
    if (flag !== "--rounds" || !Number.isInteger(n) || n < 1 || n > 1000) {
      throw new Error(
        `rollback bench: cannot use ${flag}${raw === undefined ? "" : ` ${raw}`}; the option is --rounds <1…1000>`,
      );
    }
    opts.rounds = n;
  }
  return opts;
}

function migrationFile(oldUrl: string, newUrl: string): string {
  return `version: 1
project: benchco
environment: bench
slack: { channel: ${CHANNEL} }
access:
  operators: [${OPERATOR}]
  approvers: [${APPROVER}]
  channels: [${CHANNEL}]
  localOperator: bench-terminal
engine: { attempts: 2, backoffMs: 50 }
digest: { enabled: false }
source:
  app: { url: ${oldUrl}, healthPath: /health }
dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  cutoverTtl: 60
  records:
    - { name: ${RECORD}, type: A, from: ${OLD_IP}, to: ${NEW_IP} }
pages:
  project: web
  accountId: ${ACCOUNT}
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  env:
    NEXT_PUBLIC_API_URL: { from: "https://old.example.app", to: "https://${RECORD}" }
    NEXT_PUBLIC_CDN_URL: { from: "https://pub-old.r2.dev", to: "https://d111.cloudfront.net" }
cutover:
  watchWindowSeconds: 5
  probeIntervalSeconds: 1
verification:
  baseUrl: ${newUrl}
runbook:
  phases:
    - id: switch
      title: Verify and switch
      steps:
        - { id: lower-ttl, uses: dns.lower-ttl }
        - { id: dns-cutover, uses: dns.cutover }
`;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

const round = (ms: number) => Math.round(ms * 10) / 10;

export async function main(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const fake = new FakeSlack();
  await fake.start();
  const cfToken = `cf-bench-${randomBytes(12).toString("hex")}`;
  const cf = new FakeCloudflare({ apiToken: cfToken, accountId: ACCOUNT });
  await cf.start();
  seedExampleCutover(cf);
  let oldApp: AppServer | undefined;
  let newApp: AppServer | undefined;
  let bot: ChildProcess | undefined;
  let state: StateDatabase | undefined;
  let stateDb: Db | undefined;
  const dir = await mkdtemp(path.join(tmpdir(), "cutover-bench-rollback-"));
  await chmod(dir, 0o755);
  const signingSecret = randomBytes(16).toString("hex");
  const botToken = `xoxb-bench-${randomBytes(8).toString("hex")}`;
  try {
    oldApp = await startAppServer({ name: "old" });
    newApp = await startAppServer({ name: "new" });
    const configPath = path.join(dir, "migration.yml");
    await writeFile(configPath, migrationFile(oldApp.url, newApp.url));
    const quiet = { info() {}, warn() {} };
    let databaseUrl = process.env.DATABASE_URL?.trim();
    if (!databaseUrl) {
      state = await startEmbedded(path.join(dir, "state"), quiet);
      databaseUrl = state.url;
    }
    const db = createPrismaClient(databaseUrl);
    stateDb = db;
    const started = await startShippedBot({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: fake.apiUrl,
      CUTOVER_CONFIG: configPath,
      CUTOVER_DATA_DIR: dir,
      CLOUDFLARE_API_TOKEN: cfToken,
      CLOUDFLARE_BASE_URL: cf.baseUrl,
      DATABASE_URL: databaseUrl,
    });
    bot = started.child;
    const cloudflare = createCloudflare({ apiToken: cfToken, baseURL: cf.baseUrl, accountId: ACCOUNT });
    const url = started.eventsUrl;
    const command = (text: string, user = OPERATOR) =>
      sendSlashCommand({
        url,
        signingSecret,
        command: "/migrate",
        text,
        userId: user,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user }),
      });
    const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await probe();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    // A submission is read only from a modal the bot opened (its id and hash, once): the newest
    // one with this callback, once the bot has stored it and while it is unsubmitted.
    const modalFor = (callbackId: string, metadata?: string) =>
      waitFor("the modal the bot opens", async () => {
        const v = fake.latestView(callbackId, metadata);
        const row = v ? await db.slackView.findUnique({ where: { viewId: v.id } }) : null;
        return v && row && !row.usedAt ? { viewId: v.id, viewHash: v.hash } : undefined;
      });
    const runDone = (target: string) =>
      waitFor(`${target} to finish`, async () => {
        const run = await db.run.findFirst({ where: { target }, orderBy: { createdAt: "desc" } });
        if (run && ["failed", "cancelled"].includes(run.status))
          throw new Error(`${target} ${run.status}: ${run.error}`);
        return run?.status === "succeeded" ? run : undefined;
      });

    // 1. The real cutover first: the rollback then reads its targets as it would on the night.
    progress("cutover: lowering the TTL, requesting, approving (the watch window is 5 s)");
    await command("run lower-ttl");
    await runDone("lower-ttl");
    // The old TTL (3600 s) must elapse before a cutover: age the change instead of waiting an hour.
    const aged = new Date(Date.now() - 2 * 3600_000).toISOString();
    await db.$executeRaw`UPDATE checkpoints SET value = jsonb_set(value, '{loweredAt}', to_jsonb(${aged}::text)) WHERE key = 'snapshot'`;
    await command("cutover");
    const approval = await waitFor(
      "the cutover request",
      async () => (await db.approval.findFirst({ where: { status: "pending" } })) ?? undefined,
    );
    await sendBlockAction({
      url,
      signingSecret,
      actionId: ACTION.approveCutover,
      value: approval.id,
      userId: APPROVER,
      channelId: CHANNEL,
      responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: APPROVER }),
    });
    await sendViewSubmission({
      url,
      signingSecret,
      ...(await modalFor(CALLBACK.approveCutover, approval.id)),
      callbackId: CALLBACK.approveCutover,
      privateMetadata: approval.id,
      userId: APPROVER,
      values: {
        [INPUT.confirmName.block]: {
          [INPUT.confirmName.action]: { type: "plain_text_input", value: RECORD },
        },
        [INPUT.note.block]: { [INPUT.note.action]: { type: "plain_text_input", value: "bench" } },
      },
    });
    await runDone("dns-cutover");
    const switched = () => cf.records("example.com").find((r) => r.name === RECORD)!;
    if (switched().content !== NEW_IP) throw new Error("the cutover did not switch the record");

    // 2. Rounds: switched state → /rollback modal submitted → channel told it is verified.
    const samples: number[] = [];
    const reported: number[] = [];
    for (let i = 0; i < opts.rounds; i++) {
      if (i > 0) {
        // back to the switched state, as after a cutover
        const dns = cloudflare.dns;
        const zone = await dns.findZone("example.com");
        const rec = await dns.getRecord(zone, RECORD, "A");
        await dns.updateRecord(rec!, { content: NEW_IP, ttl: 60 });
        await cloudflare.pages.setEnvVars("web", { NEXT_PUBLIC_API_URL: `https://${RECORD}` });
      }
      const told = new Promise<RecordedCall>((resolve) => {
        const onCall = (call: RecordedCall) => {
          const text = String((call.args as { text?: string }).text ?? "");
          if (
            call.method === "chat.postMessage" &&
            /From confirmation to verified|could not run/.test(text)
          ) {
            fake.off("call", onCall);
            resolve(call);
          }
        };
        fake.on("call", onCall);
      });
      await sendSlashCommand({
        url,
        signingSecret,
        command: "/rollback",
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: OPERATOR }),
      });
      const modal = await modalFor(CALLBACK.rollback);
      const t0 = performance.now();
      const res = await sendRollbackSubmission({
        url,
        signingSecret,
        ...modal,
        userId: OPERATOR,
        reason: `bench round ${i + 1}`,
      });
      if (res.status !== 200 || res.body !== "")
        throw new Error(`the modal was refused: ${res.status} ${res.body}`);
      const call = await Promise.race([
        told,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("no rollback report within 30 s")), 30_000).unref(),
        ),
      ]);
      const ms = performance.now() - t0;
      const text = String((call.args as { text: string }).text);
      if (!text.includes("✅")) throw new Error(`round ${i + 1}: rollback not verified: ${text}`);
      const rec = switched();
      const vars = cf.envVars("web");
      if (
        rec.content !== OLD_IP ||
        rec.ttl !== 3600 ||
        vars.NEXT_PUBLIC_API_URL !== "https://old.example.app"
      )
        throw new Error(`round ${i + 1}: Cloudflare does not hold the old values after the rollback`);
      samples.push(ms);
      const m = /From confirmation to verified: (\d+(?:\.\d+)?) (ms|s)/.exec(text);
      if (m) reported.push(Number(m[1]) * (m[2] === "s" ? 1000 : 1));
      progress(`round ${i + 1}: ${Math.round(ms)} ms`);
    }

    const p50 = percentile(samples, 50);
    const p95 = percentile(samples, 95);
    const max = Math.max(...samples);
    process.stdout.write(
      `${JSON.stringify(
        {
          bench: "rollback",
          rounds: samples.length,
          measured: "signed /rollback modal submission sent → channel told 'verified', Cloudflare checked",
          p50_ms: round(p50),
          p95_ms: round(p95),
          max_ms: round(max),
          bot_reported: reported.length
            ? { p50_ms: round(percentile(reported, 50)), max_ms: round(Math.max(...reported)) }
            : null,
          configured_waits_ms: 0,
          anchor: { target_ms: TARGET_MS, plan_target_ms: PLAN_TARGET_MS },
          ratio_to_target: round((max / TARGET_MS) * 1000) / 1000,
          meets_target: max < TARGET_MS,
          pages_deployments: cf.deployments("web").length,
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await stopShippedBot(bot).catch(() => undefined);
    await stateDb?.$disconnect().catch(() => undefined);
    await state?.stop().catch(() => undefined);
    await oldApp?.stop().catch(() => undefined);
    await newApp?.stop().catch(() => undefined);
    await cf.stop().catch(() => undefined);
    await fake.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
