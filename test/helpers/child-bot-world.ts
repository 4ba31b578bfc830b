import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type pg from "pg";
import { signalGroup, spawnServer } from "../../src/sandbox/child-bot.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { createTestDatabase, queryOnce, type TestDatabase } from "./db.js";
import { waitForValue } from "./wait.js";

export interface ChildBotWorld {
  fake: FakeSlack;
  state: TestDatabase;
  dir: string;
  env: NodeJS.ProcessEnv;
  /** starts the real bot (`tsx src/app.ts`, what `npm start` runs) as a child; waits for its port */
  startBot(): Promise<{ child: ChildProcess; port: number }>;
  /** SIGKILL the whole process group: the bot and anything it started */
  kill9(child: ChildProcess): Promise<void>;
  /** one query on the state database, on a connection of its own */
  query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /** polls `fn` until it gives a value; fails naming `what` after `timeoutMs` */
  until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/**
 * The world of the crash tests: a fake Slack, a state database, a data folder holding the
 * migration file, and the environment the bot runs with (plus `env`), for bots started and
 * SIGKILLed as real processes.
 */
export async function startChildBotWorld(
  label: string,
  opts: { config: string; env?: NodeJS.ProcessEnv; spawnTimeoutMs?: number },
): Promise<ChildBotWorld> {
  const fake = new FakeSlack();
  await fake.start();
  const state = await createTestDatabase(label);
  const dir = await mkdtemp(path.join(tmpdir(), `cutover-${label}-`));
  await writeFile(path.join(dir, "migration.yml"), opts.config);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: `xoxb-${randomBytes(8).toString("hex")}`,
    SLACK_SIGNING_SECRET: randomBytes(16).toString("hex"),
    SLACK_API_URL: fake.apiUrl,
    PORT: "0",
    DATABASE_URL: state.url,
    CUTOVER_CONFIG: path.join(dir, "migration.yml"),
    CUTOVER_DATA_DIR: dir,
    ...opts.env,
  };
  const children: ChildProcess[] = [];
  return {
    fake,
    state,
    dir,
    env,
    async startBot() {
      const started = await spawnServer(
        ["src/app.ts"],
        env,
        opts.spawnTimeoutMs === undefined ? {} : { timeoutMs: opts.spawnTimeoutMs },
      );
      children.push(started.child);
      return started;
    },
    kill9: (child) => signalGroup(child, "SIGKILL"),
    query: (sql, params = []) => queryOnce(state.url, sql, params),
    async until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000) {
      return (await waitForValue(what, fn, (v) => v !== undefined, { timeoutMs })) as T;
    },
    async stop() {
      for (const c of children)
        if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL");
      await fake.stop();
      await state.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
