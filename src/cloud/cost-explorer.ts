import type { GetCostAndUsageCommandOutput } from "@aws-sdk/client-cost-explorer";
import type { Logger } from "pino";
import type { CostConfig, MigrationFile } from "../config/schema.js";
import type { Db } from "../store/client.js";
import { cachedCost, storeCost } from "../store/cost-cache.js";
import { type AwsClientOptions, awsErrorName, isAccessDenied } from "./aws-access.js";
import { lazyAwsClient } from "./lazy-sdk.js";

/**
 * Cost from AWS Cost Explorer: month to date by service, the forecast to the month's end, last
 * month for the biggest movers, and the RDS reservation recommendation, against the file's
 * `cost.monthlyTarget` and `cost.budgetAlert`. Cost Explorer charges per request, so every
 * answer is cached in the state database for the UTC day it was fetched (Cost Explorer's days
 * are UTC) and the summary says how fresh it is. A failure never throws out of
 * {@link costSummary}: it becomes an "unavailable" result saying why and what to do.
 */

/** Cost Explorer lives in us-east-1 whatever region the stack is in. */
export const COST_EXPLORER_REGION = "us-east-1";
/** Cost Explorer's SERVICE name for RDS (reservations are recommended per service). */
export const RDS_SERVICE = "Amazon Relational Database Service";
/** The metric read everywhere: what the bill shows before credits and discounts. */
const METRIC = "UnblendedCost";

/** One service's cost on one UTC day. */
export interface DailyServiceCost {
  /** YYYY-MM-DD */
  date: string;
  service: string;
  amount: number;
  unit: string;
}

export interface CostForecast {
  /** forecast spend over the period asked (today to the month's end) */
  amount: number;
  /** the 80 % prediction interval, when Cost Explorer gives one */
  low?: number | undefined;
  high?: number | undefined;
  unit: string;
}

export interface ReservationRecommendation {
  /** how many instances to reserve, of which type */
  count: number;
  instanceType: string | undefined;
  monthlySavings: number;
  savingsPercent: number | undefined;
  upfrontCost: number | undefined;
  breakEvenMonths: number | undefined;
  currency: string;
  term: "ONE_YEAR";
  payment: "ALL_UPFRONT";
}

/**
 * The Cost Explorer calls Cutover makes. Errors are the SDK's own (see {@link explainCostError}).
 *
 * @example const rows = await ce.costByServiceDaily("2026-10-01", "2026-11-26");
 */
export interface CostExplorerApi {
  /** where requests go when not to AWS itself (AWS_ENDPOINT_URL_COST_EXPLORER), for messages */
  readonly endpoint?: string | undefined;
  /** GetCostAndUsage, DAILY, grouped by SERVICE, over [from, to) (UTC dates), every page */
  costByServiceDaily(from: string, to: string): Promise<DailyServiceCost[]>;
  /** GetCostForecast, MONTHLY, over [from, to) */
  forecast(from: string, to: string): Promise<CostForecast>;
  /** GetReservationPurchaseRecommendation, one year all upfront, 30 days' look-back; undefined when none */
  reservationRecommendation(service: string): Promise<ReservationRecommendation | undefined>;
}

const num = (v: string | undefined): number | undefined => {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
};

