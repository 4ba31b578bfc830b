import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signalGroup, spawnServer } from "../../src/sandbox/child-bot.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { sendSlashCommand } from "../../src/sandbox/slack-sender.js";
import { CHANNEL, OPERATOR, testConfig } from "../helpers/bot.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

const ROWS = 20_000;
let fake: FakeSlack;
let state: TestDatabase;
let dir: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

/** Starts the real bot (`tsx src/app.ts`, what `npm start` runs) as a child and waits for its port. */
async function startBot(): Promise<{ child: ChildProcess; port: number }> {
  const started = await spawnServer(["src/app.ts"], env, { timeoutMs: 30_000 });
  children.push(started.child);
  return started;
}

/** SIGKILL the whole process group: tsx runs the app in a child process of its own. */
const kill9 = (child: ChildProcess) => signalGroup(child, "SIGKILL");

async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: state.url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
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
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  fake = new FakeSlack();
  await fake.start();
  state = await createTestDatabase("crash");
  dir = await mkdtemp(path.join(tmpdir(), "cutover-crash-"));
  await writeFile(path.join(dir, "migration.yml"), testConfig({ probeRows: ROWS, pauseMs: 15 }));
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: `xoxb-${randomBytes(8).toString("hex")}`,
    SLACK_SIGNING_SECRET: randomBytes(16).toString("hex"),
    SLACK_API_URL: fake.apiUrl,
    PORT: "0",
    DATABASE_URL: state.url,
    PROBE_DATABASE_URL: state.url,
    CUTOVER_CONFIG: path.join(dir, "migration.yml"),
    CUTOVER_DATA_DIR: dir,
  };
});

afterAll(async () => {
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL");
  await fake?.stop();
  await state?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a step killed mid-way", () => {
  it("resumes after SIGKILL and a restart, writing every row exactly once, in one progress message", async () => {
    const first = await startBot();
    const res = await sendSlashCommand({
      url: `http://127.0.0.1:${first.port}/slack/events`,
      signingSecret: env.SLACK_SIGNING_SECRET!,
      command: "/migrate",
      text: "run probe",
      userId: OPERATOR,
      channelId: CHANNEL,
      responseUrl: fake.responseUrl("crash-run", { channel: CHANNEL, user: OPERATOR }),
    });
    expect(res.status).toBe(200);

    // Kill it somewhere in the middle of the step.
    const atKill = await until("a quarter of the rows", async () => {
      const [row] = await query<{ done: string }>(
        "SELECT done FROM _cutover_progress WHERE key = 'probe_rows'",
      ).catch(() => []);
      return row && Number(row.done) >= ROWS / 4 ? Number(row.done) : undefined;
    });
    await kill9(first.child);
    const [partial] = await query<{ n: number; status: string }>(
      "SELECT (SELECT count(*)::int FROM probe_rows) AS n, (SELECT status FROM runs LIMIT 1) AS status",
    );
    expect(partial!.status).toBe("running");
    expect(partial!.n).toBeGreaterThanOrEqual(atKill);
    expect(partial!.n).toBeLessThan(ROWS);

    // Restart: the recovery sweep picks the run up and the step continues from its checkpoint.
    const second = await startBot();
    const final = await until("the run to finish", async () => {
      const [run] = await query<{ status: string }>("SELECT status FROM runs LIMIT 1");
      return run && ["succeeded", "failed", "cancelled"].includes(run.status) ? run.status : undefined;
    });
    expect(final).toBe("succeeded");
    const [rows] = await query<{ n: number; d: number; lo: number; hi: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT n)::int AS d, min(n)::int AS lo, max(n)::int AS hi FROM probe_rows",
    );
    expect(rows).toEqual({ n: ROWS, d: ROWS, lo: 1, hi: ROWS });
    // the second process continued the same run (it did not start a new one)
    const resumed = await query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE action = 'run.resume'",
    );
    expect(resumed[0]!.n).toBe(1);

    // Still one progress message for the run, edited to its final state, with the resume noted in its thread.
    await until("the final edit", async () =>
      fake.messages(CHANNEL).some((m) => m.text.includes("Run probe: succeeded")) ? true : undefined,
    );
    const messages = fake.messages(CHANNEL).filter((m) => m.text.includes("Run probe"));
    expect(messages).toHaveLength(1);
    expect(messages[0]!.replies.some((r) => r.text.includes("Resumed after an interruption"))).toBe(true);

    await signalGroup(second.child, "SIGTERM");
  }, 120_000);
});
