import { createHash } from "node:crypto";
import pg from "pg";
import { CutoverError, ErrorCode } from "../errors.js";
import { ident, SYSTEM_SCHEMA_SQL } from "./postgres.js";

/*
 * PostgreSQL's own logical replication, as Cutover drives it: a publication and a slot on the
 * side that is written to, a subscription on the other. No change applier of our own: the
 * servers carry the changes; Cutover creates, watches, drains and tears down the objects, and
 * freezes and unfreezes the app's writes around a switch.
 *
 * Every object Cutover creates is named `cutover_<environment>_<direction>` so that it can be
 * listed, watched and dropped again, by this process or a later one, without any memory of it.
 */

/** Forward: the old database → the new one. Reverse: the new one → the old one (the way back). */
export type Direction = "fwd" | "rev";

/** The names of one direction's publication, slot and subscription. */
export interface ReplicationNames {
  publication: string;
  slot: string;
  subscription: string;
}

/** Everything Cutover creates starts with this, so leftovers can be found on any server. */
export const NAME_PREFIX = "cutover_";

/**
 * The names for an environment and a direction: lower-case letters, digits and `_` (what slot
 * names allow), at most 63 bytes, and distinct for distinct environments (a hash when shortened).
 *
 * @example replicationNames("production", "fwd").slot // "cutover_production_fwd"
 */
export function replicationNames(environment: string, direction: Direction): ReplicationNames {
  let slug = environment.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  if (slug !== environment || slug.length > 40)
    slug = `${slug.slice(0, 32)}_${createHash("sha256").update(environment).digest("hex").slice(0, 6)}`;
  const base = `${NAME_PREFIX}${slug}_${direction}`;
  return { publication: base, slot: base, subscription: base };
}

/** A replication slot as the publishing server reports it. */
export interface SlotState {
  name: string;
  database: string;
  active: boolean;
  /** bytes of WAL the slot holds back on its server */
  retainedBytes: number;
  /** how far the subscriber has confirmed, as an LSN */
  confirmedFlushLsn: string | null;
  /** "reserved", "extended", "unreserved" or "lost" (a lost slot can never be used again) */
  walStatus: string | null;
}

