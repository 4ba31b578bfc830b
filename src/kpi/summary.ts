import { CutoverError, ErrorCode } from "../errors.js";
import type { Db } from "../store/client.js";
import { type KpiFigureRow, kpiDailyRows, kpiWindowRows } from "../store/kpi.js";

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

type Row = KpiFigureRow;

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
  const rows = await kpiWindowRows(db, { from, to }, DB_TARGET);
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
  const rows = await kpiDailyRows(db, { days, now, tz, offset, dbTarget: DB_TARGET });
  return rows.map((r) => ({
    day: r.day,
    ...figures(r),
    dbSamples: r.db_samples,
    dbAvgMs: round1(r.db_avg_ms),
  }));
}