/** The adapter over `@aws-sdk/client-cost-explorer`; built by the ports (src/ports.ts) only. */
export function createCostExplorer(opts: AwsClientOptions): CostExplorerApi {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-cost-explorer"),
    (sdk) =>
      new sdk.CostExplorerClient({
        region: opts.region,
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
        ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
      }),
  );
  return {
    endpoint: opts.endpoint,
    async costByServiceDaily(from, to) {
      const rows: DailyServiceCost[] = [];
      let token: string | undefined;
      for (let page = 0; page < 50; page++) {
        const out: GetCostAndUsageCommandOutput = await client.send(
          (sdk) =>
            new sdk.GetCostAndUsageCommand({
              TimePeriod: { Start: from, End: to },
              Granularity: "DAILY",
              Metrics: [METRIC],
              GroupBy: [{ Type: "DIMENSION", Key: "SERVICE" }],
              ...(token ? { NextPageToken: token } : {}),
            }),
        );
        for (const day of out.ResultsByTime ?? []) {
          const date = day.TimePeriod?.Start;
          // only the days asked for: an answer that carries others (a stand-in's canned result, a
          // proxy's) would otherwise be summed into the wrong month
          if (!date || date < from || date >= to) continue;
          for (const g of day.Groups ?? []) {
            const m = g.Metrics?.[METRIC];
            const amount = num(m?.Amount);
            if (amount === undefined) continue;
            rows.push({ date, service: g.Keys?.[0] ?? "(unknown service)", amount, unit: m?.Unit ?? "USD" });
          }
        }
        token = out.NextPageToken;
        if (!token) break;
      }
      return rows;
    },
    async forecast(from, to) {
      const out = await client.send(
        (sdk) =>
          new sdk.GetCostForecastCommand({
            TimePeriod: { Start: from, End: to },
            Metric: "UNBLENDED_COST",
            Granularity: "MONTHLY",
            PredictionIntervalLevel: 80,
          }),
      );
      const amount = num(out.Total?.Amount);
      if (amount === undefined)
        throw Object.assign(new Error("the forecast came back empty"), { name: "EmptyForecast" });
      const intervals = out.ForecastResultsByTime ?? [];
      const sum = (k: "PredictionIntervalLowerBound" | "PredictionIntervalUpperBound") => {
        const values = intervals.map((r) => num(r[k]));
        return values.length && values.every((v) => v !== undefined)
          ? values.reduce((a, b) => (a ?? 0) + (b ?? 0), 0)
          : undefined;
      };
      return {
        amount,
        low: sum("PredictionIntervalLowerBound"),
        high: sum("PredictionIntervalUpperBound"),
        unit: out.Total?.Unit ?? "USD",
      };
    },
    async reservationRecommendation(service) {
      const out = await client.send(
        (sdk) =>
          new sdk.GetReservationPurchaseRecommendationCommand({
            Service: service,
            LookbackPeriodInDays: "THIRTY_DAYS",
            TermInYears: "ONE_YEAR",
            PaymentOption: "ALL_UPFRONT",
          }),
      );
      const rec = out.Recommendations?.[0];
      const details = rec?.RecommendationDetails ?? [];
      const summary = rec?.RecommendationSummary;
      const savings = num(summary?.TotalEstimatedMonthlySavingsAmount);
      if (!rec || savings === undefined || details.length === 0) return undefined;
      const first = details[0];
      return {
        count: details.reduce((n, d) => n + (num(d.RecommendedNumberOfInstancesToPurchase) ?? 0), 0),
        instanceType: first?.InstanceDetails?.RDSInstanceDetails?.InstanceType,
        monthlySavings: savings,
        savingsPercent: num(summary?.TotalEstimatedMonthlySavingsPercentage),
        upfrontCost: details.reduce<number | undefined>((n, d) => {
          const u = num(d.UpfrontCost);
          return u === undefined ? n : (n ?? 0) + u;
        }, undefined),
        breakEvenMonths: num(first?.EstimatedBreakEvenInMonths),
        currency: summary?.CurrencyCode ?? first?.CurrencyCode ?? "USD",
        term: "ONE_YEAR",
        payment: "ALL_UPFRONT",
      };
    },
  };
}

// ───────────────────────────── why cost is unavailable ─────────────────────────────

/** Why a part of the cost report could not be had, and what to do about it. */
export interface CostProblem {
  reason: string;
  /** the IAM action to allow, when the credentials lacked it */
  permission?: string | undefined;
  hint: string;
}

const PERMISSIONS = "ce:GetCostAndUsage, ce:GetCostForecast and ce:GetReservationPurchaseRecommendation";
/** Where the SDK sends Cost Explorer requests when no endpoint is configured. */
const AWS_HOST = `ce.${COST_EXPLORER_REGION}.amazonaws.com`;

/**
 * Whether the SDK could not read the answer as Cost Explorer's API: a web page, another
 * service's error, a stand-in without the operation (moto has no GetCostForecast).
 */
function notTheApi(err: unknown): boolean {
  const e = err as { name?: string; message?: string; $response?: unknown };
  return /Deserialization error/i.test(e?.message ?? "") || (e?.name === "SyntaxError" && !!e.$response);
}

