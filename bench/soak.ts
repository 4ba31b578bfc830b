import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { type RunningCutover, startCutover } from "../src/app.js";
import { slackImageUploader } from "../src/cloud/slack-files.js";
import { type DigestDeps, publishDigest } from "../src/digest/index.js";
import { digestSources } from "../src/digest/sources.js";
import { createLogger } from "../src/log.js";
import { type AppServer, startAppServer } from "../src/sandbox/app-servers.js";
import { FakeSlack } from "../src/sandbox/FakeSlack.js";

/**
 * `npm run bench -- soak [--minutes 30] [--warmup-minutes 2]`
 *
 * The bot left running as on the weeks after the cutover, compressed: the KPI probe job at a
 * 1 s interval (an endpoint that answers, with a failure now and then) and the daily digest
 * (progress, KPIs, cost, two PNG charts uploaded) once a minute, for `--minutes`. Measured on
 * the bot's process: RSS after the warm-up against RSS at the end (median of the last minute's
 * readings against the first's), the active handles by kind, and the state database's
 * connections. Anchor: issue 9's targets, RSS growth under 10 % and nothing leaked.
 * The Slack fake lives in this process too; its records are cleared every minute (after
 * counting), so what it keeps does not count as the bot's growth.
 * One JSON object on stdout; progress on stderr.
 */

const CHANNEL = "C0SOAK";
const say = (msg: string) => process.stderr.write(`[bench soak] ${msg}\n`);

function parseArgs(args: string[]): { minutes: number; warmup: number } {
  const opts = { minutes: 30, warmup: 2 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const raw = inline ?? args[++i];
    const n = Number(raw);
    if (flag === "--minutes" && Number.isFinite(n) && n >= 1 && n <= 24 * 60) opts.minutes = n;
    else if (flag === "--warmup-minutes" && Number.isFinite(n) && n >= 0 && n <= 60) opts.warmup = n;
    else
      throw new Error(
        `soak bench: cannot use ${flag}${raw === undefined ? "" : ` ${raw}`}; options: --minutes <1…1440>, --warmup-minutes <0…60>`,
      );
  }
  return opts;
}

function config(apiUrl: string): string {
  return `version: 1
project: soakco
environment: soak
slack: { channel: ${CHANNEL} }
access:
  operators: [U0OPERATOR]
  approvers: [U0APPROVER]
  channels: [${CHANNEL}]
kpis:
  probes:
    intervalSeconds: 1
    timeoutMs: 2000
    endpoints:
      - { id: api-health, url: ${apiUrl}/health }
    database: { enabled: false }
  retentionDays: 1
digest: { enabled: false }
runbook:
  phases:
    - id: switch
      title: Switch
      steps:
        - { id: probe, uses: http.check, with: { url: ${apiUrl}/health } }
`;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
};
const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

