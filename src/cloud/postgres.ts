import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { CutoverError, ErrorCode } from "../errors.js";

/**
 * The PostgreSQL side of the database copy: connections that say which side failed and why
 * (never echoing a password), and the official client tools (pg_dump, pg_restore) run as
 * child processes with ARGUMENT ARRAYS (no shell), the connection passed through libpq's
 * environment variables and a temporary 0600 password file, never on a command line.
 */

/** Which database a connection is for, in words for messages: never the password. */
export interface Endpoint {
  /** "source" or "target" */
  side: string;
  /** the environment variable (or other place) the URL came from, for messages */
  from: string;
  url: string;
}

/** `user@host:port/db` for a URL: what a message may show. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname || u.searchParams.get("host") || "localhost";
    const user = decodeURIComponent(u.username) || "(default user)";
    const db = decodeURIComponent(u.pathname.replace(/^\//, "")) || "(default database)";
    return `${user}@${host}:${u.port || "5432"}/${db}`;
  } catch {
    return "(a URL that does not parse)";
  }
}

/** host:port/db of a URL: identifies a database across runs (for the partial-restore marker). */
export function fingerprintUrl(url: string): string {
  const u = new URL(url);
  return `${u.hostname || u.searchParams.get("host") || "localhost"}:${u.port || "5432"}/${decodeURIComponent(u.pathname.replace(/^\//, ""))}`;
}

// libpq query parameters that have an environment variable of their own
const PARAM_ENV: Record<string, string> = {
  sslmode: "PGSSLMODE",
  sslrootcert: "PGSSLROOTCERT",
  sslcert: "PGSSLCERT",
  sslkey: "PGSSLKEY",
  sslcrl: "PGSSLCRL",
  sslcompression: "PGSSLCOMPRESSION",
  channel_binding: "PGCHANNELBINDING",
  options: "PGOPTIONS",
  connect_timeout: "PGCONNECT_TIMEOUT",
  target_session_attrs: "PGTARGETSESSIONATTRS",
  gssencmode: "PGGSSENCMODE",
  requiressl: "PGREQUIRESSL",
  host: "PGHOST",
  port: "PGPORT",
  user: "PGUSER",
  dbname: "PGDATABASE",
};

/**
 * libpq environment for a URL, for a child process. The password goes into a temporary passfile
 * (mode 0600, deleted by `cleanup`) rather than PGPASSWORD, so no other process listing can see it.
 */