/** "HTTP 500, text/html" from the raw answer an SDK error carries, when it has one. */
function answerShape(err: unknown): string {
  const r = (err as { $response?: { statusCode?: number; headers?: Record<string, string> } })?.$response;
  const type = r?.headers?.["content-type"]?.split(";")[0]?.trim();
  return [r?.statusCode ? `HTTP ${r.statusCode}` : undefined, type].filter(Boolean).join(", ");
}

function hostOf(endpoint: string | undefined): string {
  if (!endpoint) return AWS_HOST;
  try {
    return new URL(endpoint).host;
  } catch {
    return endpoint;
  }
}

/**
 * Turns an error of a Cost Explorer call into a sentence and a next step; never throws.
 * `endpoint` is where the call went (unset: AWS itself), to name it when it answered nonsense.
 */
export function explainCostError(err: unknown, action: string, endpoint?: string): CostProblem {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string } };
  const message = (e?.message ?? String(err)).slice(0, 240);
  const name = awsErrorName(err);
  if (notTheApi(err)) {
    const shape = answerShape(err);
    return {
      reason: `Cost Explorer at ${hostOf(endpoint)} answered something that is not its API for ${action}${shape ? ` (${shape})` : ""} — check AWS_ENDPOINT_URL_COST_EXPLORER and AWS_ENDPOINT_URL`,
      hint: endpoint
        ? `The bot sends Cost Explorer requests to ${endpoint} (AWS_ENDPOINT_URL_COST_EXPLORER, else AWS_ENDPOINT_URL): point it at Cost Explorer or a stand-in that speaks its API, or unset it to use AWS.`
        : "Something between the bot and AWS (an HTTPS proxy, a captive portal) answered instead: check the bot's outbound network.",
    };
  }
  if (isAccessDenied(err)) {
    if (/not enabled for cost explorer/i.test(message)) {
      return {
        reason: "Cost Explorer is not enabled for this AWS account",
        hint: "Enable it once in the AWS Billing console (Cost Explorer → Launch); data appears within 24 h.",
      };
    }
    return {
      reason: `AWS refused ${action}: the credentials Cutover uses may not call it`,
      permission: action,
      hint: `Add ${PERMISSIONS} (Resource "*") to the IAM policy of the user or role the bot runs as. (AWS said: ${message})`,
    };
  }
  if (name === "CredentialsProviderError" || /could not load credentials/i.test(message)) {
    return {
      reason: "no AWS credentials were found",
      hint: "Give the bot credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance role.",
    };
  }
  if (name === "DataUnavailableException") {
    return {
      reason: "Cost Explorer has no data for this period yet",
      hint: "New accounts and new months take up to 24 h to show data; it will appear by itself.",
    };
  }
  const code = e?.code ?? e?.cause?.code;
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ETIMEDOUT" || name === "TimeoutError") {
    return {
      reason: `Cost Explorer could not be reached (${code ?? name})`,
      hint: "Check the bot's outbound network (ce.us-east-1.amazonaws.com, port 443) or AWS_ENDPOINT_URL_COST_EXPLORER.",
    };
  }
  return {
    reason: `${action} failed: ${name ? `${name}: ` : ""}${message}`,
    hint: "Try `/migrate cost refresh` later; if it persists, check the AWS Health dashboard.",
  };
}

// ───────────────────────────── dates (UTC) ─────────────────────────────

const DAY_MS = 24 * 3600_000;
/** YYYY-MM-DD of a UTC instant */
export const utcDay = (d: Date): string => d.toISOString().slice(0, 10);
const monthStart = (d: Date, offset = 0) =>
  new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
const daysInMonth = (d: Date) => Math.round((monthStart(d, 1).getTime() - monthStart(d).getTime()) / DAY_MS);

// ───────────────────────────── the daily cache ─────────────────────────────

interface Cached<T> {
  value: T;
  fetchedAt: Date;
  /** true when this call asked Cost Explorer (false: from the cache) */
  fresh: boolean;
}

/**
 * The answer for `key` fetched today (UTC), or a new one from `fetch`, stored for the rest of the
 * day. Failures are not cached: a fixed IAM policy shows at the next ask.
 */