/** The user tables a publication carries: every ordinary and partitioned table outside the system schemas. */
export async function publishableTables(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r','p') AND c.relpersistence = 'p' AND NOT c.relispartition
      AND ${SYSTEM_SCHEMA_SQL("n.nspname")}
    ORDER BY 1`);
  return rows.map((r) => r.name);
}

/**
 * Creates (or brings up to date) the publication of a direction for the given tables. A table
 * list, not FOR ALL TABLES: that needs a superuser, which neither Neon nor RDS hands out. A
 * table created later is then not carried: the schema fingerprint catches it before a switch.
 */
export async function ensurePublication(client: pg.Client, name: string, tables: string[]): Promise<void> {
  if (tables.length === 0)
    throw new CutoverError(ErrorCode.PreflightFailed, "The database has no tables to replicate.");
  const exists = await client.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [name]);
  const list = tables.map(quoteQualified).join(", ");
  if (exists.rowCount) await client.query(`ALTER PUBLICATION ${ident(name)} SET TABLE ${list}`);
  else
    await client.query(
      `CREATE PUBLICATION ${ident(name)} FOR TABLE ${list} WITH (publish_via_partition_root = true)`,
    );
}

/** `public.orders` (already quoted by format('%I.%I')) is used as it is. */
function quoteQualified(name: string): string {
  return name;
}

/**
 * A replication connection (the walsender protocol), on which a logical slot is created with an
 * exported snapshot: the snapshot is exactly the state the slot's first change follows, and it
 * stays importable (pg_dump --snapshot) until this connection runs another command or closes.
 */
export interface SlotWithSnapshot {
  slot: string;
  /** the LSN from which the slot streams */
  consistentPoint: string;
  /** for `pg_dump --snapshot` and `SET TRANSACTION SNAPSHOT` */
  snapshot: string;
  /** closes the replication connection; the snapshot is gone after it, the slot stays */
  release(): Promise<void>;
}

export async function createSlotWithSnapshot(url: string, slot: string): Promise<SlotWithSnapshot> {
  const client = new pg.Client({
    connectionString: url,
    replication: "database",
    application_name: "cutover-slot",
  } as pg.ClientConfig);
  client.on("error", () => undefined);
  await client.connect();
  try {
    const res = await client.query<{ slot_name: string; consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${ident(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const row = res.rows[0]!;
    return {
      slot: row.slot_name,
      consistentPoint: row.consistent_point,
      snapshot: row.snapshot_name,
      release: () => client.end().catch(() => undefined),
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/** Creates a logical slot without a snapshot (both sides already hold the same data). */
export async function createSlot(client: pg.Client, slot: string): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>(
    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
    [slot],
  );
  return rows[0]!.lsn;
}

/** The slots of this database (slots are the server's, each tied to one database) whose names start with `prefix`. */
export async function listSlots(client: pg.Client, prefix = NAME_PREFIX): Promise<SlotState[]> {
  const { rows } = await client.query<{
    slot_name: string;
    database: string;
    active: boolean;
    retained: string | null;
    confirmed: string | null;
    wal_status: string | null;
  }>(
    `SELECT slot_name, database, active,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained,
       confirmed_flush_lsn::text AS confirmed, wal_status
     FROM pg_replication_slots WHERE starts_with(slot_name, $1) AND database = current_database() ORDER BY slot_name`,
    [prefix],
  );
  return rows.map((r) => ({
    name: r.slot_name,
    database: r.database,
    active: r.active,
    retainedBytes: Number(r.retained ?? 0),
    confirmedFlushLsn: r.confirmed,
    walStatus: r.wal_status,
  }));
}

/** Drops this database's slot, ending the walsender that holds it first. Absent is fine. */
export async function dropSlot(client: pg.Client, slot: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const found = await client.query<{ active_pid: number | null }>(
      "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
      [slot],
    );
    if (found.rowCount === 0) return false;
    const pid = found.rows[0]!.active_pid;
    if (pid) {
      await client.query("SELECT pg_terminate_backend($1)", [pid]);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    try {
      await client.query("SELECT pg_drop_replication_slot($1)", [slot]);
      return true;
    } catch (err) {
      // taken again by a subscriber reconnecting between the look and the drop: look again
      if ((err as { code?: string }).code !== "55006") throw err;
    }
  }
  throw new CutoverError(
    ErrorCode.TimedOut,
    `The replication slot ${slot} stayed in use: it was not dropped.`,
    {
      hint: `Disable the subscription that uses it (ALTER SUBSCRIPTION … DISABLE), then drop it with SELECT pg_drop_replication_slot('${slot}').`,
    },
  );
}

export async function dropPublication(client: pg.Client, name: string): Promise<boolean> {
  const r = await client.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [name]);
  if (!r.rowCount) return false;
  await client.query(`DROP PUBLICATION ${ident(name)}`);
  return true;
}

/** A subscription as its server reports it. */
export interface SubscriptionState {
  name: string;
  enabled: boolean;
  slot: string | null;
  /** the apply worker's process, null when it is not running (disabled, or stopped on an error) */
  workerPid: number | null;
  /** when the apply worker last heard from the publisher */
  lastMessageAt: Date | null;
  /** the last LSN reported back to the publisher */
  latestEndLsn: string | null;
  /** tables still in their initial copy (state other than ready) */
  tablesNotReady: number;
}

export async function getSubscription(client: pg.Client, name: string): Promise<SubscriptionState | null> {
  const { rows } = await client.query<{
    subname: string;
    subenabled: boolean;
    subslotname: string | null;
    pid: number | null;
    last_msg_receipt_time: Date | null;
    latest_end_lsn: string | null;
    not_ready: string;
  }>(
    `SELECT s.subname, s.subenabled, s.subslotname, st.pid, st.last_msg_receipt_time, st.latest_end_lsn::text,
       (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srsubstate <> 'r') AS not_ready
     FROM pg_subscription s
     LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
     WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [name],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    name: r.subname,
    enabled: r.subenabled,
    slot: r.subslotname,
    workerPid: r.pid,
    lastMessageAt: r.last_msg_receipt_time,
    latestEndLsn: r.latest_end_lsn,
    tablesNotReady: Number(r.not_ready),
  };
}

