import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CutoverError, describeError, ErrorCode } from "../../src/errors.js";
import { checkConnection, resolveStateDatabase, type StateDatabase } from "../../src/store/database.js";
import type { StoreLog } from "../../src/store/migrate.js";
import { databaseUrl, queryOnce } from "../helpers/db.js";
import { cutoverErrorOf } from "../helpers/errors.js";
import { waitUntil } from "../helpers/wait.js";

interface Line {
  level: string;
  obj: object;
  msg?: string;
}

function recordingLog(lines: Line[]): StoreLog {
  return {
    info: (obj, msg) => lines.push({ level: "info", obj, msg }),
    warn: (obj, msg) => lines.push({ level: "warn", obj, msg }),
    debug: () => {},
  };
}

const query = queryOnce;

const refusal = cutoverErrorOf;

/** Everything a person or a log could see of an error. */
function visible(err: CutoverError): string {
  return `${err.message}\n${describeError(err)}\n${JSON.stringify(err.details)}`;
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("resolveStateDatabase with embedded PostgreSQL", () => {
  let dataDir: string;
  const started: StateDatabase[] = [];
  const children: ChildProcess[] = [];
  const scriptPids: number[] = [];
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "cutover-data-"));
    // As root the server runs as the `postgres` user, which must be able to enter the folder.
    await chmod(dataDir, 0o755);
  });
  afterAll(async () => {
    for (const pid of scriptPids) if (alive(pid)) process.kill(pid, "SIGKILL");
    for (const child of children) child.kill();
    for (const db of started) await db.stop();
    // A server a failed test left orphaned: fast shutdown before its directory goes.
    const leftover = await readFile(path.join(dataDir, "postgres", "postmaster.pid"), "utf8").catch(() => "");
    const pid = Number.parseInt(leftover.split("\n")[0] ?? "", 10);
    if (pid > 0 && running(pid)) {
      process.kill(pid, "SIGINT");
      await waitUntil("the process to end", () => !running(pid), { timeoutMs: 10_000, intervalMs: 25 }).catch(
        () => process.kill(pid, "SIGKILL"),
      );
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  async function start(lines: Line[] = []): Promise<StateDatabase> {
    const db = await resolveStateDatabase({ dataDir, log: recordingLog(lines) });
    started.push(db);
    return db;
  }

  it("starts from an empty data directory, stops, and starts again on the same data", async () => {
    const first: Line[] = [];
    const db = await start(first);
    expect(db.embedded).toBe(true);
    const url = new URL(db.url);
    expect(url.hostname).toBe("127.0.0.1");
    expect(url.port).not.toBe("5432");
    expect(url.pathname).toBe("/cutover");
    expect(existsSync(path.join(dataDir, "postgres", "PG_VERSION"))).toBe(true);
    expect(first.some((l) => l.msg?.includes("creating the embedded PostgreSQL data directory"))).toBe(true);

    const [info] = await query<{ db: string; version: string; encoding: string }>(
      db.url,
      "SELECT current_database() AS db, current_setting('server_version') AS version, pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = current_database()",
    );
    expect(info).toMatchObject({ db: "cutover", encoding: "UTF8" });
    expect(info?.version).toMatch(/^17\./);
    await query(db.url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('小心 DNS')");

    // A wrong password on a server that checks passwords: named user, no password in the text.
    const wrong = new URL(db.url);
    wrong.password = "not-the-password-42";
    const err = await refusal(checkConnection(wrong.toString()));
    expect(err.code).toBe(ErrorCode.Unreachable);
    expect(err.message).toContain('refused user "postgres" (wrong password)');
    expect(visible(err)).not.toContain("not-the-password-42");
    expect(visible(err)).not.toContain(decodeURIComponent(new URL(db.url).password));

    // A second Cutover on the same data directory is told, not left to fight over it.
    const busy = await refusal(resolveStateDatabase({ dataDir, log: recordingLog([]) }));
    expect(busy.code).toBe(ErrorCode.LockHeld);
    expect(busy.message).toContain("is already running (PID");

    await db.stop();
    await db.stop(); // twice is fine
    await expect(query(db.url, "SELECT 1")).rejects.toThrow();

    const second: Line[] = [];
    const again = await start(second);
    expect(second.some((l) => l.msg?.includes("creating"))).toBe(false);
    expect(await query(again.url, "SELECT v FROM kept")).toEqual([{ v: "小心 DNS" }]);
    await again.stop();
  });

  it("starts after a previous server was killed and its postmaster.pid now names another process", async () => {
    const db = await start();
    const pidFile = path.join(dataDir, "postgres", "postmaster.pid");
    const postmaster = Number.parseInt((await readFile(pidFile, "utf8")).split("\n")[0]!, 10);
    // SIGKILL leaves postmaster.pid behind, as a crash or `docker kill` does.
    process.kill(postmaster, "SIGKILL");
    await waitUntil("the postmaster to end", () => !alive(postmaster), { timeoutMs: 10_000, intervalMs: 25 });
    await db.stop(); // the server is already gone: returns instead of waiting forever
    expect(existsSync(pidFile)).toBe(true);

    // After a reboot or in a new container that PID belongs to some other process of the same
    // user (Postgres itself shrugs off a PID of another user, so run it as the server's owner).
    const owner = await stat(path.join(dataDir, "postgres"));
    const asOwner = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
    const other = spawn("sleep", ["30"], { stdio: "ignore", ...asOwner });
    children.push(other);
    const stale = (await readFile(pidFile, "utf8")).split("\n");
    stale[0] = String(other.pid);
    await writeFile(pidFile, stale.join("\n"));

    const lines: Line[] = [];
    const again = await start(lines);
    expect(lines.some((l) => l.level === "warn" && l.msg?.includes("stale postmaster.pid"))).toBe(true);
    expect(await query(again.url, "SELECT count(*)::int AS n FROM kept")).toEqual([{ n: 1 }]);
    await again.stop();
    other.kill();
  });

  /** The bot around its embedded server, in a child process (test/fixtures/embedded-server.ts). */
  async function startBot(): Promise<Bot> {
    const tsx = path.resolve("node_modules/.bin/tsx");
    const proc = spawn(tsx, [path.resolve("test/fixtures/embedded-server.ts"), dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(proc);
    const bot: Bot = {
      stdout: "",
      stderr: "",
      pid: 0,
      exited: new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal }))),
    };
    proc.stdout?.on("data", (chunk: Buffer) => {
      bot.stdout += chunk.toString();
    });
    proc.stderr?.on("data", (chunk: Buffer) => {
      bot.stderr += chunk.toString();
    });
    let ended = false;
    void bot.exited.then(() => {
      ended = true;
    });
    await waitUntil("the bot to be ready (or to end)", () => ended || /\{"ready":\d+\}/.test(bot.stdout), {
      timeoutMs: 20_000,
      intervalMs: 25,
    });
    const ready = /\{"ready":(\d+)\}/.exec(bot.stdout);
    if (!ready) throw new Error(`the bot did not start: ${bot.stderr}`);
    bot.pid = Number(ready[1]);
    scriptPids.push(bot.pid);
    return bot;
  }

  async function postmasterPid(): Promise<number> {
    const text = await readFile(path.join(dataDir, "postgres", "postmaster.pid"), "utf8");
    return Number.parseInt(text.split("\n")[0]!, 10);
  }

  it("leaves SIGTERM to the app: its shutdown still uses the database, stops it, and keeps its exit code", async () => {
    const bot = await startBot();
    const postmaster = await postmasterPid();

    // Another live Cutover holds the data directory: refused, naming the server's PID.
    const busy = await refusal(resolveStateDatabase({ dataDir, log: recordingLog([]) }));
    expect(busy.code).toBe(ErrorCode.LockHeld);
    expect(busy.message).toContain(`is already running (PID ${postmaster})`);
    expect(running(postmaster)).toBe(true);

    process.kill(bot.pid, "SIGTERM");
    expect(await bot.exited).toEqual({ code: 7, signal: null });
    expect(bot.stdout).toContain("stopped cleanly");
    expect(running(postmaster)).toBe(false);
    expect(existsSync(path.join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
  });

  it("stops the server a SIGKILLed Cutover left running, then starts on the same data", async () => {
    const bot = await startBot();
    const orphan = await postmasterPid();
    process.kill(bot.pid, "SIGKILL");
    await bot.exited;
    await waitUntil("the bot to end", () => !alive(bot.pid), { timeoutMs: 10_000, intervalMs: 25 });
    expect(running(orphan)).toBe(true); // still serving, and still holding postmaster.pid
    expect(await postmasterPid()).toBe(orphan);

    const lines: Line[] = [];
    const again = await start(lines);
    expect(
      lines.some((l) => l.level === "warn" && l.msg?.includes("left running by a Cutover process that died")),
    ).toBe(true);
    expect(running(orphan)).toBe(false);
    expect(await postmasterPid()).not.toBe(orphan);
    expect(await query(again.url, "SELECT count(*)::int AS n FROM kept")).toEqual([{ n: 1 }]);

    const restarted = await postmasterPid();
    await again.stop();
    expect(running(restarted)).toBe(false);
    await expect(query(again.url, "SELECT 1")).rejects.toThrow();
  });
});

interface Bot {
  /** PID of the node process running the fixture (tsx runs it as its child) */
  pid: number;
  stdout: string;
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe("resolveStateDatabase with DATABASE_URL", () => {
  it("uses a reachable DATABASE_URL as it is and starts nothing", async () => {
    const url = databaseUrl("postgres");
    const db = await resolveStateDatabase({
      databaseUrl: url,
      dataDir: "/nonexistent",
      log: recordingLog([]),
    });
    expect(db).toMatchObject({ url, embedded: false });
    await db.stop();
  });

  it("says nothing listens on a wrong port, naming host, port and database but not the password", async () => {
    const port = await closedPort();
    const url = `postgresql://cutover:pa55-w0rd-x@127.0.0.1:${port}/cutover_state`;
    const err = await refusal(
      resolveStateDatabase({ databaseUrl: url, dataDir: "/nonexistent", log: recordingLog([]) }),
    );
    expect(err.code).toBe(ErrorCode.Unreachable);
    expect(err.message).toBe(
      `Cannot use the state database cutover_state on 127.0.0.1:${port} as cutover: nothing is listening on 127.0.0.1:${port} (connection refused).`,
    );
    expect(visible(err)).not.toContain("pa55-w0rd-x");
  });

  it("says the database does not exist", async () => {
    const url = new URL(databaseUrl("cutover_no_such_database"));
    url.password = "pa55-w0rd-y";
    const err = await refusal(checkConnection(url.toString()));
    expect(err.message).toContain('the database "cutover_no_such_database" does not exist');
    expect(describeError(err)).toContain('CREATE DATABASE "cutover_no_such_database"');
    expect(visible(err)).not.toContain("pa55-w0rd-y");
  });

  it("gives up on a server that never answers within the time allowed", async () => {
    const silent = net.createServer(() => {}); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const began = Date.now();
      const err = await refusal(
        checkConnection(`postgresql://u:pa55-w0rd-z@127.0.0.1:${port}/db`, { timeoutMs: 300 }),
      );
      expect(Date.now() - began).toBeLessThan(3_000);
      expect(err.message).toContain(`no answer from 127.0.0.1:${port} within`);
      expect(visible(err)).not.toContain("pa55-w0rd-z");
    } finally {
      silent.close();
    }
  });

  it("refuses a DATABASE_URL that is not a postgres URL without echoing it", async () => {
    const err = await refusal(checkConnection("mysql://root:pa55-w0rd-q@db:3306/x"));
    expect(err.code).toBe(ErrorCode.ConfigInvalid);
    expect(visible(err)).not.toContain("pa55-w0rd-q");
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Alive and not a zombie: an orphan's new parent (PID 1 here) may never reap it. */
function running(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    return !/^State:\s*[ZX]/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}