async function cachedForDay<T>(
  db: Db,
  key: string,
  now: Date,
  refresh: boolean,
  fetch: () => Promise<T>,
): Promise<Cached<T>> {
  const day = utcDay(now);
  if (!refresh) {
    const hit = await cachedCost<T>(db, key, day);
    if (hit) return { ...hit, fresh: false };
  }
  const value = await fetch();
  await storeCost(db, key, day, now, value);
  return { value, fetchedAt: now, fresh: true };
}

// ───────────────────────────── the summary ─────────────────────────────

export interface CostDeps {
  db: Db;
  file: MigrationFile;
  costExplorer: CostExplorerApi;
  log?: Logger;
}

export interface ServiceCost {
  service: string;
  monthToDate: number;
  /** the same days of last month (1st to the day before today's date) */
  lastMonthSamePeriod: number;
  change: number;
}

/** A cost line of the plan (`cost.target`) against what its AWS services cost. */
export interface PlannedLine {
  service: string;
  awsServices: string[];
  monthToDate: number;
  /** month to date scaled to the whole month */
  projected: number;
  planned: { min: number; max: number };
}

export type CostPart<T> = ({ available: true } & T) | ({ available: false } & CostProblem);

export interface CostReport {
  available: true;
  currency: string;
  /** when the figures were fetched from Cost Explorer */
  asOf: Date;
  /** "as of 08:12, 3 h ago" (in the file's time zone) */
  freshness: string;
  /** how many Cost Explorer requests this call made (0 when all came from today's cache) */
  requests: number;
  /** UTC days of this month with complete data (1st to yesterday) */
  daysElapsed: number;
  daysInMonth: number;
  monthToDate: number;
  /** this month by day, oldest first, for charts */
  daily: Array<{ date: string; amount: number }>;
  byService: ServiceCost[];
  /** the largest changes against the same days of last month, largest first */
  movers: ServiceCost[];
  lastMonth: { total: number; samePeriod: number };
  forecast: CostPart<{ amount: number; low: number | undefined; high: number | undefined }>;
  /** month to date plus the forecast, or extrapolated from the month so far when there is no forecast */
  projected: { amount: number; basis: "forecast" | "extrapolated" };
  monthlyTarget: number;
  budgetAlert: number;
  status: "on-target" | "over-target" | "over-budget";
  lines: PlannedLine[];
  reservation: CostPart<{
    recommendation: ReservationRecommendation | undefined;
    plannedPercent: number | undefined;
  }>;
  /** the plan's optimisations (`cost.optimisations`) priced on this month's projected spend */
  optimisations: OptimisationFigure[];
}

/** One of the plan's cost optimisations as a figure: what it saves a month on today's spend. */
export interface OptimisationFigure {
  id: string;
  title: string;
  /** the plan's cost lines it applies to, and their projected spend this month */
  appliesTo: string[];
  monthlyBase: number;
  saving: { min: number; max: number };
  /** "cost explorer" when AWS's own recommendation gives the figure (RDS reservations) */
  source: "plan" | "cost explorer";
}

/**
 * The plan's optimisations priced on this month's projected spend per plan line: the saving is
 * the line's projection times the plan's percentage (a range stays a range). Where Cost Explorer
 * recommends an RDS reservation, its monthly saving replaces the plan's estimate.
 */
export function optimisationFigures(
  cost: CostConfig,
  lines: readonly PlannedLine[],
  reservation: CostReport["reservation"],
): OptimisationFigure[] {
  const projected = new Map(lines.map((l) => [l.service, l.projected]));
  return cost.optimisations.map((o) => {
    const base = money(o.appliesTo.reduce((sum, line) => sum + (projected.get(line) ?? 0), 0));
    const [lo, hi] =
      typeof o.savingsPercent === "number"
        ? [o.savingsPercent, o.savingsPercent]
        : [o.savingsPercent.min, o.savingsPercent.max];
    const rds = o.appliesTo.some((a) => /\bRDS\b/.test(a));
    if (rds && reservation.available && reservation.recommendation) {
      const m = money(reservation.recommendation.monthlySavings);
      return {
        id: o.id,
        title: o.title,
        appliesTo: o.appliesTo,
        monthlyBase: base,
        saving: { min: m, max: m },
        source: "cost explorer",
      };
    }
    return {
      id: o.id,
      title: o.title,
      appliesTo: o.appliesTo,
      monthlyBase: base,
      saving: { min: money((base * lo) / 100), max: money((base * hi) / 100) },
      source: "plan",
    };
  });
}