/**
 * Creates a subscription on an existing slot, carrying no initial copy (the data is there already:
 * restored from the slot's own snapshot, or identical because both sides were frozen).
 * `create_slot = false` also avoids the known hang of a subscription to a database on the same server.
 */
export async function createSubscription(
  client: pg.Client,
  opts: { name: string; conninfo: string; publication: string; slot: string },
): Promise<void> {
  // CREATE SUBSCRIPTION takes no parameters: the connection string goes in as a quoted literal
  await client.query(
    `CREATE SUBSCRIPTION ${ident(opts.name)} CONNECTION ${client.escapeLiteral(opts.conninfo)}
     PUBLICATION ${ident(opts.publication)}
     WITH (create_slot = false, slot_name = ${client.escapeLiteral(opts.slot)}, copy_data = false, enabled = true)`,
  );
}

/** Drops a subscription but never its slot (the slot is on the other server; it is dropped there). */
export async function dropSubscription(client: pg.Client, name: string): Promise<boolean> {
  const sub = await getSubscription(client, name);
  if (!sub) return false;
  if (sub.enabled) await client.query(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`);
  if (sub.slot) await client.query(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`);
  await client.query(`DROP SUBSCRIPTION ${ident(name)}`);
  return true;
}

/** The subscriptions on this database whose names start with `prefix`. */
export async function listSubscriptions(client: pg.Client, prefix = NAME_PREFIX): Promise<string[]> {
  const { rows } = await client.query<{ subname: string }>(
    `SELECT subname FROM pg_subscription
     WHERE starts_with(subname, $1) AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ORDER BY 1`,
    [prefix],
  );
  return rows.map((r) => r.subname);
}

export async function listPublications(client: pg.Client, prefix = NAME_PREFIX): Promise<string[]> {
  const { rows } = await client.query<{ pubname: string }>(
    "SELECT pubname FROM pg_publication WHERE starts_with(pubname, $1) ORDER BY 1",
    [prefix],
  );
  return rows.map((r) => r.pubname);
}

/** How far behind the subscriber is, read on the publishing server. */
export interface Lag {
  /** WAL bytes between the publisher's current position and what the subscriber confirmed */
  bytes: number;
  /** the replication delay in seconds (the publisher's measure of the last reply), 0 when caught up */
  seconds: number;
  /** when the subscriber last replied; null when it is not connected */
  lastReplyAt: Date | null;
  /** whether a subscriber is connected to the slot now */
  connected: boolean;
  walStatus: string | null;
}

