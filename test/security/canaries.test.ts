import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { collectEnvRefs, parseMigrationFile } from "../../src/config/load.js";
import { FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { sendSlashCommand } from "../../src/sandbox/slack-sender.js";
import { APPROVER, CHANNEL, OPERATOR, STRANGER } from "../helpers/bot.js";
import {
  createEmptyDatabase,
  createTestDatabase,
  databaseUrl,
  queryOnce,
  type TestDatabase,
} from "../helpers/db.js";
import { waitForValue } from "../helpers/wait.js";
import { reportFigure } from "./figures.js";

/**
 * Secret canaries. The real bot (`tsx src/app.ts`, as `npm start` runs it) is started with the
 * shipped example migration file (GoGoJap's plan, endpoints pointed at the local world) and a
 * recognisable fake secret in EVERY secret setting: each variable the file names through an `…Env`
 * field or `{ env: NAME }`, the SLACK_* settings, DATABASE_URL, AWS and Cloudflare credentials.
 * A realistic flow runs: commands (allowed and refused), a dry run, a probe run, a database copy,
 * a DNS TTL change, and runs that fail with error messages. Then every place a secret could end
 * up is searched: every recorded Slack payload, every log line (stdout and stderr), every text
 * column of every table of the state database and of the target, every file under the data
 * directory, every error message. The marker must appear zero times.
 */

const MARKER = "CNRY";
const secrets = new Map<string, string>();
/** A fake secret with the marker and a unique core, in the shape the setting expects. */
function canary(name: string, shape: (core: string) => string = (c) => c): string {
  const core = `${MARKER}${name.replace(/[^A-Za-z]/g, "").slice(0, 6)}${randomBytes(6).toString("hex")}`;
  const value = shape(core);
  secrets.set(name, value);
  return value;
}

let slack: FakeSlack;
let cf: FakeCloudflare;
let state: TestDatabase;
let source: TestDatabase;
let target: TestDatabase;
let dir: string;
let env: NodeJS.ProcessEnv;
let child: ChildProcess | undefined;
let closed: Server;
let closedPort: number;
let eventsUrl = "";
let out = "";
let sshKeyPath = "";

const withPassword = (url: string, password: string) => {
  const u = new URL(url);
  u.password = password;
  return u.toString();
};

/** The shipped example file, with endpoints, people and the runbook of this test. */
async function exampleConfig(): Promise<string> {
  const doc = parseDocument(await readFile("migration.example.yml", "utf8"));
  doc.setIn(["slack", "channel"], CHANNEL);
  doc.setIn(["access", "operators"], [OPERATOR]);
  doc.setIn(["access", "approvers"], [APPROVER]);
  doc.setIn(["access", "channels"], [CHANNEL]);
  doc.setIn(["engine"], { attempts: 2, backoffMs: 50 });
  doc.setIn(["source", "storage", "endpoint"], `http://127.0.0.1:${closedPort}`);
  doc.setIn(["target", "rds", "urlEnv"], "RDS_DATABASE_URL");
  // a snapshot copy: this runbook has no db.replicate, and the test databases no app role to freeze
  doc.deleteIn(["replication"]);
  doc.setIn(["runbook"], {
    phases: [
      {
        id: "probe",
        title: "Probe",
        steps: [
          {
            id: "write-rows",
            uses: "db.write-probe",
            with: { urlEnv: "PROBE_DATABASE_URL", table: "probe_rows", rows: 200, batch: 50 },
          },
        ],
      },
      {
        id: "data",
        title: "Data migration",
        steps: [
          { id: "db-preflight", uses: "db.preflight", with: { jobs: 2 } },
          { id: "db-dump", uses: "db.dump", with: { jobs: 2 } },
          { id: "db-restore", uses: "db.restore", with: { jobs: 2 } },
          { id: "db-verify", uses: "db.verify", with: { jobs: 2 } },
        ],
      },
      {
        id: "broken",
        title: "Fails on purpose",
        steps: [
          {
            id: "broken-write",
            uses: "db.write-probe",
            with: { urlEnv: "BROKEN_DATABASE_URL", table: "t", rows: 10 },
          },
        ],
      },
      { id: "objects", title: "Objects", steps: [{ id: "storage-sync", uses: "storage.sync" }] },
      { id: "switch", title: "Switch", steps: [{ id: "lower-ttl", uses: "dns.lower-ttl" }] },
    ],
  });
  return doc.toString();
}

async function startBot(): Promise<number> {
  child = spawn(path.resolve("node_modules/.bin/tsx"), ["src/app.ts"], {
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stderr!.on("data", (d) => {
    out += d;
  });
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the bot did not start:\n${out}`)), 60_000);
    child!.stdout!.on("data", (d: Buffer) => {
      out += d;
      const m = /"port":(\d+).*"msg":"Cutover is up"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child!.once("exit", (code) => reject(new Error(`the bot exited with ${code}:\n${out}`)));
  });
}

async function command(text: string, opts: { user?: string; command?: string } = {}): Promise<string> {
  const id = `c${randomBytes(4).toString("hex")}`;
  const res = await sendSlashCommand({
    url: eventsUrl,
    signingSecret: env.SLACK_SIGNING_SECRET!,
    command: opts.command ?? "/migrate",
    text,
    userId: opts.user ?? OPERATOR,
    channelId: CHANNEL,
    responseUrl: slack.responseUrl(id, { channel: CHANNEL, user: opts.user ?? OPERATOR }),
  });
  expect(res.status).toBe(200);
  if (res.body.trim().startsWith("{")) return String(JSON.parse(res.body).text ?? "");
  const call = await slack.waitFor(
    (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
    { timeoutMs: 20_000 },
  );
  return String((call.args as { text?: string }).text ?? "");
}

const query = queryOnce;

async function waitForRun(
  targetName: string,
  timeoutMs = 120_000,
): Promise<{ status: string; error: string | null }> {
  const rows = await waitForValue(
    `${targetName} to end`,
    () =>
      query<{ status: string; error: string | null }>(
        state.url,
        "SELECT status, error FROM runs WHERE target = $1 AND NOT dry_run ORDER BY created_at DESC LIMIT 1",
        [targetName],
      ),
    (r) => r[0] !== undefined && ["succeeded", "failed", "cancelled"].includes(r[0].status),
    { timeoutMs, intervalMs: 200 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${out.slice(-3000)}`);
  });
  return rows[0]!;
}

