import { CutoverError, ErrorCode } from "../errors.js";
import type { Db } from "../store/client.js";

/**
 * KPI figures derived from the probe samples in `kpi_samples` (written by the KPI monitor,
 * ./KpiMonitor.ts). Pure reads: the digest, `/migrate kpi` and the alert check all use these.
 *
 * Definitions (one probe = one sample of one endpoint):
 * - availability % = probes the endpoint answered without a server error (any status below 500,
 *   within the timeout) / all probes;
 * - error rate % = probes that failed in any way (no answer, a timeout, a 5xx, or a status other
 *   than the expected one) / all probes; so it is at least 100 − availability;
 * - latency (avg, p95 by nearest rank) = over the successful probes only: a timeout is not a latency;
 * - database query time (avg, p95) = the configured query on the target database, successful runs.
 */

/** The sample `target` the database probe is stored under (endpoint ids cannot contain a colon). */
export const DB_TARGET = "db:target";

/** Figures for a set of endpoint probes. Undefined where there were no samples to compute from. */
export interface EndpointFigures {
  samples: number;
  /** probes that failed in any way */
  failures: number;
  availabilityPercent: number | undefined;
  errorRatePercent: number | undefined;
  avgMs: number | undefined;
  p95Ms: number | undefined;
}

export interface DatabaseFigures {
  samples: number;
  failures: number;
  avgMs: number | undefined;
  p95Ms: number | undefined;
}

export interface KpiSummary {
  from: Date;
  to: Date;
  /** every endpoint together */
  endpoints: EndpointFigures;
  /** one per endpoint id seen in the window, by id */
  byEndpoint: Array<EndpointFigures & { target: string; lastError: string | undefined }>;
  database: DatabaseFigures & { lastError: string | undefined };
}

/** One day of the daily series (a day in the given time zone). */
export interface KpiDay extends EndpointFigures {
  /** YYYY-MM-DD */
  day: string;
  dbAvgMs: number | undefined;
  dbSamples: number;
}

interface Row {
  target: string | null;
  samples: number;
  ok: number;
  up: number;
  avg_ms: number | null;
  p95_ms: number | null;
  last_error: string | null;
}

const round1 = (n: number | null | undefined) =>
  n === null || n === undefined ? undefined : Math.round(n * 10) / 10;
const percent = (part: number, whole: number) =>
  whole === 0 ? undefined : Math.round((part / whole) * 100 * 1000) / 1000;

function figures(row: Pick<Row, "samples" | "ok" | "up" | "avg_ms" | "p95_ms"> | undefined): EndpointFigures {
  const samples = row?.samples ?? 0;
  const ok = row?.ok ?? 0;
  return {
    samples,
    failures: samples - ok,
    availabilityPercent: percent(row?.up ?? 0, samples),
    errorRatePercent: percent(samples - ok, samples),
    avgMs: round1(row?.avg_ms),
    p95Ms: round1(row?.p95_ms),
  };
}

/**
 * Availability, error rate, latency (avg, p95) and database query time over `[from, to)`.
 *
 * @example const day = await kpiSummary(db, { from: new Date(Date.now() - 86_400_000), to: new Date() });
 */
