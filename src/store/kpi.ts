import type { Db } from "./client.js";

/**
 * The KPI tables: probe samples (`kpi_samples`), the monitor's switch and bookkeeping per
 * environment (`kpi_monitor_state`) and the alert states (`kpi_alert_state`). The figures and the
 * checks built on these live in src/kpi/.
 */

/** One probe sample as stored (a row of `kpi_samples`). */
export interface KpiSampleRow {
  at: Date;
  /** the endpoint id, or `DB_TARGET` (src/kpi/summary.ts) for the database query */
  target: string;
  ok: boolean;
  status: number | null;
  latencyMs: number | null;
  error: string | null;
}

/** Writes a round's samples. */
export async function storeSamples(db: Db, rows: readonly KpiSampleRow[]): Promise<void> {
  if (rows.length) await db.kpiSample.createMany({ data: [...rows] });
}

/** How many KPI samples were taken at or after `since` (kpi.monitor's proof that sampling runs). */
export async function countSamplesSince(db: Db, since: Date): Promise<number> {
  return db.kpiSample.count({ where: { at: { gte: since } } });
}

/** Deletes samples older than `retentionDays` before `now`; returns how many went. */
export async function pruneSamples(db: Db, now: Date, retentionDays: number): Promise<number> {
  const before = new Date(now.getTime() - retentionDays * 24 * 3600_000);
  const { count } = await db.kpiSample.deleteMany({ where: { at: { lt: before } } });
  return count;
}

/** The monitor's stored state for an environment, or null before anything was recorded. */
export async function monitoringState(db: Db, env: string) {
  return db.kpiMonitorState.findUnique({ where: { env } });
}

/** Switches sampling on or off for an environment (the kpi.monitor step's run and undo); a no-op when it already is. */
export async function setMonitoring(
  db: Db,
  env: string,
  enabled: boolean,
  by: string,
  now: Date,
): Promise<void> {
  const current = await monitoringState(db, env);
  // keeps when it was switched on, so "sampling since" survives a rerun of the step
  if (current?.enabled === enabled && current.changedAt) return;
  await db.kpiMonitorState.upsert({
    where: { env },
    create: { env, enabled, changedBy: by, changedAt: now },
    update: { enabled, changedBy: by, changedAt: now },
  });
}

/** Records when the last probe round ran for an environment. */
export async function recordRound(db: Db, env: string, at: Date): Promise<void> {
  await db.kpiMonitorState.upsert({
    where: { env },
    create: { env, lastRoundAt: at },
    update: { lastRoundAt: at },
  });
}

/**
 * Takes the environment's prune turn at `at` when the last prune is at least `everyMs` old; of
 * several replicas asking at once exactly one gets it (the update only matches while it is due).
 */
export async function claimPrune(db: Db, env: string, at: Date, everyMs: number): Promise<boolean> {
  const due = await db.kpiMonitorState.updateMany({
    where: { env, OR: [{ prunedAt: null }, { prunedAt: { lte: new Date(at.getTime() - everyMs) } }] },
    data: { prunedAt: at },
  });
  return due.count > 0;
}

/** Per target, how many of its last `consecutive` probes in the day before `now` failed, and the latest error. */
export async function latestProbes(
  db: Db,
  now: Date,
  consecutive: number,
): Promise<Array<{ target: string; failed: number; total: number; last_error: string | null }>> {
  return db.$queryRaw`
    SELECT target,
           (count(*) FILTER (WHERE NOT ok))::int AS failed,
           count(*)::int AS total,
           (array_agg(error ORDER BY at DESC))[1] AS last_error
      FROM (SELECT target, ok, error, at,
                   row_number() OVER (PARTITION BY target ORDER BY at DESC, id DESC) AS rn
              FROM kpi_samples
             WHERE at > ${now}::timestamptz - interval '1 day' AND at <= ${now}::timestamptz) k
     WHERE rn <= ${consecutive}
     GROUP BY target`;
}

/** Aggregates of a set of samples, as the summary queries return them. */
export interface KpiFigureRow {
  target: string | null;
  samples: number;
  ok: number;
  up: number;
  avg_ms: number | null;
  p95_ms: number | null;
  last_error: string | null;
}

/**
 * Figures over `[from, to)`: one row per target, plus one for all endpoints together (target
 * null, `is_db` false), by GROUPING SETS. `dbTarget` is the database probe's target name.
 */