beforeAll(async () => {
  closed = createServer((s) => s.destroy()); // accepts and drops: an endpoint that never answers
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  closedPort = (closed.address() as { port: number }).port;
  slack = new FakeSlack();
  await slack.start();
  state = await createTestDatabase("sec_canary");
  source = await createEmptyDatabase("sec_canary_src");
  target = await createEmptyDatabase("sec_canary_dst");
  await query(
    source.url,
    "CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 500) g",
  );
  dir = await mkdtemp(path.join(tmpdir(), "cutover-canary-"));
  const configPath = path.join(dir, "migration.yml");
  const config = await exampleConfig();
  await writeFile(configPath, config);

  const cfToken = canary("CLOUDFLARE_API_TOKEN");
  cf = new FakeCloudflare({ apiToken: cfToken, accountId: "0123456789abcdef0123456789abcdef" });
  await cf.start();
  cf.addZone("gogojap.com");
  cf.addRecord("gogojap.com", { name: "api.gogojap.com", type: "A", content: "203.0.113.10", ttl: 3600 });
  // (the example says cdn.gogojap.com is new, but dns.lower-ttl insists it exists: reported to the lead)
  cf.addRecord("gogojap.com", {
    name: "cdn.gogojap.com",
    type: "CNAME",
    content: "pub-old.r2.dev",
    ttl: 3600,
  });
  cf.addPagesProject("gogojap-web", {
    envVars: {
      NEXT_PUBLIC_API_URL: "https://gogojap.zeabur.app",
      NEXT_PUBLIC_CDN_URL: "https://pub-old.r2.dev",
    },
  });

  sshKeyPath = path.join(dir, "lightsail-key.pem");
  const keyText = canary(
    "LIGHTSAIL_SSH_KEY",
    (c) => `-----BEGIN OPENSSH PRIVATE KEY-----\n${c}\n-----END OPENSSH PRIVATE KEY-----\n`,
  );
  await writeFile(sshKeyPath, keyText, { mode: 0o600 });

  const byShape: Record<string, (c: string) => string> = {
    NEON_DATABASE_URL: (c) => withPassword(source.url, c),
    RDS_DATABASE_URL: (c) => withPassword(target.url, c),
    PROBE_DATABASE_URL: (c) => withPassword(state.url, c),
    BROKEN_DATABASE_URL: (c) => withPassword(databaseUrl("cutover_no_such_database"), c),
    RDS_MASTER_PASSWORD: (c) => `Pw${c}x`,
  };
  const file = parseMigrationFile(config, { checkEnv: false });
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: canary("SLACK_BOT_TOKEN", (c) => `xoxb-${c}`),
    SLACK_SIGNING_SECRET: canary("SLACK_SIGNING_SECRET"),
    SLACK_API_URL: slack.apiUrl,
    PORT: "0",
    DATABASE_URL: canary("DATABASE_URL", (c) => withPassword(state.url, c)),
    CUTOVER_CONFIG: configPath,
    CUTOVER_DATA_DIR: dir,
    CLOUDFLARE_API_TOKEN: cfToken,
    CLOUDFLARE_BASE_URL: cf.baseUrl,
    AWS_ACCESS_KEY_ID: canary("AWS_ACCESS_KEY_ID", (c) => `AKIA${c.toUpperCase()}`),
    AWS_SECRET_ACCESS_KEY: canary("AWS_SECRET_ACCESS_KEY"),
    AWS_SESSION_TOKEN: canary("AWS_SESSION_TOKEN"),
    AWS_REGION: "ap-southeast-1",
    AWS_ENDPOINT_URL: `http://127.0.0.1:${closedPort}`,
    AWS_EC2_METADATA_DISABLED: "true",
    LIGHTSAIL_SSH_KEY_PATH: sshKeyPath,
    LOG_LEVEL: "debug",
  };
  for (const ref of collectEnvRefs(file)) {
    if (env[ref.variable] !== undefined) continue;
    env[ref.variable] = canary(ref.variable, byShape[ref.variable]);
  }
  for (const name of ["PROBE_DATABASE_URL", "BROKEN_DATABASE_URL", "RDS_DATABASE_URL"])
    if (env[name] === undefined) env[name] = canary(name, byShape[name]);
  const port = await startBot();
  eventsUrl = `http://127.0.0.1:${port}/slack/events`;
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    process.kill(-child.pid!, "SIGKILL");
    await exited;
  }
  await slack?.stop();
  await cf?.stop();
  await new Promise((r) => closed?.close(r));
  await state?.drop();
  await source?.drop();
  await target?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ───────────────────────────── searching ─────────────────────────────