export async function readLag(client: pg.Client, slot: string): Promise<Lag | null> {
  const { rows } = await client.query<{
    bytes: string | null;
    active: boolean;
    wal_status: string | null;
    lag_s: number | null;
    reply_time: Date | null;
  }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint AS bytes, s.active, s.wal_status,
       extract(epoch FROM greatest(r.write_lag, r.flush_lag, r.replay_lag))::float8 AS lag_s, r.reply_time
     FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
     WHERE s.slot_name = $1`,
    [slot],
  );
  const r = rows[0];
  if (!r) return null;
  const bytes = Math.max(0, Number(r.bytes ?? 0));
  return {
    bytes,
    // the lag columns keep the last measured delay while idle: caught up means no delay
    seconds: bytes === 0 ? 0 : (r.lag_s ?? 0),
    lastReplyAt: r.reply_time,
    connected: r.active,
    walStatus: r.wal_status,
  };
}

export async function currentLsn(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
  return rows[0]!.lsn;
}

/**
 * Waits until the subscriber has confirmed everything up to `lsn` on the publisher's slot: after
 * a freeze, every change committed before it has been applied on the other side.
 */
export async function waitForSlot(
  client: pg.Client,
  slot: string,
  lsn: string,
  opts: { timeoutMs: number; signal?: AbortSignal; pollMs?: number },
): Promise<number> {
  const started = performance.now();
  for (;;) {
    const { rows } = await client.query<{ ok: boolean | null; active: boolean }>(
      "SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok, active FROM pg_replication_slots WHERE slot_name = $1",
      [slot, lsn],
    );
    const r = rows[0];
    if (!r)
      throw new CutoverError(
        ErrorCode.StepFailed,
        `The replication slot ${slot} is gone: nothing can be drained.`,
      );
    if (r.ok) return performance.now() - started;
    if (performance.now() - started > opts.timeoutMs) {
      throw new CutoverError(
        ErrorCode.TimedOut,
        `Replication did not catch up with ${lsn} within ${Math.round(opts.timeoutMs / 1000)} s (the subscriber is ${r.active ? "connected" : "not connected"}).`,
        {
          hint: "Look at the subscriber's log for an apply error (a conflict, a missing table), fix it, then run the step again.",
        },
      );
    }
    if (opts.signal?.aborted)
      throw new CutoverError(ErrorCode.Cancelled, "cancelled while draining replication");
    await new Promise((res) => setTimeout(res, opts.pollMs ?? 20));
  }
}

// ───────────────────────────── the freeze ─────────────────────────────

/** The write privileges a role held on a table before a freeze took them. */
export interface FrozenGrant {
  table: string;
  privileges: string[];
}

/** What a freeze changed, so that an unfreeze puts back exactly that. */
export interface FreezeRecord {
  role: string;
  grants: FrozenGrant[];
  /** the WAL position right after the freeze took hold (in-flight transactions ended) */
  lsn?: string;
  at: string;
}

const WRITE_PRIVILEGES = ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] as const;

/** Checks the app's role can be frozen by privileges: it exists, is no superuser and does not bypass them. */
export async function checkFreezableRole(client: pg.Client, role: string): Promise<string | null> {
  const { rows } = await client.query<{ rolsuper: boolean; is_me: boolean }>(
    "SELECT rolsuper, rolname = current_user AS is_me FROM pg_roles WHERE rolname = $1",
    [role],
  );
  const r = rows[0];
  if (!r) return `the role ${role} does not exist on this database`;
  if (r.rolsuper)
    return `the role ${role} is a superuser: a superuser's writes cannot be refused by privileges`;
  if (r.is_me)
    return `the role ${role} is the one Cutover connects as: the app must use a role of its own, or freezing it would stop replication too`;
  return null;
}

/**
 * Freezes the app's writes: takes INSERT, UPDATE, DELETE and TRUNCATE on every user table from
 * `role`, in one transaction, and returns exactly what it took. Privileges are checked at each
 * statement, so every session of the app is frozen at once, without being ended, and reads go on.
 * Then it proves the role can write nowhere (not through another role it belongs to either) and
 * waits for the role's transactions that were already writing to end, ending them after
 * `inflightMs` (their writes were never acknowledged: their commit had not happened).
 */