export async function kpiSummary(db: Db, window: { from: Date; to: Date }): Promise<KpiSummary> {
  const { from, to } = window;
  if (
    !(from instanceof Date) ||
    !(to instanceof Date) ||
    Number.isNaN(from.getTime()) ||
    Number.isNaN(to.getTime())
  )
    throw new CutoverError(ErrorCode.BadArgument, "kpiSummary needs two valid dates, `from` and `to`.");
  if (from.getTime() > to.getTime())
    throw new CutoverError(ErrorCode.BadArgument, "kpiSummary: `from` is after `to` — swap the two.");
  // GROUPING SETS: one row per target, plus one row for all endpoints together (target NULL, is_db false).
  const rows = await db.$queryRaw<Array<Row & { is_db: boolean }>>`
    SELECT CASE WHEN GROUPING(target) = 0 THEN target END AS target,
           is_db,
           count(*)::int AS samples,
           (count(*) FILTER (WHERE ok))::int AS ok,
           (count(*) FILTER (WHERE status IS NOT NULL AND status < 500))::int AS up,
           avg(latency_ms) FILTER (WHERE ok) AS avg_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE ok) AS p95_ms,
           (array_agg(error ORDER BY at DESC) FILTER (WHERE NOT ok))[1] AS last_error
      FROM (SELECT *, target = ${DB_TARGET} AS is_db FROM kpi_samples WHERE at >= ${from} AND at < ${to}) k
     GROUP BY GROUPING SETS ((target, is_db), (is_db))`;
  const all = rows.find((r) => r.target === null && r.is_db === false);
  const dbRow = rows.find((r) => r.target === DB_TARGET);
  const dbFigures = figures(dbRow);
  return {
    from,
    to,
    endpoints: figures(all),
    byEndpoint: rows
      .filter((r) => r.target !== null && r.target !== DB_TARGET)
      .sort((a, b) => (a.target ?? "").localeCompare(b.target ?? ""))
      .map((r) => ({ target: r.target as string, ...figures(r), lastError: r.last_error ?? undefined })),
    database: {
      samples: dbFigures.samples,
      failures: dbFigures.failures,
      avgMs: dbFigures.avgMs,
      p95Ms: dbFigures.p95Ms,
      lastError: dbRow?.last_error ?? undefined,
    },
  };
}

/** Whether `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * One entry per calendar day (in `timeZone`, default UTC) for the last `days` days, oldest
 * first, ending with the day that holds `now` (or the day before, with `includeToday: false`).
 * Days without samples are present with undefined figures, so a chart's axis has no gaps.
 *
 * @example const week = await kpiDaily(db, 7, { timeZone: "Asia/Singapore", includeToday: false });
 */
export async function kpiDaily(
  db: Db,
  days: number,
  opts: { now?: Date; timeZone?: string; includeToday?: boolean } = {},
): Promise<KpiDay[]> {
  if (!Number.isInteger(days) || days < 1 || days > 366)
    throw new CutoverError(
      ErrorCode.BadArgument,
      `kpiDaily: ${days} days — ask for a whole number from 1 to 366.`,
    );
  const tz = opts.timeZone ?? "UTC";
  if (!isTimeZone(tz))
    throw new CutoverError(
      ErrorCode.BadArgument,
      `kpiDaily: \`${tz}\` is not a time zone — use an IANA name such as Asia/Singapore or UTC.`,
    );
  const now = opts.now ?? new Date();
  const offset = opts.includeToday === false ? 1 : 0;
  const rows = await db.$queryRaw<Array<Row & { day: string; db_samples: number; db_avg_ms: number | null }>>`
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
           (count(x.id) FILTER (WHERE x.target <> ${DB_TARGET}))::int AS samples,
           (count(x.id) FILTER (WHERE x.target <> ${DB_TARGET} AND x.ok))::int AS ok,
           (count(x.id) FILTER (WHERE x.target <> ${DB_TARGET} AND x.status IS NOT NULL AND x.status < 500))::int AS up,
           avg(x.latency_ms) FILTER (WHERE x.target <> ${DB_TARGET} AND x.ok) AS avg_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY x.latency_ms) FILTER (WHERE x.target <> ${DB_TARGET} AND x.ok) AS p95_ms,
           NULL::text AS last_error,
           (count(x.id) FILTER (WHERE x.target = ${DB_TARGET}))::int AS db_samples,
           avg(x.latency_ms) FILTER (WHERE x.target = ${DB_TARGET} AND x.ok) AS db_avg_ms
      FROM days d LEFT JOIN samples x ON x.day = d.day
     GROUP BY d.day
     ORDER BY d.day`;
  return rows.map((r) => ({
    day: r.day,
    ...figures(r),
    dbSamples: r.db_samples,
    dbAvgMs: round1(r.db_avg_ms),
  }));
}