/** What to look for: the marker itself, and each secret in base64 and URL-encoded form. */
function needles(): string[] {
  const list = new Set<string>([MARKER, MARKER.toLowerCase()]);
  for (const v of secrets.values()) {
    list.add(Buffer.from(v).toString("base64").slice(0, 16));
    list.add(encodeURIComponent(v));
  }
  return [...list];
}

interface Leak {
  where: string;
  needle: string;
  excerpt: string;
}

function scan(where: string, text: string, leaks: Leak[]): void {
  for (const n of needles()) {
    const i = text.indexOf(n);
    if (i >= 0) leaks.push({ where, needle: n, excerpt: text.slice(Math.max(0, i - 80), i + 80) });
  }
}

async function scanDatabase(label: string, url: string, leaks: Leak[]): Promise<number> {
  const columns = await query<{ s: string; t: string; c: string }>(
    url,
    `SELECT c.table_schema AS s, c.table_name AS t, c.column_name AS c
       FROM information_schema.columns c JOIN information_schema.tables t
         ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
      WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema')
        AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'ARRAY', 'USER-DEFINED')`,
  );
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const { s, t, c } of columns) {
      const col = `${client.escapeIdentifier(s)}.${client.escapeIdentifier(t)}`;
      const expr = `${client.escapeIdentifier(c)}::text`;
      const rows = await client.query<{ v: string }>(
        `SELECT ${expr} AS v FROM ${col} WHERE ${needles()
          .map((_, i) => `strpos(${expr}, $${i + 1}) > 0`)
          .join(" OR ")} LIMIT 5`,
        needles(),
      );
      for (const r of rows.rows) scan(`${label} ${s}.${t}.${c}`, r.v, leaks);
    }
  } finally {
    await client.end();
  }
  return columns.length;
}

async function filesUnder(root: string): Promise<string[]> {
  const outFiles: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const p = path.join(root, entry.name);
    if (entry.isDirectory()) outFiles.push(...(await filesUnder(p)));
    else if (entry.isFile()) outFiles.push(p);
  }
  return outFiles;
}