export async function libpqEnvironment(
  url: string,
  extra: { appName?: string; connectTimeoutSeconds?: number; options?: string } = {},
): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const u = new URL(url);
  if (!/^postgres(ql)?:$/.test(u.protocol)) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      "the database URL does not start with postgres:// or postgresql://",
    );
  }
  const env: Record<string, string> = {};
  for (const [key, value] of u.searchParams) {
    const name = PARAM_ENV[key];
    if (name) env[name] = value;
  }
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname.replace(/^\[(.*)\]$/, "$1"));
  if (u.port) env.PGPORT = u.port;
  env.PGPORT ??= "5432";
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (db) env.PGDATABASE = db;
  if (extra.appName) env.PGAPPNAME = extra.appName;
  if (extra.connectTimeoutSeconds) env.PGCONNECT_TIMEOUT = String(extra.connectTimeoutSeconds);
  if (extra.options) env.PGOPTIONS = [env.PGOPTIONS, extra.options].filter(Boolean).join(" ");
  let dir: string | undefined;
  if (u.password) {
    dir = await mkdtemp(path.join(tmpdir(), "cutover-pgpass-"));
    const file = path.join(dir, "pgpass");
    const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
    await writeFile(file, `*:*:*:*:${esc(decodeURIComponent(u.password))}\n`, { mode: 0o600 });
    env.PGPASSFILE = file;
  }
  return {
    env,
    cleanup: async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Why a connection failed, in words a person can act on; which side, never the password. */
export function connectionProblem(err: unknown, ep: Endpoint, timeoutSeconds: number): string {
  const e = err as { code?: string; message?: string };
  const where = `the ${ep.side} database (${describeUrl(ep.url)}, from ${ep.from})`;
  switch (e.code) {
    case "28P01":
      return `${where} refused the password: password authentication failed — check the password in ${ep.from}`;
    case "28000":
      return `${where} refused the login: ${e.message ?? "not authorised"} — check the user name and pg_hba / allowed IPs`;
    case "3D000":
      return `${where} does not exist: ${e.message ?? "unknown database"} — check the database name at the end of the URL in ${ep.from}`;
    case "ECONNREFUSED":
      return `${where} is not reachable: connection refused — check the host and port, and that the server is running`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `${where} is not reachable: the host name does not resolve — check the host in ${ep.from}`;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${where} is not reachable: ${e.code} — check the host, the port and the firewall (security group, allowed IPs)`;
    default:
      if (/timeout/i.test(e.message ?? "")) {
        return `${where} is not reachable: no answer within ${timeoutSeconds} s — check the host, the port and the firewall (security group, allowed IPs)`;
      }
      return `${where} could not be reached: ${scrub(e.message ?? String(err), ep.url)}`;
  }
}

/** Removes a URL's password from a text, in case a library quoted it. */
export function scrub(text: string, url?: string): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s"]+:)[^@\s"]+@/g, "$1[secret]@");
  if (url) {
    try {
      const pw = decodeURIComponent(new URL(url).password);
      if (pw.length >= 3) out = out.split(pw).join("[secret]");
    } catch {
      // not a URL: nothing more to remove
    }
  }
  return out;
}

/** Session settings that make the text form of every value the same on both servers. */
export const CANONICAL_SESSION_SQL = [
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'postgres'",
  "SET extra_float_digits = 1",
  "SET bytea_output = 'hex'",
  "SET search_path = ''",
  "SET statement_timeout = 0",
].join("; ");

/**
 * Opens a connection, saying which side failed and why when it cannot. `readOnly` makes every
 * transaction of the session read-only: the source is never written to.
 */
export async function connect(
  ep: Endpoint,
  opts: { timeoutSeconds?: number; readOnly?: boolean; appName?: string; canonical?: boolean } = {},
): Promise<pg.Client> {
  const timeoutSeconds = opts.timeoutSeconds ?? 10;
  const client = new pg.Client({
    connectionString: ep.url,
    connectionTimeoutMillis: timeoutSeconds * 1000,
    application_name: opts.appName ?? "cutover",
  });
  // a dropped connection after connect surfaces on the next query; don't crash the process
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new CutoverError(ErrorCode.DbConnectFailed, connectionProblem(err, ep, timeoutSeconds), {
      details: { side: ep.side, code: (err as { code?: string }).code },
    });
  }
  if (opts.readOnly) await client.query("SET default_transaction_read_only = on");
  if (opts.canonical) await client.query(CANONICAL_SESSION_SQL);
  return client;
}

/** Runs fn with a connection and always closes it. */
export async function withClient<T>(
  ep: Endpoint,
  opts: Parameters<typeof connect>[1],
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(ep, opts);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `16.4 (Debian …)` → 16 */
export function majorOf(version: string): number {
  const m = /(\d+)(?:\.(\d+))?/.exec(version);
  if (!m) return 0;
  const major = Number(m[1]);
  return major >= 10 ? major : Number(`${m[1]}.${m[2] ?? 0}`);
}

export async function serverVersion(
  client: pg.Client,
): Promise<{ version: string; major: number; num: number }> {
  const res = await client.query<{ v: string; n: string }>(
    "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n",
  );
  const v = res.rows[0]!.v;
  const num = Number(res.rows[0]!.n);
  return { version: v, major: Math.floor(num / 10000), num };
}

// ───────────────────────────── the client tools ─────────────────────────────

/** Where pg_dump and pg_restore are, and their version. */
export interface ClientTools {
  pgDump: string;
  pgRestore: string;
  /** "15.20" */
  version: string;
  major: number;
}

async function toolVersion(bin: string): Promise<string | undefined> {
  const res = await runTool(bin, ["--version"], { env: {}, timeoutMs: 10_000 }).catch(() => undefined);
  if (res?.code !== 0) return undefined;
  return /(\d+(?:\.\d+)*)/.exec(res?.stdout ?? "")?.[1];
}

/**
 * Finds pg_dump and pg_restore: in `binDir` when given, otherwise on PATH, and (when the PATH
 * ones are older than `atLeastMajor`) the newest of Debian's side-by-side installs under
 * /usr/lib/postgresql/<major>/bin. pg_dump refuses to dump a server newer than itself.
 */
export async function findClientTools(
  opts: { binDir?: string; atLeastMajor?: number } = {},
): Promise<ClientTools> {
  const candidates: string[] = [];
  if (opts.binDir) candidates.push(opts.binDir);
  else {
    candidates.push("");
    try {
      const majors = (await readdir("/usr/lib/postgresql"))
        .filter((d) => /^\d+$/.test(d))
        .sort((a, b) => Number(b) - Number(a));
      for (const m of majors) candidates.push(`/usr/lib/postgresql/${m}/bin`);
    } catch {
      // not a Debian-style install
    }
  }
  let first: ClientTools | undefined;
  for (const dir of candidates) {
    const pgDump = dir ? path.join(dir, "pg_dump") : "pg_dump";
    const pgRestore = dir ? path.join(dir, "pg_restore") : "pg_restore";
    const version = await toolVersion(pgDump);
    if (!version) continue;
    const tools = { pgDump, pgRestore, version, major: majorOf(version) };
    first ??= tools;
    if (!opts.atLeastMajor || tools.major >= opts.atLeastMajor) return tools;
  }
  if (first) return first;
  throw new CutoverError(
    ErrorCode.ToolMissing,
    opts.binDir
      ? `pg_dump was not found in ${opts.binDir} (with: binDir).`
      : "pg_dump and pg_restore were not found on PATH.",
    { hint: installHint(opts.atLeastMajor) },
  );
}

/** Which package gives a client of the wanted major. */
export function installHint(major?: number): string {
  const m = major ?? 16;
  return `Install the PostgreSQL ${m} client tools: \`apt-get install postgresql-client-${m}\` (Debian/Ubuntu, from apt.postgresql.org when your release lacks it), \`brew install postgresql@${m}\` (macOS), or point \`with: { binDir: … }\` at a folder holding pg_dump and pg_restore ${m} or newer.`;
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** the last lines of stderr, scrubbed */
  stderrTail: string[];
}

/** Environment for a child: ours, minus any PG* variables of the parent (they would override the URL's). */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  // English, parseable progress lines whatever the machine's locale
  env.LC_ALL = "C";
  env.LANGUAGE = "C";
  return { ...env, ...extra };
}

/**
 * Runs a program with an argument array (no shell). Each stderr line goes to `onLine`; the
 * AbortSignal stops the child (SIGTERM, then SIGKILL after 5 s) and rejects with its reason.
 */
export function runTool(
  cmd: string,
  args: string[],
  opts: {
    env: Record<string, string>;
    signal?: AbortSignal;
    onLine?: (line: string) => void;
    onSpawn?: (child: ChildProcess) => void;
    timeoutMs?: number;
    captureStdout?: boolean | number;
  },
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const child = spawn(cmd, args, { env: childEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    let stdout = "";
    const limit = typeof opts.captureStdout === "number" ? opts.captureStdout : 64 * 1024 * 1024;
    let partial = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => {
      if (opts.captureStdout !== false && stdout.length < limit) stdout += d;
    });
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      const lines = (partial + d).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        tail.push(scrub(line));
        if (tail.length > 40) tail.shift();
        opts.onLine?.(line);
      }
    });
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      killTimer.unref();
    };
    const onAbort = () => stop();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = opts.timeoutMs ? setTimeout(stop, opts.timeoutMs) : undefined;
    child.once("spawn", () => opts.onSpawn?.(child));
    child.once("error", (err) => {
      opts.signal?.removeEventListener("abort", onAbort);
      if (timer) clearTimeout(timer);
      reject(
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? new CutoverError(ErrorCode.ToolMissing, `${cmd} was not found.`, { hint: installHint() })
          : err,
      );
    });
    child.once("close", (code, signal) => {
      opts.signal?.removeEventListener("abort", onAbort);
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      if (partial) {
        tail.push(scrub(partial));
        opts.onLine?.(partial);
      }
      if (opts.signal?.aborted) {
        reject(opts.signal.reason);
        return;
      }
      resolve({ code, signal, stdout, stderrTail: tail });
    });
  });
}