export async function freezeWrites(
  client: pg.Client,
  role: string,
  opts: {
    inflightMs: number;
    now: Date;
    /**
     * told what is about to be taken, before it is: the caller records it durably first, so a
     * crash between the two can always be undone (giving back a privilege still held is harmless)
     */
    beforeRevoke?: (record: FreezeRecord) => Promise<void>;
  },
): Promise<FreezeRecord> {
  const problem = await checkFreezableRole(client, role);
  if (problem) throw new CutoverError(ErrorCode.PreflightFailed, `Cannot freeze writes: ${problem}.`);
  const grants = await heldWriteGrants(client, role);
  const record: FreezeRecord = { role, grants, at: opts.now.toISOString() };
  await opts.beforeRevoke?.(record);
  await client.query("BEGIN");
  try {
    for (const g of grants)
      await client.query(`REVOKE ${g.privileges.join(", ")} ON TABLE ${g.table} FROM ${ident(role)}`);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
  const still = await writableTables(client, role);
  if (still.length) {
    await unfreezeWrites(client, record);
    throw new CutoverError(
      ErrorCode.PreflightFailed,
      `Cannot freeze writes: ${role} can still write to ${still.slice(0, 5).join(", ")}${still.length > 5 ? ` and ${still.length - 5} more` : ""} through another role it belongs to or a grant to PUBLIC. The freeze was undone.`,
      {
        hint: `Give the app a role that holds its write privileges itself (GRANT … TO ${role}; REVOKE the group grant), then ask again.`,
      },
    );
  }
  await endWritingTransactions(client, role, opts.inflightMs);
  record.lsn = await currentLsn(client);
  return record;
}

/** The write privileges `role` holds itself on each user table (an owner's implicit ones included). */
export async function heldWriteGrants(client: pg.Client, role: string): Promise<FrozenGrant[]> {
  const { rows } = await client.query<{ table: string; privileges: string[] }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS table, array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type) AS privileges
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
       WHERE c.relkind IN ('r','p') AND ${SYSTEM_SCHEMA_SQL("n.nspname")}
         AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)
         AND a.privilege_type = ANY($2)
       GROUP BY 1 ORDER BY 1`,
    [role, WRITE_PRIVILEGES],
  );
  return rows;
}

/** Tables the role may still write to, by any path (membership, PUBLIC). */
export async function writableTables(client: pg.Client, role: string): Promise<string[]> {
  const { rows } = await client.query<{ table: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS table
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r','p') AND ${SYSTEM_SCHEMA_SQL("n.nspname")}
       AND has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
     ORDER BY 1`,
    [role],
  );
  return rows.map((r) => r.table);
}

/** Waits for the role's write transactions to end; ends the ones still open after `ms`. */
async function endWritingTransactions(client: pg.Client, role: string, ms: number): Promise<number> {
  const sql = `SELECT pid FROM pg_stat_activity WHERE usename = $1 AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`;
  const deadline = performance.now() + ms;
  for (;;) {
    const { rows } = await client.query<{ pid: number }>(sql, [role]);
    if (rows.length === 0) return 0;
    if (performance.now() >= deadline) {
      for (const { pid } of rows) await client.query("SELECT pg_terminate_backend($1)", [pid]);
      // terminate returns before the backend has gone: wait for it, or its commit could still land
      for (let i = 0; i < 100; i++) {
        const left = await client.query(sql, [role]);
        if (left.rowCount === 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      return rows.length;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Puts back exactly the privileges a freeze took. Running it twice changes nothing. */
export async function unfreezeWrites(client: pg.Client, record: FreezeRecord): Promise<void> {
  await client.query("BEGIN");
  try {
    for (const g of record.grants) {
      const exists = await client.query("SELECT to_regclass($1) IS NOT NULL AS ok", [g.table]);
      if (!exists.rows[0]?.ok) continue; // dropped since: nothing to give back
      await client.query(`GRANT ${g.privileges.join(", ")} ON TABLE ${g.table} TO ${ident(record.role)}`);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

// ───────────────────────────── what replication does not carry ─────────────────────────────

/** One sequence's position. */
export interface SequenceValue {
  name: string;
  lastValue: string;
  isCalled: boolean;
}

export async function readSequences(client: pg.Client): Promise<SequenceValue[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S' AND ${SYSTEM_SCHEMA_SQL("n.nspname")} ORDER BY 1`,
  );
  const out: SequenceValue[] = [];
  for (const { name } of rows) {
    const v = await client.query<{ last_value: string; is_called: boolean }>(
      `SELECT last_value::text, is_called FROM ${name}`,
    );
    out.push({ name, lastValue: v.rows[0]!.last_value, isCalled: v.rows[0]!.is_called });
  }
  return out;
}

/**
 * Sets every sequence (identity columns' included) to the other side's position. Returns the
 * names that exist on one side only, which the caller reports.
 */
export async function applySequences(client: pg.Client, values: SequenceValue[]): Promise<string[]> {
  const missing: string[] = [];
  for (const v of values) {
    const exists = await client.query("SELECT to_regclass($1) IS NOT NULL AS ok", [v.name]);
    if (!exists.rows[0]?.ok) {
      missing.push(v.name);
      continue;
    }
    await client.query("SELECT setval($1::regclass, $2::bigint, $3)", [v.name, v.lastValue, v.isCalled]);
  }
  return missing;
}

/** What logical replication does not carry, named for the preflight and the switch. */
export interface NotCarried {
  /** tables with neither a primary key nor a replica identity: their updates and deletes fail on the publisher */
  withoutIdentity: string[];
  unlogged: string[];
  materializedViews: string[];
  largeObjects: number;
  sequences: number;
}

export async function notCarried(client: pg.Client): Promise<NotCarried> {
  const USER = SYSTEM_SCHEMA_SQL("n.nspname");
  const ident1 = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND ${USER}
       AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
         OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
     ORDER BY 1`,
  );
  const unlogged = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND ${USER} ORDER BY 1`,
  );
  const mv = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'm' AND ${USER} ORDER BY 1`,
  );
  const lo = await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_largeobject_metadata");
  const seq = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND ${USER}`,
  );
  return {
    withoutIdentity: ident1.rows.map((r) => r.name),
    unlogged: unlogged.rows.map((r) => r.name),
    materializedViews: mv.rows.map((r) => r.name),
    largeObjects: Number(lo.rows[0]!.n),
    sequences: Number(seq.rows[0]!.n),
  };
}

/**
 * A fingerprint of what replication depends on: every user table's columns (name, type, not
 * null) and primary key. DDL is not replicated, so a schema change on one side while replicating
 * shows here as a difference; {@link schemaDifferences} names it.
 */
export async function schemaShape(client: pg.Client): Promise<Record<string, string>> {
  const { rows } = await client.query<{ name: string; shape: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name,
       string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN ' not null' ELSE '' END), ', ' ORDER BY a.attname) AS shape
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind IN ('r','p') AND c.relpersistence = 'p' AND ${SYSTEM_SCHEMA_SQL("n.nspname")}
     GROUP BY 1 ORDER BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.shape]));
}

/** The tables whose shape differs between two fingerprints, in words. */
export function schemaDifferences(source: Record<string, string>, target: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [t, shape] of Object.entries(source)) {
    if (!(t in target)) out.push(`${t} exists only on the source`);
    else if (target[t] !== shape) out.push(`${t} differs: source (${shape}) vs target (${target[t]})`);
  }
  for (const t of Object.keys(target)) if (!(t in source)) out.push(`${t} exists only on the target`);
  return out;
}

