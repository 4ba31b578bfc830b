import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { CutoverError, ErrorCode } from "../errors.js";
import { connectionError, describeDatabaseTarget } from "./database.js";

/**
 * Where the app finds its migrations: `prisma/migrations` at the package root (the same path
 * from `src/store/` under tsx and from `dist/store/` after `tsc`).
 */
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL("../../prisma/migrations/", import.meta.url));

/**
 * The advisory lock key Prisma's schema engine takes around `migrate deploy`
 * (`SELECT pg_advisory_lock(72707369)`). Using the same key makes this applier, other replicas and
 * `prisma migrate deploy` exclude one another.
 */
export const MIGRATION_LOCK_KEY = 72707369;

/** The log calls the store makes; a pino logger fits. */
export interface StoreLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

export interface ApplyMigrationsOptions {
  /** folder of `<timestamp>_<name>/migration.sql` folders; default {@link DEFAULT_MIGRATIONS_DIR} */
  dir?: string;
  log?: StoreLog;
  /** how long to wait for another process that is migrating the same database; default 5 minutes */
  lockTimeoutMs?: number;
  /** how long to wait for the database to answer at all; default 10 s */
  connectTimeoutMs?: number;
}

export interface ApplyMigrationsResult {
  /** names of the migrations this call applied, in order (empty when the database was up to date) */
  applied: string[];
}

/** One folder of `prisma/migrations`. */
export interface LocalMigration {
  name: string;
  sql: string;
  checksum: string;
}

// Prisma's own bookkeeping table, created exactly as its schema engine creates it on PostgreSQL.
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)`;

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
}

const NO_LOG: StoreLog = { info() {}, warn() {} };

/** sha256 of the file's bytes as 64 lower-case hex digits, as Prisma computes it. */
export function migrationChecksum(sql: string | Buffer): string {
  return createHash("sha256").update(sql).digest("hex");
}

/**
 * Whether a recorded checksum belongs to this script. Like Prisma, it accepts the script with
 * its line endings converted either way (a checkout on Windows), and the unpadded hex that old
 * Prisma versions wrote.
 */
export function checksumMatches(sql: string, recorded: string): boolean {
  const variants = [sql, sql.replace(/\r\n/g, "\n"), sql.replace(/\r?\n/g, "\r\n")];
  return variants.some((variant) => {
    const digest = createHash("sha256").update(variant).digest();
    if (recorded.length === 64) return digest.toString("hex") === recorded;
    return Array.from(digest, (byte) => byte.toString(16)).join("") === recorded;
  });
}

/** Reads the migration folders in name order (Prisma's order). */
export async function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<LocalMigration[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new CutoverError(ErrorCode.ConfigInvalid, `Cannot read the migrations folder ${dir}.`, {
      cause: err,
      hint: "Run Cutover from its installation, where `prisma/migrations` sits next to `package.json`.",
    });
  }
  const lockFile = entries.find((e) => e.isFile() && e.name === "migration_lock.toml");
  if (lockFile) {
    const lock = await readFile(path.join(dir, lockFile.name), "utf8");
    const provider = /^\s*provider\s*=\s*"([^"]*)"/m.exec(lock)?.[1];
    if (provider && provider !== "postgresql") {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `The migrations in ${dir} were written for ${provider}, not PostgreSQL (migration_lock.toml).`,
      );
    }
  }
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const migrations: LocalMigration[] = [];
  for (const name of names) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path.join(dir, name, "migration.sql"));
    } catch (err) {
      throw new CutoverError(ErrorCode.ConfigInvalid, `The migration folder ${name} has no migration.sql.`, {
        cause: err,
        hint: `Restore ${path.join(dir, name, "migration.sql")} or remove the empty folder.`,
      });
    }
    migrations.push({ name, sql: bytes.toString("utf8"), checksum: migrationChecksum(bytes) });
  }
  return migrations;
}

/**
 * Applies the pending migrations of `prisma/migrations` to the database at `connectionString`,
 * keeping Prisma's `_prisma_migrations` bookkeeping so `prisma migrate deploy` stays usable
 * wherever Prisma's schema engine exists.
 *
 * Each migration runs in its own transaction together with its bookkeeping row, under Prisma's
 * advisory lock, so replicas starting together apply it once. It refuses (a {@link CutoverError})
 * when a migration already applied was edited afterwards, or when one failed earlier and was
 * never resolved.
 *
 * @example
 * const { applied } = await applyMigrations(state.url, { log });
 */
export async function applyMigrations(
  connectionString: string,
  opts: ApplyMigrationsOptions = {},
): Promise<ApplyMigrationsResult> {
  const log = opts.log ?? NO_LOG;
  const dir = opts.dir ?? DEFAULT_MIGRATIONS_DIR;
  const local = await readMigrations(dir);

  const client = new pg.Client({
    connectionString,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
  });
  // An idle client whose server goes away emits 'error'; without a listener that kills the process.
  client.on("error", (err) => log.warn({ err: err.message }, "migration connection failed"));
  try {
    await client.connect();
  } catch (err) {
    throw connectionError(connectionString, err);
  }
  try {
    await takeLock(client, connectionString, opts.lockTimeoutMs ?? 300_000, log);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const { rows } = await client.query<MigrationRow>(
        `SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at
           FROM _prisma_migrations ORDER BY started_at ASC`,
      );
      const pending = plan(local, rows, log);
      const applied: string[] = [];
      for (const migration of pending) {
        await applyOne(client, migration, log);
        applied.push(migration.name);
      }
      if (applied.length === 0) log.info({ migrations: local.length }, "database schema is up to date");
      return { applied };
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function takeLock(client: pg.Client, url: string, timeoutMs: number, log: StoreLog): Promise<void> {
  const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [
    MIGRATION_LOCK_KEY,
  ]);
  if (rows[0]?.locked) return;
  log.info({ database: describeDatabaseTarget(url) }, "another process is migrating this database; waiting");
  await client.query(`SET lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
  } catch (err) {
    if ((err as { code?: string }).code === "55P03") {
      throw new CutoverError(
        ErrorCode.LockHeld,
        `Another process has been migrating ${describeDatabaseTarget(url)} for more than ${Math.round(timeoutMs / 1000)} s.`,
        {
          cause: err,
          hint: `Wait for it to finish. If nothing should be migrating, find the session holding the lock: SELECT pid, application_name, backend_start FROM pg_stat_activity WHERE pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = ${MIGRATION_LOCK_KEY}).`,
        },
      );
    }
    throw err;
  } finally {
    await client.query("RESET lock_timeout").catch(() => undefined);
  }
}