/** The lines worth showing from a failed tool's stderr: its errors, else its last lines. */
export function toolErrorText(res: ToolResult, max = 6): string {
  const errors = res.stderrTail.filter((l) => /error|fatal|FATAL|ERROR|DETAIL|Command was/.test(l));
  const lines = (errors.length > 0 ? errors : res.stderrTail).slice(-max);
  return lines.join("\n") || `exit code ${res.code ?? res.signal}`;
}

// ───────────────────────────── archives ─────────────────────────────

export type Section = "pre-data" | "data" | "post-data";

/** One entry of a dump's table of contents (`pg_restore --list`). */
export interface TocItem {
  dumpId: number;
  /** the catalog the object lives in (pg_class = 1259, …), 0 for data items */
  catalog: number;
  oid: number;
  /** "TABLE DATA", "INDEX", "FK CONSTRAINT", … */
  desc: string;
  /** the raw list line, as `pg_restore --use-list` wants it back */
  line: string;
}

// The TOC kinds whose name has two words; the list line does not quote names, so these are matched first.
const MULTI_WORD_DESCS = [
  "MATERIALIZED VIEW DATA",
  "TABLE DATA",
  "SEQUENCE SET",
  "SEQUENCE OWNED BY",
  "FK CONSTRAINT",
  "CHECK CONSTRAINT",
  "MATERIALIZED VIEW",
  "INDEX ATTACH",
  "TABLE ATTACH",
  "DEFAULT ACL",
  "EVENT TRIGGER",
  "FOREIGN TABLE",
  "FOREIGN DATA WRAPPER",
  "FOREIGN SERVER",
  "USER MAPPING",
  "TEXT SEARCH CONFIGURATION",
  "TEXT SEARCH DICTIONARY",
  "TEXT SEARCH PARSER",
  "TEXT SEARCH TEMPLATE",
  "OPERATOR CLASS",
  "OPERATOR FAMILY",
  "ACCESS METHOD",
  "PROCEDURAL LANGUAGE",
  "LARGE OBJECT",
  "BLOB METADATA",
  "SECURITY LABEL",
  "PUBLICATION TABLE",
  "PUBLICATION TABLES IN SCHEMA",
  "ROW SECURITY",
  "SHELL TYPE",
];

