import type { KpiConfig } from "../config/schema.js";
import type { Db } from "../store/client.js";
import { flipAlertState, latestProbes, unflipAlertState } from "../store/kpi.js";
import { DB_TARGET, type KpiSummary } from "./summary.js";

/** How long each threshold's `period` looks back. */
export const PERIOD_MS: Readonly<Record<"daily" | "weekly" | "monthly", number>> = {
  daily: 24 * 3600_000,
  weekly: 7 * 24 * 3600_000,
  monthly: 30 * 24 * 3600_000,
};

const PERIOD_LABEL: Record<keyof typeof PERIOD_MS, string> = {
  daily: "the last 24 h",
  weekly: "the last 7 days",
  monthly: "the last 30 days",
};

/** One threshold held against its figure: the unit of an alert. */
export interface KpiCheck {
  /** the alert's key: "availability", "avg-latency", "db-query", "error-rate" or "down:<endpoint id>" */
  key: string;
  /** what a person calls it: "Availability" */
  title: string;
  breached: boolean;
  value: number | undefined;
  threshold: number;
  /** the figure must stay above (min) or below (max) the threshold */
  bound: "min" | "max";
  unit: "%" | "ms" | "probes";
  /** "the last 24 h" */
  window: string;
  /** one line of context: sample counts, the last error */
  detail: string;
}

/** The windows the checks need, by period: compute a {@link KpiSummary} for each. */
export function periodsNeeded(longTerm: KpiConfig["longTerm"]): Array<keyof typeof PERIOD_MS> {
  return [
    ...new Set([
      longTerm.availabilityPercent.period,
      longTerm.avgResponseMs.period,
      longTerm.dbQueryMs.period,
      longTerm.errorRatePercent.period,
    ]),
  ];
}

/**
 * The long-term thresholds (`kpis.longTerm`) against the figures of their own periods. A figure
 * with no samples behind it is never a breach: no data is not bad data.
 */
export function kpiChecks(
  summaries: ReadonlyMap<string, KpiSummary>,
  longTerm: KpiConfig["longTerm"],
): KpiCheck[] {
  const checks: KpiCheck[] = [];
  const lastError = (s: KpiSummary) => {
    const failing = s.byEndpoint.find((e) => e.lastError);
    return failing ? `; last error: ${failing.lastError} (${failing.target})` : "";
  };
  const { availabilityPercent: a, avgResponseMs: l, dbQueryMs: d, errorRatePercent: e } = longTerm;
  /** One threshold against its figure; `breached` only when there is a figure. */
  const hold = (
    c: Omit<KpiCheck, "breached" | "window" | "threshold">,
    limit: { period: keyof typeof PERIOD_MS; min?: number; max?: number },
  ) => {
    const threshold = (c.bound === "min" ? limit.min : limit.max) as number;
    const v = c.value;
    checks.push({
      ...c,
      breached: v !== undefined && (c.bound === "min" ? v < threshold : v > threshold),
      threshold,
      window: PERIOD_LABEL[limit.period],
    });
  };
  const sa = summaries.get(a.period);
  if (sa) {
    hold(
      {
        key: "availability",
        title: "Availability",
        value: sa.endpoints.availabilityPercent,
        bound: "min",
        unit: "%",
        detail: `${sa.endpoints.samples} probes, ${sa.endpoints.failures} failed${lastError(sa)}`,
      },
      a,
    );
  }
  const sl = summaries.get(l.period);
  if (sl) {
    hold(
      {
        key: "avg-latency",
        title: "Average response time",
        value: sl.endpoints.avgMs,
        bound: "max",
        unit: "ms",
        detail: `p95 ${sl.endpoints.p95Ms ?? "–"} ms over ${sl.endpoints.samples - sl.endpoints.failures} answered probes`,
      },
      l,
    );
  }
  const sd = summaries.get(d.period);
  if (sd && sd.database.samples > 0) {
    hold(
      {
        key: "db-query",
        title: "Database query time",
        value: sd.database.avgMs,
        bound: "max",
        unit: "ms",
        detail: `${sd.database.samples} queries, ${sd.database.failures} failed${sd.database.lastError ? `; last error: ${sd.database.lastError}` : ""}`,
      },
      d,
    );
  }
  const se = summaries.get(e.period);
  if (se) {
    hold(
      {
        key: "error-rate",
        title: "Error rate",
        value: se.endpoints.errorRatePercent,
        bound: "max",
        unit: "%",
        detail: `${se.endpoints.failures} of ${se.endpoints.samples} probes failed${lastError(se)}`,
      },
      e,
    );
  }
  return checks;
}

/**
 * "Down" checks: an endpoint (or the target database) whose last `consecutive` probes all failed is down; its next good
 * probe clears it. These answer "is it up now?", which a 24-hour availability figure cannot.
 */
export async function downChecks(db: Db, now: Date, consecutive = 2): Promise<KpiCheck[]> {
  const rows = await latestProbes(db, now, consecutive);
  return rows.map((r) => ({
    key: `down:${r.target}`,
    title: r.target === DB_TARGET ? "Target database" : `Endpoint ${r.target}`,
    breached: r.total >= consecutive && r.failed === r.total,
    value: r.failed,
    threshold: consecutive,
    bound: "max",
    unit: "probes",
    window: `its last ${consecutive} probes`,
    detail: r.last_error ? `last error: ${r.last_error}` : "answering again",
  }));
}

/** A check whose state changed: it is posted to the channel once. */
export interface AlertTransition {
  check: KpiCheck;
  /** when the previous state began (how long the breach lasted, for a clearing) */
  previousSince: Date;
}

/**
 * Stores each check's state and returns the ones that changed (breached ↔ clear). The change is
 * a conditional update, so of two processes evaluating at once exactly one sees the transition:
 * a breach is posted once, not every probe, and its clearing once.
 */
export async function applyAlertStates(
  db: Db,
  checks: readonly KpiCheck[],
  now: Date,
): Promise<AlertTransition[]> {
  const transitions: AlertTransition[] = [];
  for (const check of checks) {
    const previousSince = await flipAlertState(
      db,
      {
        key: check.key,
        breached: check.breached,
        value: check.value ?? null,
        threshold: check.threshold,
        message: `${check.title} over ${check.window}: ${check.detail}`.slice(0, 500),
      },
      now,
    );
    if (previousSince) transitions.push({ check, previousSince });
  }
  return transitions;
}

/** Puts a transition back when its message could not be posted, so the next round posts it. */
export async function revertAlertState(db: Db, t: AlertTransition): Promise<void> {
  await unflipAlertState(db, t.check.key, t.check.breached, t.previousSince);
}

export { breachedAlerts } from "../store/kpi.js";
