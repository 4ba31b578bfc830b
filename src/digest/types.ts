/**
 * What the daily digest is made of. The KPI and cost parts are plain figures, so whatever
 * measures them (KPI sampling, Cost Explorer) only has to fill these in; a part that could not
 * be measured is `{ unavailable: reason }` and the digest still posts, saying why.
 */

/** A part that could not be had today, and why ("Cost Explorer refused: AccessDenied …"). */
export interface Unavailable {
  unavailable: string;
}

/** Whether a part is the unavailable kind. */
export function isUnavailable<T extends object>(part: T | Unavailable): part is Unavailable {
  return typeof (part as Partial<Unavailable>).unavailable === "string";
}

// ───────────────────────────── KPIs ─────────────────────────────

/** The plan's long-term targets (file: kpis.longTerm). */
export interface KpiTargets {
  /** availability must be above this, e.g. 99.9 */
  availabilityPct: number;
  /** average response time must be below this, e.g. 200 */
  avgMs: number;
  /** database query time must be below this, e.g. 50 */
  dbMs: number;
  /** error rate must be below this, e.g. 0.1 */
  errorRatePct: number;
}

/** Figures over one window; null where nothing was measured. */
export interface KpiFigures {
  availabilityPct: number | null;
  avgMs: number | null;
  p95Ms: number | null;
  errorRatePct: number | null;
  dbMs: number | null;
  /** how many probe samples the figures come from */
  samples: number;
}

/** One day of the 7-day chart. */
export interface KpiDay {
  /** the day, "YYYY-MM-DD" */
  date: string;
  availabilityPct: number | null;
  avgMs: number | null;
  p95Ms: number | null;
}

/**
 * Yesterday's KPIs against the targets, and the last days for the chart.
 *
 * @example { window: { from, to, label: "yesterday" }, figures: { availabilityPct: 99.95, avgMs: 140, … }, targets, daily }
 */
export interface KpiDigest {
  window: { from: Date; to: Date; label: string };
  figures: KpiFigures;
  targets: KpiTargets;
  /** oldest first, usually 7 days ending with the window's day */
  daily: KpiDay[];
  /** what was probed, for the chart title ("api.gogojap.com") */
  subject?: string;
}

export type KpiDigestPart = KpiDigest | Unavailable;

// ───────────────────────────── cost ─────────────────────────────

/**
 * Cost month to date and the forecast to month end against the target and the budget.
 *
 * @example { month: "2026-11", currency: "USD", monthToDate: 42.1, forecast: 78, target: 85, budget: 100, daily, asOf }
 */
export interface CostDigest {
  /** "YYYY-MM" */
  month: string;
  currency: string;
  monthToDate: number;
  /** expected total at the month's end; undefined when Cost Explorer had none (too early in the month) */
  forecast?: number | undefined;
  /** cost.monthlyTarget */
  target: number;
  /** cost.budgetAlert */
  budget: number;
  /** cost per day this month, "YYYY-MM-DD" */
  daily: Array<{ date: string; amount: number }>;
  /** when the figures were fetched (Cost Explorer is charged per request: they are cached for the day) */
  asOf: Date;
  /** the biggest services this month, largest first (optional) */
  topServices?: Array<{ service: string; amount: number }>;
  /** the plan's optimisations priced on this month's spend (optional) */
  savings?: Array<{ title: string; min: number; max: number }>;
}

export type CostDigestPart = CostDigest | Unavailable;

// ───────────────────────────── progress ─────────────────────────────

/** One phase of the runbook, as the digest shows it. */
export interface PhaseProgress {
  id: string;
  title: string;
  done: number;
  total: number;
  state: "done" | "active" | "failed" | "not started";
}

/** Something the migration is waiting on, and who can move it. */
export interface WaitingItem {
  /** "`dns-cutover` Switch DNS (needs approval)" */
  what: string;
  /** "<@U123> or <!subteam^S1>", "an operator", or a date */
  who: string;
}

/** The migration's progress, read from the run store. */
export interface ProgressDigest {
  phases: PhaseProgress[];
  stepsDone: number;
  stepsTotal: number;
  /** the first step of the runbook that is not done yet */
  next?: { stepId: string; title: string; phase: string; status: string } | undefined;
  waiting: WaitingItem[];
}

// ───────────────────────────── stabilisation ─────────────────────────────

/** Where the stabilisation window after the DNS cutover stands. */
export interface Stabilisation {
  /** when the cutover's switch finished */
  cutoverAt: Date;
  /** 1 on the day of the cutover (the first 24 h), 2 the next, … */
  day: number;
  /** the window's length (digest.stabilisationDays) */
  days: number;
  endsAt: Date;
  /** whether the window has passed */
  over: boolean;
}

// ───────────────────────────── the whole digest ─────────────────────────────

export interface DigestInputs {
  project: string;
  environment: string;
  /** the digest's local day, "YYYY-MM-DD", in `timezone` */
  day: string;
  timezone: string;
  now: Date;
  progress: ProgressDigest;
  /** null before the cutover */
  stabilisation: Stabilisation | null;
  kpi: KpiDigestPart;
  cost: CostDigestPart;
  /** a live migration's replication, one line per direction */
  replication?: string[] | undefined;
  /** a note on the charts when they could not be attached */
  chartsNote?: string | undefined;
}