/** Parses `pg_restore --list` output. */
export function parseTocList(text: string): TocItem[] {
  const items: TocItem[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[4]!;
    const desc = MULTI_WORD_DESCS.find((d) => rest.startsWith(`${d} `)) ?? rest.split(" ")[0]!;
    items.push({ dumpId: Number(m[1]), catalog: Number(m[2]), oid: Number(m[3]), desc, line });
  }
  return items;
}

/** Lists a dump's entries, optionally one section's. */
export async function listArchive(tools: ClientTools, dir: string, section?: Section): Promise<TocItem[]> {
  const args = ["--list", ...(section ? [`--section=${section}`] : []), dir];
  const res = await runTool(tools.pgRestore, args, { env: {}, timeoutMs: 120_000 });
  if (res.code !== 0) {
    throw new CutoverError(ErrorCode.DumpInvalid, `${dir} is not a readable dump: ${toolErrorText(res)}`);
  }
  return parseTocList(res.stdout);
}

/** Total size of the files in a folder (not recursive: a -Fd dump is flat). */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      total += (await stat(path.join(dir, name))).size;
    } catch {
      // a file being renamed or removed: skip it this round
    }
  }
  return total;
}

/** A random id, for folder and application names. */
export function shortId(): string {
  return randomBytes(4).toString("hex");
}

/** Quotes an identifier (what `quote_ident` does, always quoting). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

// ───────────────────────────── inventories ─────────────────────────────

/** Schemas that are PostgreSQL's own. */
export const SYSTEM_SCHEMA_SQL = (col: string) =>
  `(${col} NOT IN ('pg_catalog', 'information_schema') AND ${col} !~ '^pg_(toast|temp_|toast_temp_)')`;