export async function main(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const fake = new FakeSlack();
  await fake.start();
  let api: AppServer | undefined;
  let bot: RunningCutover | undefined;
  const dir = await mkdtemp(path.join(tmpdir(), "cutover-bench-soak-"));
  await chmod(dir, 0o755);
  try {
    api = await startAppServer({ name: "new" });
    const configPath = path.join(dir, "migration.yml");
    await writeFile(configPath, config(api.url));
    const databaseUrl = process.env.DATABASE_URL?.trim() || undefined;
    const botToken = `xoxb-soak-${randomBytes(8).toString("hex")}`;
    const signingSecret = randomBytes(16).toString("hex");
    bot = await startCutover({
      env: {
        PATH: process.env.PATH,
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: fake.apiUrl,
        PORT: "0",
        CUTOVER_CONFIG: configPath,
        CUTOVER_DATA_DIR: dir,
        ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      },
      logger: createLogger({
        secrets: [botToken, signingSecret],
        level: "warn",
        destination: process.stderr,
      }),
    });
    const { deps, app } = bot;
    const file = deps.file;
    const digestDeps: DigestDeps = {
      db: deps.db,
      file,
      log: deps.log,
      sources: digestSources({ db: deps.db, file, costExplorer: deps.costExplorer, log: deps.log }),
      slack: {
        uploader: slackImageUploader(app.client),
        async post(channel, reply) {
          const res = await app.client.chat.postMessage({ channel, text: reply.text, blocks: reply.blocks });
          return res.ts as string;
        },
      },
    };
    const stateUrl = deps.state.url;
    const connections = async () => {
      const c = new pg.Client({ connectionString: stateUrl });
      await c.connect();
      try {
        const r = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        return r.rows[0]!.n;
      } finally {
        await c.end();
      }
    };

    const totalMs = (opts.warmup + opts.minutes) * 60_000;
    const started = Date.now();
    const readings: Array<{ at: number; rss: number; heap: number }> = [];
    let digests = 0;
    let digestErrors = 0;
    let uploads = 0;
    let baseline: { handles: Record<string, number>; connections: number } | undefined;
    let minute = 0;
    say(
      `running ${opts.warmup} min warm-up + ${opts.minutes} min measured; probes every 1 s, a digest a minute`,
    );
    while (Date.now() - started < totalMs) {
      await new Promise((r) => setTimeout(r, 10_000));
      const m = process.memoryUsage();
      readings.push({ at: Date.now() - started, rss: m.rss, heap: m.heapUsed });
      const elapsedMin = Math.floor((Date.now() - started) / 60_000);
      if (elapsedMin > minute) {
        minute = elapsedMin;
        const now = new Date();
        try {
          await publishDigest(digestDeps, now.toISOString().slice(0, 10), now);
          digests++;
        } catch (err) {
          digestErrors++;
          say(`digest failed: ${(err as Error).message}`);
        }
        uploads += fake.files().filter((f) => f.uploaded).length;
        fake.reset();
        if (minute === opts.warmup && !baseline) {
          // let the digest's sockets settle before counting
          await new Promise((r) => setTimeout(r, 2_000));
          baseline = { handles: handleCounts(), connections: await connections() };
        }
        say(`minute ${minute}: rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB, digests ${digests}`);
      }
    }
    await new Promise((r) => setTimeout(r, 2_000));
    const end = { handles: handleCounts(), connections: await connections() };
    const warmMs = opts.warmup * 60_000;
    const firstMinute = readings.filter((r) => r.at >= warmMs && r.at < warmMs + 60_000);
    const lastMinute = readings.filter((r) => r.at >= totalMs - 60_000);
    const rssStart = median(firstMinute.map((r) => r.rss));
    const rssEnd = median(lastMinute.map((r) => r.rss));
    const growth = rssStart ? Math.round(((rssEnd - rssStart) / rssStart) * 1000) / 10 : null;
    const samples = await deps.db.kpiSample.count();
    const sumHandles = (h: Record<string, number>) => Object.values(h).reduce((a, b) => a + b, 0);
    const leakedHandles = baseline ? sumHandles(end.handles) - sumHandles(baseline.handles) : null;
    const leakedConnections = baseline ? end.connections - baseline.connections : null;
    process.stdout.write(
      `${JSON.stringify(
        {
          bench: "soak",
          minutes: opts.minutes,
          warmup_minutes: opts.warmup,
          probe_interval_s: 1,
          kpi_samples: samples,
          expected_samples_about: Math.round(totalMs / 1000),
          digests,
          digest_errors: digestErrors,
          chart_uploads: uploads,
          rss_mb: { after_warmup: mb(rssStart), end: mb(rssEnd), growth_percent: growth },
          heap_mb: {
            after_warmup: mb(median(firstMinute.map((r) => r.heap))),
            end: mb(median(lastMinute.map((r) => r.heap))),
          },
          handles: { after_warmup: baseline?.handles ?? null, end: end.handles, leaked: leakedHandles },
          state_db_connections: {
            after_warmup: baseline?.connections ?? null,
            end: end.connections,
            leaked: leakedConnections,
          },
          anchor: { rss_growth_percent_max: 10, leaked_max: 0 },
          meets_target:
            growth !== null &&
            growth < 10 &&
            (leakedHandles ?? 1) <= 0 &&
            (leakedConnections ?? 1) <= 0 &&
            digestErrors === 0,
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await bot?.stop().catch((err: Error) => say(`stopping the bot: ${err.message}`));
    await api?.stop();
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