export type CostSummary = CostReport | ({ available: false; currency: string } & CostProblem);

/** "08:12 GMT+8" in a time zone (a time without its zone is read in the reader's own), and "3 h ago". */
export function freshnessText(fetchedAt: Date, now: Date, timeZone: string): string {
  const hhmm = new Intl.DateTimeFormat("en-GB", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
    timeZoneName: "short",
  }).format(fetchedAt);
  const ms = Math.max(0, now.getTime() - fetchedAt.getTime());
  const ago =
    ms < 60_000
      ? "just now"
      : ms < 3600_000
        ? `${Math.floor(ms / 60_000)} min ago`
        : `${Math.floor(ms / 3600_000)} h ago`;
  return `as of ${hhmm}, ${ago}`;
}

const money = (n: number) => Math.round(n * 100) / 100;

/** The plan's saving for RDS reservations (`cost.optimisations` applying to an RDS line), in percent. */
function plannedRdsPercent(cost: CostConfig): number | undefined {
  const rdsLines = new Set(
    cost.target
      .filter((l) => l.awsServices.includes(RDS_SERVICE) || /\bRDS\b/.test(l.service))
      .map((l) => l.service),
  );
  const opt = cost.optimisations.find((o) => o.appliesTo.some((a) => rdsLines.has(a)));
  if (!opt) return undefined;
  return typeof opt.savingsPercent === "number" ? opt.savingsPercent : opt.savingsPercent.max;
}

/**
 * The cost report for `now`: from today's cache when there is one (no request), else from Cost
 * Explorer (at most three requests: usage, forecast, reservations). Never throws.
 *
 * @example const cost = await costSummary({ db, file, costExplorer }, new Date());
 * if (!cost.available) say(`cost unavailable: ${cost.reason}. ${cost.hint}`);
 */