export async function kpiWindowRows(
  db: Db,
  window: { from: Date; to: Date },
  dbTarget: string,
): Promise<Array<KpiFigureRow & { is_db: boolean }>> {
  const { from, to } = window;
  return db.$queryRaw`
    SELECT CASE WHEN GROUPING(target) = 0 THEN target END AS target,
           is_db,
           count(*)::int AS samples,
           (count(*) FILTER (WHERE ok))::int AS ok,
           (count(*) FILTER (WHERE status IS NOT NULL AND status < 500))::int AS up,
           avg(latency_ms) FILTER (WHERE ok) AS avg_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE ok) AS p95_ms,
           (array_agg(error ORDER BY at DESC) FILTER (WHERE NOT ok))[1] AS last_error
      FROM (SELECT *, target = ${dbTarget} AS is_db FROM kpi_samples WHERE at >= ${from} AND at < ${to}) k
     GROUP BY GROUPING SETS ((target, is_db), (is_db))`;
}

/**
 * One row per calendar day in `tz` for the `days` days ending `offset` days before the day of
 * `now`, oldest first; days without samples are there with zero counts.
 */
export async function kpiDailyRows(
  db: Db,
  opts: { days: number; now: Date; tz: string; offset: number; dbTarget: string },
): Promise<Array<KpiFigureRow & { day: string; db_samples: number; db_avg_ms: number | null }>> {
  const { days, now, tz, offset, dbTarget } = opts;
  return db.$queryRaw`
    WITH span AS (
      SELECT (${now}::timestamptz AT TIME ZONE ${tz})::date - ${offset}::int AS last_day
    ), days AS (
      SELECT (s.last_day - g)::date AS day
        FROM span s, generate_series(0, ${days}::int - 1) AS g
    ), samples AS (
      SELECT (k.at AT TIME ZONE ${tz})::date AS day, k.*
        FROM kpi_samples k, span s
       WHERE k.at >= ((s.last_day - (${days}::int - 1))::timestamp AT TIME ZONE ${tz})
         AND k.at < ((s.last_day + 1)::timestamp AT TIME ZONE ${tz})
    )
    SELECT d.day::text AS day,
           NULL::text AS target,
           (count(x.id) FILTER (WHERE x.target <> ${dbTarget}))::int AS samples,
           (count(x.id) FILTER (WHERE x.target <> ${dbTarget} AND x.ok))::int AS ok,
           (count(x.id) FILTER (WHERE x.target <> ${dbTarget} AND x.status IS NOT NULL AND x.status < 500))::int AS up,
           avg(x.latency_ms) FILTER (WHERE x.target <> ${dbTarget} AND x.ok) AS avg_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY x.latency_ms) FILTER (WHERE x.target <> ${dbTarget} AND x.ok) AS p95_ms,
           NULL::text AS last_error,
           (count(x.id) FILTER (WHERE x.target = ${dbTarget}))::int AS db_samples,
           avg(x.latency_ms) FILTER (WHERE x.target = ${dbTarget} AND x.ok) AS db_avg_ms
      FROM days d LEFT JOIN samples x ON x.day = d.day
     GROUP BY d.day
     ORDER BY d.day`;
}

/** What an alert state is set to when its check changes. */
export interface AlertStateChange {
  key: string;
  breached: boolean;
  value: number | null;
  threshold: number;
  message: string;
}

/**
 * Moves the alert `key` to `change.breached` at `now`, creating it (clear) first when new.
 * Returns when the previous state began, or undefined when it was already in that state or
 * another process moved it first: the update is conditional, so exactly one sees the change.
 */
export async function flipAlertState(db: Db, change: AlertStateChange, now: Date): Promise<Date | undefined> {
  const { key, breached } = change;
  await db.kpiAlertState.createMany({ data: [{ key, breached: false, since: now }], skipDuplicates: true });
  const before = await db.kpiAlertState.findUnique({ where: { key } });
  if (!before || before.breached === breached) return undefined;
  const changed = await db.kpiAlertState.updateMany({
    where: { key, breached: !breached },
    data: { breached, since: now, value: change.value, threshold: change.threshold, message: change.message },
  });
  return changed.count === 1 ? before.since : undefined;
}

/** Puts the alert `key` back from `breached` to the state it had since `since`. */
export async function unflipAlertState(db: Db, key: string, breached: boolean, since: Date): Promise<void> {
  await db.kpiAlertState.updateMany({ where: { key, breached }, data: { breached: !breached, since } });
}

/** The alerts breached now, oldest first. */
export async function breachedAlerts(db: Db) {
  return db.kpiAlertState.findMany({ where: { breached: true }, orderBy: { since: "asc" } });
}

/** The latest (up to 20) replication start, end and teardown events audited for an environment, newest first. */
export async function replicationEvents(db: Db, env: string) {
  return db.auditEvent.findMany({
    where: { action: { in: ["replication.start", "replication.end", "replication.teardown"] }, target: env },
    orderBy: { id: "desc" },
    take: 20,
  });
}
