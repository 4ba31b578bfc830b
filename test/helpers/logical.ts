import { readFile } from "node:fs/promises";
import { inject } from "vitest";
import {
  createOwnedDatabase,
  dropReplicationFor,
  type OwnedDatabase,
} from "../../src/sandbox/logical-server.js";
import { createFixtureSource } from "../jobs/db/fixture.js";
import { createEmptyDatabase, databaseName, databaseUrl, queryOnce, type TestDatabase } from "./db.js";
import { waitForValue } from "./wait.js";

/**
 * Source and target on two servers for the logical-replication tests (issues 18 and 19), as in
 * production: the source is a database on the machine's PostgreSQL 15 (wal_level = logical, see
 * .ci/run), the target a database on the embedded PostgreSQL 17 that the global setup starts once
 * per `vitest run` (test/global-setup.ts). Different majors, as Neon and RDS will be; pg_dump 15
 * cannot dump the 17, so dump from the source.
 */

declare module "vitest" {
  export interface ProvidedContext {
    /** where the global setup writes the logical server's `{adminUrl, version}` (or `{error}`) */
    cutoverLogicalServerFile: string;
  }
}

/** The run's second server: a superuser URL on its `postgres` database, and its major. */
export interface LogicalServerInfo {
  adminUrl: string;
  version: number;
}

let shared: Promise<LogicalServerInfo> | undefined;

/** The embedded PostgreSQL 17 (wal_level = logical) of this test run, once it is up. */
export function logicalServer(): Promise<LogicalServerInfo> {
  shared ??= (async () => {
    const file = inject("cutoverLogicalServerFile");
    const text = await waitForValue(
      "the logical-replication PostgreSQL the global setup starts",
      () => readFile(file, "utf8").catch(() => ""),
      (t) => t !== "",
      { timeoutMs: 90_000, intervalMs: 100 },
    );
    const info = JSON.parse(text) as LogicalServerInfo | { error: string };
    if ("error" in info) throw new Error(`the embedded PostgreSQL 17 did not start: ${info.error}`);
    return info;
  })();
  return shared;
}

/** One side of a {@link LogicalPair}. */
export interface PairSide extends TestDatabase {
  /** a superuser on this database: CREATE PUBLICATION / SUBSCRIPTION, slots, the freeze */
  adminUrl: string;
  /** the server's superuser on its `postgres` database */
  serverAdminUrl: string;
  /** the server's major version (15 for the source, 17 for the target) */
  version: number;
}

/** A source and a target database on two servers, and their teardown. */
export interface LogicalPair {
  /**
   * On the machine's PostgreSQL 15: `url` is the superuser `postgres` (trust auth), as the
   * migration's source URL is the database owner on Neon.
   */
  source: PairSide;
  /**
   * On the embedded PostgreSQL 17: `url` is `role`, the database's owner, NOT a superuser but
   * allowed to replicate and to create subscriptions, like the RDS master user (rds_superuser,
   * rds_replication). Its password is in `url`.
   *
   * A subscription on the target to the source must be created with `adminUrl`: the machine's
   * server uses trust auth, and PostgreSQL 16+ lets a non-superuser subscribe only over a
   * connection that asks for a password (`password_required`).
   */
  target: PairSide & { role: string; password: string };
  /**
   * Drops both databases and the target's role, first every subscription in them
   * (`DISABLE`, `slot_name = NONE`, `DROP`) and every replication slot on either server for
   * them, so that no test leaves a slot holding WAL. Safe to call twice.
   */
  drop(): Promise<void>;
}

/**
 * A fresh source (empty, or holding the database tests' fixture with `fixture: true`) and an
 * empty target on the other server.
 *
 * @example
 * const pair = await createLogicalPair("live");
 * // CREATE PUBLICATION on pair.source.url, CREATE SUBSCRIPTION … CONNECTION '<pair.source.url>' on pair.target.adminUrl
 * await pair.drop();
 */
export async function createLogicalPair(
  label: string,
  opts: { fixture?: boolean } = {},
): Promise<LogicalPair> {
  const server = await logicalServer();
  const source = opts.fixture
    ? await createFixtureSource(`${label}_src`)
    : await createEmptyDatabase(`${label}_src`);
  let target: OwnedDatabase;
  try {
    target = await createOwnedDatabase(server.adminUrl, databaseName(`${label}_dst`));
  } catch (err) {
    await source.drop();
    throw err;
  }
  let dropping: Promise<void> | undefined;
  const sourceAdmin = databaseUrl("postgres");
  return {
    source: {
      ...source,
      adminUrl: source.url,
      serverAdminUrl: sourceAdmin,
      version: await majorOf(sourceAdmin),
    },
    target: { ...target, serverAdminUrl: server.adminUrl, version: server.version },
    drop() {
      dropping ??= (async () => {
        // subscriptions on both sides first, so that neither recreates a slot the other drops
        await dropReplicationFor(server.adminUrl, target.name);
        await dropReplicationFor(sourceAdmin, source.name);
        await target.drop();
        await source.drop(); // drops the source's slots again, then the database
      })();
      return dropping;
    },
  };
}

async function majorOf(url: string): Promise<number> {
  const [row] = await queryOnce<{ v: string }>(url, "SELECT current_setting('server_version_num') AS v");
  return Math.floor(Number(row!.v) / 10_000);
}

/** Replication slots on a server, optionally only those for one database. */
export function replicationSlots(
  adminUrl: string,
  database?: string,
): Promise<Array<{ slot_name: string; database: string; active: boolean }>> {
  return queryOnce(
    adminUrl,
    "SELECT slot_name, database, active FROM pg_replication_slots WHERE $1::text IS NULL OR database = $1 ORDER BY 1",
    [database ?? null],
  );
}