export async function costSummary(
  deps: CostDeps,
  now: Date,
  opts: { refresh?: boolean } = {},
): Promise<CostSummary> {
  const { db, file, costExplorer: ce } = deps;
  const cost = file.cost;
  if (!cost) {
    return {
      available: false,
      currency: "USD",
      reason: "the migration file has no `cost` section",
      hint: "Add `cost:` with `monthlyTarget` and `budgetAlert` (migration.example.yml has one).",
    };
  }
  const refresh = opts.refresh === true;
  const env = file.environment;
  const thisMonth = monthStart(now);
  const lastMonth = monthStart(now, -1);
  const today = utcDay(now);
  let requests = 0;

  // 1. Usage: one request covers last month and this month to yesterday (complete days).
  let usage: Cached<DailyServiceCost[]>;
  try {
    usage = await cachedForDay(db, `usage:${env}`, now, refresh, async () => {
      requests++;
      return ce.costByServiceDaily(utcDay(lastMonth), today);
    });
  } catch (err) {
    const problem = explainCostError(err, "ce:GetCostAndUsage", ce.endpoint);
    deps.log?.warn({ reason: problem.reason }, "cost unavailable");
    return { available: false, currency: cost.currency, ...problem };
  }

  // 2. The forecast from today to the month's end, and 3. the RDS reservation recommendation:
  // either may fail on its own (a new account has no forecast) without losing the rest.
  let forecast: CostReport["forecast"];
  try {
    const f = await cachedForDay(db, `forecast:${env}`, now, refresh, async () => {
      requests++;
      return ce.forecast(today, utcDay(monthStart(now, 1)));
    });
    forecast = { available: true, amount: money(f.value.amount), low: f.value.low, high: f.value.high };
  } catch (err) {
    forecast = { available: false, ...explainCostError(err, "ce:GetCostForecast", ce.endpoint) };
  }
  let reservation: CostReport["reservation"];
  try {
    const r = await cachedForDay(db, `reservation:${env}`, now, refresh, async () => {
      requests++;
      return (await ce.reservationRecommendation(RDS_SERVICE)) ?? null;
    });
    reservation = {
      available: true,
      recommendation: r.value ?? undefined,
      plannedPercent: plannedRdsPercent(cost),
    };
  } catch (err) {
    reservation = {
      available: false,
      ...explainCostError(err, "ce:GetReservationPurchaseRecommendation", ce.endpoint),
    };
  }

  // Figures. Like for like: this month's complete days against the same days of last month.
  const rows = usage.value;
  const thisStart = utcDay(thisMonth);
  const daysElapsed = Math.round(
    (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - thisMonth.getTime()) / DAY_MS,
  );
  const sameEnd = utcDay(
    new Date(lastMonth.getTime() + Math.min(daysElapsed, daysInMonth(lastMonth)) * DAY_MS),
  );
  const services = new Map<string, ServiceCost>();
  const service = (name: string) => {
    let s = services.get(name);
    if (!s) {
      s = { service: name, monthToDate: 0, lastMonthSamePeriod: 0, change: 0 };
      services.set(name, s);
    }
    return s;
  };
  const daily = new Map<string, number>();
  let lastMonthTotal = 0;
  let lastMonthSame = 0;
  for (const r of rows) {
    if (r.date >= thisStart && r.date < today) {
      service(r.service).monthToDate += r.amount;
      daily.set(r.date, (daily.get(r.date) ?? 0) + r.amount);
    } else if (r.date < thisStart) {
      lastMonthTotal += r.amount;
      if (r.date < sameEnd) {
        service(r.service).lastMonthSamePeriod += r.amount;
        lastMonthSame += r.amount;
      }
    }
  }
  const byService = [...services.values()]
    .map((s) => ({
      ...s,
      monthToDate: money(s.monthToDate),
      lastMonthSamePeriod: money(s.lastMonthSamePeriod),
      change: money(s.monthToDate - s.lastMonthSamePeriod),
    }))
    .sort((a, b) => b.monthToDate - a.monthToDate || a.service.localeCompare(b.service));
  const monthToDate = money(byService.reduce((n, s) => n + s.monthToDate, 0));
  const movers = byService
    .filter((s) => Math.abs(s.change) >= 0.01)
    .sort((a, b) => Math.abs(b.change) - Math.abs(a.change))
    .slice(0, 5);
  const dim = daysInMonth(now);
  const projected: CostReport["projected"] = forecast.available
    ? { amount: money(monthToDate + forecast.amount), basis: "forecast" }
    : { amount: money(daysElapsed > 0 ? (monthToDate / daysElapsed) * dim : 0), basis: "extrapolated" };
  const status: CostReport["status"] =
    projected.amount > cost.budgetAlert || monthToDate > cost.budgetAlert
      ? "over-budget"
      : projected.amount > cost.monthlyTarget
        ? "over-target"
        : "on-target";
  const lines: PlannedLine[] = cost.target
    .filter((l) => l.awsServices.length > 0)
    .map((l) => {
      const mtd = money(l.awsServices.reduce((n, s) => n + (services.get(s)?.monthToDate ?? 0), 0));
      return {
        service: l.service,
        awsServices: l.awsServices,
        monthToDate: mtd,
        projected: money(daysElapsed > 0 ? (mtd / daysElapsed) * dim : 0),
        planned: typeof l.monthly === "number" ? { min: l.monthly, max: l.monthly } : l.monthly,
      };
    });
  const unit = rows[0]?.unit;
  if (unit && unit !== cost.currency)
    deps.log?.warn(
      { unit, currency: cost.currency },
      "Cost Explorer reports another currency than cost.currency",
    );

  return {
    available: true,
    currency: unit ?? cost.currency,
    asOf: usage.fetchedAt,
    freshness: freshnessText(usage.fetchedAt, now, file.timezone),
    requests,
    daysElapsed,
    daysInMonth: dim,
    monthToDate,
    daily: [...daily.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([date, amount]) => ({ date, amount: money(amount) })),
    byService,
    movers,
    lastMonth: { total: money(lastMonthTotal), samePeriod: money(lastMonthSame) },
    forecast,
    projected,
    monthlyTarget: cost.monthlyTarget,
    budgetAlert: cost.budgetAlert,
    status,
    lines,
    reservation,
    optimisations: optimisationFigures(cost, lines, reservation),
  };
}