/** What a database holds besides PostgreSQL's own objects: zero everywhere means empty. */
export interface Contents {
  schemas: number;
  tables: number;
  views: number;
  sequences: number;
  routines: number;
  types: number;
  largeObjects: number;
  eventTriggers: number;
  /** extensions other than plpgsql (listed, not counted as content) */
  extensions: string[];
  /** up to 10 relation names, for the message */
  examples: string[];
}

export function isEmpty(c: Contents): boolean {
  return (
    c.schemas + c.tables + c.views + c.sequences + c.routines + c.types + c.largeObjects + c.eventTriggers ===
    0
  );
}

export function describeContents(c: Contents): string {
  const parts = [
    [c.tables, "table"],
    [c.views, "view"],
    [c.sequences, "sequence"],
    [c.routines, "function"],
    [c.types, "type"],
    [c.schemas, "schema"],
    [c.largeObjects, "large object"],
    [c.eventTriggers, "event trigger"],
  ]
    .filter(([n]) => (n as number) > 0)
    .map(([n, w]) => `${n} ${w}${n === 1 ? "" : "s"}`);
  return parts.length ? parts.join(", ") : "nothing";
}

const NOT_EXTENSION_MEMBER = (catalog: string, oidCol: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oidCol} AND d.deptype = 'e')`;

/** Counts what a database holds outside PostgreSQL's own schemas and extensions. */
export async function inspectContents(client: pg.Client): Promise<Contents> {
  const res = await client.query<Record<string, string>>(`
    SELECT
      (SELECT count(*) FROM pg_namespace n WHERE ${SYSTEM_SCHEMA_SQL("n.nspname")} AND n.nspname <> 'public'
         AND ${NOT_EXTENSION_MEMBER("pg_namespace", "n.oid")}) AS schemas,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p','f') AND ${SYSTEM_SCHEMA_SQL("n.nspname")} AND ${NOT_EXTENSION_MEMBER("pg_class", "c.oid")}) AS tables,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v','m') AND ${SYSTEM_SCHEMA_SQL("n.nspname")} AND ${NOT_EXTENSION_MEMBER("pg_class", "c.oid")}) AS views,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'S' AND ${SYSTEM_SCHEMA_SQL("n.nspname")} AND ${NOT_EXTENSION_MEMBER("pg_class", "c.oid")}) AS sequences,
      (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE ${SYSTEM_SCHEMA_SQL("n.nspname")} AND ${NOT_EXTENSION_MEMBER("pg_proc", "p.oid")}) AS routines,
      (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE ${SYSTEM_SCHEMA_SQL("n.nspname")} AND t.typtype IN ('e','d','r','b')
           AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = t.oid)
           AND ${NOT_EXTENSION_MEMBER("pg_type", "t.oid")}) AS types,
      (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
      (SELECT count(*) FROM pg_event_trigger) AS event_triggers,
      (SELECT coalesce(array_agg(extname::text ORDER BY extname), '{}') FROM pg_extension WHERE extname <> 'plpgsql') AS extensions,
      (SELECT coalesce(array_agg(x), '{}') FROM (SELECT format('%I.%I', n.nspname, c.relname) AS x FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p','v','m','S','f') AND ${SYSTEM_SCHEMA_SQL("n.nspname")}
           AND ${NOT_EXTENSION_MEMBER("pg_class", "c.oid")} ORDER BY 1 LIMIT 10) e) AS examples
  `);
  const r = res.rows[0]!;
  return {
    schemas: Number(r.schemas),
    tables: Number(r.tables),
    views: Number(r.views),
    sequences: Number(r.sequences),
    routines: Number(r.routines),
    types: Number(r.types),
    largeObjects: Number(r.large_objects),
    eventTriggers: Number(r.event_triggers),
    extensions: r.extensions as unknown as string[],
    examples: r.examples as unknown as string[],
  };
}

/**
 * Empties a database for a restore: drops event triggers, extensions (but plpgsql), every
 * schema but public, every object in public, and large objects. Used only on a target the
 * operator confirmed with `--replace`, or that holds Cutover's own partial restore.
 */
export async function resetDatabase(client: pg.Client): Promise<void> {
  const q = async (sql: string) => (await client.query<{ stmt: string }>(sql)).rows.map((r) => r.stmt);
  const run = async (stmts: string[]) => {
    for (const s of stmts) await client.query(s);
  };
  await run(
    await q(
      "SELECT format('DROP EVENT TRIGGER IF EXISTS %I CASCADE', evtname) AS stmt FROM pg_event_trigger",
    ),
  );
  await run(
    await q(
      "SELECT format('DROP EXTENSION IF EXISTS %I CASCADE', extname) AS stmt FROM pg_extension WHERE extname <> 'plpgsql'",
    ),
  );
  await run(
    await q(`SELECT format('DROP SCHEMA IF EXISTS %I CASCADE', nspname) AS stmt FROM pg_namespace n
      WHERE ${SYSTEM_SCHEMA_SQL("nspname")} AND nspname <> 'public'`),
  );
  const inPublic = "= 'public'::regnamespace";
  await run(
    await q(`SELECT format('DROP %s IF EXISTS %s CASCADE',
        CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
          WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass) AS stmt
      FROM pg_class c WHERE c.relnamespace ${inPublic} AND c.relkind IN ('r','p','v','m','S','f')
        AND NOT c.relispartition ORDER BY c.relkind DESC`),
  );
  await run(
    await q(`SELECT format('DROP %s IF EXISTS %s CASCADE', CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END,
        p.oid::regprocedure) AS stmt FROM pg_proc p WHERE p.pronamespace ${inPublic}`),
  );
  await run(
    await q(`SELECT format('DROP %s IF EXISTS %s CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
        t.oid::regtype) AS stmt FROM pg_type t WHERE t.typnamespace ${inPublic} AND t.typtype IN ('e','d','r','b','c')
        AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
        AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = t.oid)`),
  );
  await run(
    await q(`SELECT format('DROP COLLATION IF EXISTS %I.%I CASCADE', 'public', collname) AS stmt FROM pg_collation WHERE collnamespace ${inPublic}
      UNION ALL SELECT format('DROP TEXT SEARCH CONFIGURATION IF EXISTS public.%I CASCADE', cfgname) FROM pg_ts_config WHERE cfgnamespace ${inPublic}
      UNION ALL SELECT format('DROP TEXT SEARCH DICTIONARY IF EXISTS public.%I CASCADE', dictname) FROM pg_ts_dict WHERE dictnamespace ${inPublic}
      UNION ALL SELECT format('DROP STATISTICS IF EXISTS public.%I', stxname) FROM pg_statistic_ext WHERE stxnamespace ${inPublic}
      UNION ALL SELECT format('DROP CONVERSION IF EXISTS public.%I', conname) FROM pg_conversion WHERE connamespace ${inPublic}
      UNION ALL SELECT format('DROP OPERATOR IF EXISTS %s CASCADE', oid::regoperator) FROM pg_operator WHERE oprnamespace ${inPublic}`),
  );
  await run(
    await q(`SELECT format('DROP FOREIGN DATA WRAPPER IF EXISTS %I CASCADE', fdwname) AS stmt FROM pg_foreign_data_wrapper w
      WHERE ${NOT_EXTENSION_MEMBER("pg_foreign_data_wrapper", "w.oid")}`),
  );
  await client.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
}

/**
 * Ends other sessions on this database whose application_name starts with `prefix` (a
 * pg_restore left running by a crashed worker), and waits until they are gone.
 */
export async function endSessions(client: pg.Client, prefix: string, timeoutMs = 30_000): Promise<number> {
  const sql = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
    AND starts_with(application_name, $1)`;
  const found = await client.query<{ pid: number }>(sql, [prefix]);
  if (found.rowCount === 0) return 0;
  for (const { pid } of found.rows) await client.query("SELECT pg_terminate_backend($1)", [pid]);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const left = await client.query(sql, [prefix]);
    if (left.rowCount === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return found.rowCount ?? 0;
}