/** Server settings logical replication needs, read on one side. */
export interface ReplicationSettings {
  walLevel: string;
  maxReplicationSlots: number;
  usedSlots: number;
  maxWalSenders: number;
  maxLogicalWorkers: number;
  /** may this role create a publication's slot and a subscription (superuser, REPLICATION, rds_superuser, neon_superuser, pg_create_subscription) */
  canReplicate: boolean;
  canSubscribe: boolean;
  major: number;
}

/** SQL: the current user is a member of `role` (false where the server has no such role). */
const member = (role: string) =>
  `EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}' AND pg_has_role(current_user, oid, 'member'))`;

export async function readReplicationSettings(client: pg.Client): Promise<ReplicationSettings> {
  const { rows } = await client.query<{
    wal_level: string;
    slots: string;
    used: string;
    senders: string;
    workers: string;
    can_rep: boolean;
    can_sub: boolean;
    major: string;
  }>(`
    SELECT current_setting('wal_level') AS wal_level,
      current_setting('max_replication_slots') AS slots,
      (SELECT count(*) FROM pg_replication_slots) AS used,
      current_setting('max_wal_senders') AS senders,
      current_setting('max_logical_replication_workers') AS workers,
      (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user)
        OR ${member("rds_replication")} OR ${member("neon_superuser")} AS can_rep,
      (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR ${member("rds_superuser")} OR ${member("pg_create_subscription")} OR ${member("neon_superuser")} AS can_sub,
      current_setting('server_version_num')::int / 10000 AS major`);
  const r = rows[0]!;
  return {
    walLevel: r.wal_level,
    maxReplicationSlots: Number(r.slots),
    usedSlots: Number(r.used),
    maxWalSenders: Number(r.senders),
    maxLogicalWorkers: Number(r.workers),
    canReplicate: r.can_rep,
    canSubscribe: r.can_sub,
    major: Number(r.major),
  };
}

