import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { inject } from "vitest";
import { dropReplicationFor } from "../../src/sandbox/logical-server.js";

/**
 * Per-test-file databases on the machine's PostgreSQL (graphile-worker's pattern): the global
 * setup migrates one template database; each test file clones it, which takes a fraction of
 * applying the migrations.
 */

/**
 * The migrated template every {@link createTestDatabase} copies, named after the migrations it
 * holds: two checkouts testing side by side on one server (a branch with a new migration, and
 * main) each get their own, instead of one rebuilding the other's under its running tests.
 */
export const TEMPLATE_DATABASE = `cutover_test_template_${migrationsDigest()}`;

function migrationsDigest(): string {
  const dir = path.join(import.meta.dirname, "../../prisma/migrations");
  const hash = createHash("sha256");
  for (const name of readdirSync(dir).sort()) {
    if (!name.match(/^\d/)) continue;
    hash.update(name).update(readFileSync(path.join(dir, name, "migration.sql")));
  }
  return hash.digest("hex").slice(0, 12);
}
/** Every database the helpers create starts with this, so a teardown can find them. */
export const TEST_DATABASE_PREFIX = "cutover_t_";
// Serialises template (re)builds and clones across workers and concurrent test runs:
// CREATE DATABASE … TEMPLATE fails while another session is connected to the template.
const TEMPLATE_LOCK_SQL = "hashtext('cutover_test_template')";

export interface TestDatabase {
  /** postgres:// URL of the new database */
  url: string;
  name: string;
  /** drops it, closing any connection still open on it */
  drop(): Promise<void>;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** names this test run's databases, so its teardown drops only its own */
    cutoverTestRun: string;
  }
}

/** Base URL of the server tests use: `CUTOVER_TEST_PG`, default the machine's PostgreSQL. */
export function serverUrl(): string {
  return process.env.CUTOVER_TEST_PG ?? "postgresql://postgres@127.0.0.1:5432";
}

/** URL of one database on the test server. */
export function databaseUrl(name: string): string {
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

/** A token for this test run: the vitest main process's PID, in base 36. */
export function runToken(pid: number = process.pid): string {
  return pid.toString(36);
}

function currentRun(): string {
  try {
    return inject("cutoverTestRun");
  } catch {
    return runToken(); // outside a vitest worker
  }
}

/** A new test database's name: `cutover_t_<label>_<run>_<random>`. */
export function databaseName(label: string): string {
  const clean =
    label
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "")
      .slice(0, 24) || "db";
  return `${TEST_DATABASE_PREFIX}${clean}_${currentRun()}_${randomBytes(4).toString("hex")}`;
}

/** The run token inside a name made by {@link databaseName}, if it is one. */
export function runOf(name: string): string | undefined {
  const parts = name.split("_");
  return name.startsWith(TEST_DATABASE_PREFIX) && parts.length >= 5 ? parts[parts.length - 2] : undefined;
}

/** Runs `fn` on a connection to the server's `postgres` database. */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: databaseUrl("postgres"),
    connectionTimeoutMillis: 10_000,
  });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs `fn` holding the template lock (a session advisory lock on the admin connection). */
export async function withTemplateLock<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withAdmin(async (client) => {
    await client.query(`SELECT pg_advisory_lock(${TEMPLATE_LOCK_SQL})`);
    try {
      return await fn(client);
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${TEMPLATE_LOCK_SQL})`).catch(() => undefined);
    }
  });
}

function handle(name: string): TestDatabase {
  return { name, url: databaseUrl(name), drop: () => dropDatabase(name) };
}

/** A fresh copy of the migrated template: `cutover_t_<label>_<run>_<random>`. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = databaseName(label);
  await withTemplateLock(async (client) => {
    const sql = `CREATE DATABASE ${client.escapeIdentifier(name)} TEMPLATE ${TEMPLATE_DATABASE}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(sql);
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        // 55006: someone (autovacuum, a stray psql) is connected to the template: wait and retry.
        if (code === "55006" && attempt < 50) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (code === "3D000") {
          throw new Error(
            `${TEMPLATE_DATABASE} does not exist: run the tests through vitest, whose global setup (test/global-setup.ts) creates it`,
          );
        }
        throw err;
      }
    }
  });
  return handle(name);
}

/** A plain empty database (no tables), for source and target roles and for migrating from scratch. */
export async function createEmptyDatabase(label: string): Promise<TestDatabase> {
  const name = databaseName(label);
  // template0: nobody connects to it, so this never waits for other sessions.
  await withAdmin((client) =>
    client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} TEMPLATE template0`),
  );
  return handle(name);
}

/** Drops a test database, with the subscriptions and replication slots a test left for it. */
export async function dropDatabase(name: string): Promise<void> {
  await dropReplicationFor(databaseUrl("postgres"), name);
  await withAdmin(async (client) => {
    // A pool a test just ended may still be closing its connections: terminated mid-close, each
    // one's error reaches a pool with nobody listening any more (three unhandled errors failed a CI
    // run). Give them up to 3 s to go by themselves; FORCE ends whatever is left after that.
    for (let i = 0; i < 60; i++) {
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        [name],
      );
      if (rows[0]?.n === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  });
}

/** Names of the test databases on the server. */
export async function listTestDatabases(): Promise<string[]> {
  return withAdmin(async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
      [TEST_DATABASE_PREFIX],
    );
    return rows.map((r) => r.datname);
  });
}

/** One statement on a connection of its own to `url`: its rows. */
export async function queryOnce<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A copy of another test database (CREATE DATABASE … TEMPLATE): exact to the byte, in a fraction
 * of a dump and restore. Nobody may be connected to `template`; a session still closing is waited for.
 */
export async function createDatabaseFrom(label: string, template: string): Promise<TestDatabase> {
  const name = databaseName(label);
  await withAdmin(async (client) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(
          `CREATE DATABASE ${client.escapeIdentifier(name)} TEMPLATE ${client.escapeIdentifier(template)}`,
        );
        return;
      } catch (err) {
        if ((err as { code?: string }).code === "55006" && attempt < 50) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw err;
      }
    }
  });
  return handle(name);
}