describe("secret canaries", () => {
  it("runs the flow: commands, a dry run, runs that succeed and runs that fail", async () => {
    expect(secrets.size).toBeGreaterThanOrEqual(17);
    expect(await command("help")).toContain("/migrate");
    expect(await command("status")).toMatch(/^Migration status/);
    expect(await command("status", { user: STRANGER })).toContain("⛔");
    expect(await command("plan data")).toMatch(/Dry run of `data` queued/);
    expect(await command("run probe")).toMatch(/queued as/);
    expect((await waitForRun("probe")).status).toBe("succeeded");
    expect(await command("run data")).toMatch(/queued as/);
    const data = await waitForRun("data", 180_000);
    expect(data.status, data.error ?? "").toBe("succeeded");
    expect(await command("run broken")).toMatch(/queued as/);
    const broken = await waitForRun("broken");
    expect(broken.status).toBe("failed");
    expect(broken.error).toBeTruthy();
    expect(await command("run objects")).toMatch(/queued as/);
    const objects = await waitForRun("objects");
    expect(objects.status).toBe("failed");
    expect(await command("run switch")).toMatch(/queued as/);
    const sw = await waitForRun("switch");
    expect(sw.status, sw.error ?? "").toBe("succeeded");
    expect(await command("verify database")).toBeTruthy();
    expect(await command("audit 100")).toContain("audit");
    expect(await command("cutover --reason canary-drill")).toBeTruthy();
    // /rollback opens its modal (which lists the values it would restore)
    const views = slack.calls("views.open").length;
    await sendSlashCommand({
      url: eventsUrl,
      signingSecret: env.SLACK_SIGNING_SECRET!,
      command: "/rollback",
      userId: OPERATOR,
      channelId: CHANNEL,
      responseUrl: slack.responseUrl("rollback", { channel: CHANNEL, user: OPERATOR }),
    });
    await slack.waitFor((c) => c.method === "views.open" && slack.calls("views.open").length > views, {
      timeoutMs: 20_000,
    });
    // a command naming something that does not exist, and the error reply it gets
    expect(await command("run nothing-like-this")).toBeTruthy();
    // stop the bot the way production does, so shutdown lines are in the log too
    const exited = new Promise((r) => child!.once("exit", r));
    process.kill(-child!.pid!, "SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
  }, 300_000);

  it("finds not one occurrence of any secret anywhere", async () => {
    const leaks: Leak[] = [];
    // 1. every Slack payload (the bot token travels in the Authorization header, as it must)
    const calls = slack.calls();
    expect(calls.length).toBeGreaterThan(10);
    for (const c of calls) scan(`slack ${c.method}`, JSON.stringify(c.args), leaks);
    // positive control: the canaries were live (the bot token authenticated every call), and the
    // scanner finds one where it is
    expect(calls.every((c) => c.token === env.SLACK_BOT_TOKEN || c.method === "response_url")).toBe(true);
    const control: Leak[] = [];
    scan("control", `xx${encodeURIComponent(env.DATABASE_URL!)}xx`, control);
    expect(control.length).toBeGreaterThan(0);
    for (const m of slack.messages(CHANNEL)) scan("slack channel", JSON.stringify(m), leaks);
    // 2. every log line, stdout and stderr
    const lines = out.split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) scan("log", line, leaks);
    // 3. every text column of every table: the state database, and the target the flow wrote to
    const stateColumns = await scanDatabase("state", state.url, leaks);
    const targetColumns = await scanDatabase("target", target.url, leaks);
    // 4. every file under the data directory (reports, dumps), except the test's own inputs
    const files = (await filesUnder(dir)).filter((f) => f !== sshKeyPath && !f.endsWith("migration.yml"));
    for (const f of files) {
      if ((await stat(f)).size > 50_000_000) continue;
      scan(`file ${path.relative(dir, f)}`, (await readFile(f)).toString("latin1"), leaks);
    }
    // 5. every error message: runs, steps (also covered by the column scan; asserted by name)
    const errors = await query<{ error: string }>(
      state.url,
      "SELECT error FROM runs WHERE error IS NOT NULL UNION ALL SELECT error FROM step_executions WHERE error IS NOT NULL",
    );
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) scan("error message", e.error, leaks);

    reportFigure("canaries", {
      secrets: secrets.size,
      leaks: leaks.length,
      slackCalls: calls.length,
      logLines: lines.length,
      columns: stateColumns + targetColumns,
      files: files.length,
      errorMessages: errors.length,
    });
    expect(leaks).toEqual([]);
  }, 120_000);
});