// ───────────────────────────── which tables changed ─────────────────────────────

/**
 * The server's change counters for every user table, with what identifies the statistics they
 * come from. Compared at two moments on a subscriber, they name the tables the apply worker (or
 * anyone) changed in between: inserts, updates and deletes each count, and a TRUNCATE shows as
 * a changed live-row count. Counters only grow while the statistics live; a restart (a crash
 * discards them) or a pg_stat_reset() changes `epoch`, and then nothing may be concluded.
 */
export interface ChangeCounters {
  epoch: string;
  tables: Record<string, string>;
}

export async function readChangeCounters(client: pg.Client): Promise<ChangeCounters> {
  const [{ rows: e }, { rows }] = await Promise.all([
    client.query<{ epoch: string }>(
      `SELECT pg_postmaster_start_time()::text || '|' || coalesce(stats_reset::text, '') AS epoch
         FROM pg_stat_database WHERE datname = current_database()`,
    ),
    client.query<{ name: string; sig: string }>(
      `SELECT format('%I.%I', schemaname, relname) AS name,
              concat_ws('/', n_tup_ins, n_tup_upd, n_tup_del, n_live_tup) AS sig
         FROM pg_stat_user_tables`,
    ),
  ]);
  return { epoch: e[0]?.epoch ?? "", tables: Object.fromEntries(rows.map((r) => [r.name, r.sig])) };
}

/**
 * Keeps the counters read just before a subscription was created with the subscription itself
 * (its comment): they live exactly as long as it does, whoever started it.
 */
export async function recordStartCounters(
  client: pg.Client,
  subscription: string,
  counters: ChangeCounters,
): Promise<void> {
  await client.query(
    `COMMENT ON SUBSCRIPTION ${ident(subscription)} IS ${client.escapeLiteral(JSON.stringify({ cutoverCounters: counters }))}`,
  );
}

/** The counters {@link recordStartCounters} kept, or null (none kept, or not ours). */
export async function startCounters(client: pg.Client, subscription: string): Promise<ChangeCounters | null> {
  const { rows } = await client.query<{ c: string | null }>(
    `SELECT obj_description(s.oid, 'pg_subscription') AS c FROM pg_subscription s
      WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [subscription],
  );
  try {
    const parsed = JSON.parse(rows[0]?.c ?? "null") as { cutoverCounters?: ChangeCounters } | null;
    return parsed?.cutoverCounters ?? null;
  } catch {
    return null;
  }
}

/** Tables whose counters moved between two readings, or null when the statistics were reset in between. */
export function changedTables(before: ChangeCounters, after: ChangeCounters): string[] | null {
  if (before.epoch !== after.epoch) return null;
  return Object.keys(after.tables)
    .filter((t) => before.tables[t] !== after.tables[t])
    .sort();
}

/**
 * Stops a subscription's apply worker (ALTER SUBSCRIPTION … DISABLE) and waits until it has
 * exited. A backend sends its statistics at most once a second while it works, and always as it
 * exits: after this, the subscriber's counters hold every change the worker applied.
 */
export async function stopApplyWorker(client: pg.Client, name: string, timeoutMs: number): Promise<void> {
  await client.query(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_subscription st JOIN pg_subscription s ON s.oid = st.subid
         WHERE s.subname = $1 AND st.pid IS NOT NULL`,
      [name],
    );
    if (rows[0]!.n === "0") return;
    if (performance.now() > deadline)
      throw new CutoverError(
        ErrorCode.TimedOut,
        `The apply worker of ${name} did not stop within ${Math.round(timeoutMs / 1000)} s after it was disabled.`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts a subscription's apply worker again (a switch unwound after its verify). */
export async function enableSubscription(client: pg.Client, name: string): Promise<void> {
  await client.query(`ALTER SUBSCRIPTION ${ident(name)} ENABLE`);
}