/** Which local migrations still need applying; refuses on an edited or an unresolved failed one. */
function plan(local: LocalMigration[], rows: MigrationRow[], log: StoreLog): LocalMigration[] {
  const failed = rows.find((r) => r.finished_at === null && r.rolled_back_at === null);
  if (failed) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `Migration ${failed.migration_name} failed when it was applied on ${failed.started_at.toISOString()} and was never resolved, so the database may be half-migrated. Cutover will not apply more migrations on top of it.`,
      {
        details: { migration: failed.migration_name, logs: failed.logs },
        hint: `Look at what it changed (its error is in _prisma_migrations.logs), finish or undo those changes by hand, then mark it resolved: \`npx prisma migrate resolve --rolled-back ${failed.migration_name}\` (or \`--applied\` if you completed it), or in SQL: UPDATE _prisma_migrations SET rolled_back_at = now() WHERE id = '${failed.id}'; and restart Cutover.`,
      },
    );
  }
  const applied = new Map<string, MigrationRow>();
  for (const row of rows)
    if (row.finished_at !== null && row.rolled_back_at === null) applied.set(row.migration_name, row);

  const localNames = new Set(local.map((m) => m.name));
  for (const migration of local) {
    const row = applied.get(migration.name);
    if (row && !checksumMatches(migration.sql, row.checksum)) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `Migration ${migration.name} was changed after it was applied to this database (its checksum differs from the one recorded on ${row.finished_at?.toISOString()}).`,
        {
          details: { migration: migration.name, recorded: row.checksum, local: migration.checksum },
          hint: `Put prisma/migrations/${migration.name}/migration.sql back as it was (for example \`git checkout -- prisma/migrations/${migration.name}/migration.sql\`) and write the change as a new migration folder instead.`,
        },
      );
    }
  }
  for (const name of applied.keys()) {
    if (!localNames.has(name)) {
      log.warn(
        { migration: name },
        "the database has a migration this version of Cutover does not know; a newer version probably applied it",
      );
    }
  }
  return local.filter((m) => !applied.has(m.name));
}

async function applyOne(client: pg.Client, migration: LocalMigration, log: StoreLog): Promise<void> {
  const started = Date.now();
  try {
    await client.query("BEGIN");
    // No parameters: node-postgres sends it as a simple query, which may hold many statements.
    await client.query(migration.sql);
    await client.query(
      `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
       VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, now(), 1)`,
      [randomUUID(), migration.checksum, migration.name],
    );
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    const reason = describeSqlError(migration.sql, err);
    // Keep a trace like Prisma's, marked rolled back: the transaction left the schema untouched,
    // so the next start simply tries again.
    await client
      .query(
        `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
         VALUES ($1, $2, NULL, $3, $4, now(), now(), 0)`,
        [randomUUID(), migration.checksum, migration.name, reason],
      )
      .catch((recordErr: unknown) =>
        log.warn(
          { migration: migration.name, err: String(recordErr) },
          "could not record the failed migration",
        ),
      );
    // 42P07 duplicate table, 42701 duplicate column, 42710 duplicate object, 42P06 duplicate schema
    const exists = ["42P07", "42701", "42710", "42P06"].includes((err as { code?: string }).code ?? "");
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `Migration ${migration.name} failed and was rolled back: ${reason}`,
      {
        cause: err,
        details: { migration: migration.name },
        hint: exists
          ? `Nothing from it was kept. The database already has what it creates, so it was built some other way (\`prisma db push\`, a restore, by hand). Point Cutover at an empty database, or, if the schema is already exactly right, record the migration as applied: \`npx prisma migrate resolve --applied ${migration.name}\`.`
          : `Nothing from it was kept. Fix the cause (the data it trips on, or prisma/migrations/${migration.name}/migration.sql if no database has applied it yet) and start Cutover again.`,
      },
    );
  }
  log.info({ migration: migration.name, ms: Date.now() - started }, "applied migration");
}

/** The database's error with the line of the script it points at. */
function describeSqlError(sql: string, err: unknown): string {
  const e = err as { message?: string; position?: string; code?: string };
  const message = e.message ?? String(err);
  const position = Number(e.position);
  if (!Number.isFinite(position) || position <= 0) return message;
  const before = sql.slice(0, position - 1);
  const line = before.split("\n").length;
  const text = sql.split("\n")[line - 1]?.trim() ?? "";
  return `${message} (line ${line}: ${text})`;
}
