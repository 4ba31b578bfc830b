import type { Logger } from "pino";
import { type CostExplorerApi, costSummary } from "../cloud/cost-explorer.js";
import type { MigrationFile } from "../config/schema.js";
import { describeError } from "../errors.js";
import { describeReplication, type LiveDeps, replicationStatus } from "../jobs/cutover/live.js";
import { kpiDaily, kpiSummary } from "../kpi/summary.js";
import type { Db } from "../store/client.js";
import { kpisGreen } from "./compose.js";
import type { DigestSources } from "./publish.js";
import type { CostDigestPart, KpiDigest, KpiDigestPart, KpiTargets } from "./types.js";

/** Milliseconds `timezone` is ahead of UTC at `at`. */
function zoneOffsetMs(at: Date, timezone: string): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  const asUtc = Date.UTC(
    Number(parts.year),
    Number(parts.month) - 1,
    Number(parts.day),
    Number(parts.hour),
    Number(parts.minute),
    Number(parts.second),
  );
  return asUtc - Math.floor(at.getTime() / 1000) * 1000;
}

/** The instant local midnight begins `day` ("YYYY-MM-DD") in `timezone`. */
export function zonedMidnight(day: string, timezone: string): Date {
  const [y, m, d] = day.split("-").map(Number) as [number, number, number];
  const guess = Date.UTC(y, m - 1, d);
  // twice: the offset at the guess may differ from the offset at the answer (a DST change that day)
  const first = guess - zoneOffsetMs(new Date(guess), timezone);
  return new Date(guess - zoneOffsetMs(new Date(first), timezone));
}

/** The plan's long-term targets, as the digest compares against them. */
export function kpiTargets(file: MigrationFile): KpiTargets {
  const t = file.kpis.longTerm;
  return {
    availabilityPct: t.availabilityPercent.min,
    avgMs: t.avgResponseMs.max,
    dbMs: t.dbQueryMs.max,
    errorRatePct: t.errorRatePercent.max,
  };
}

const orNull = (n: number | undefined) => (n === undefined ? null : n);

/** KPIs over [from, to) and the daily series ending with `to`'s day, as the digest shows them. */
export async function kpiDigest(
  db: Db,
  file: MigrationFile,
  window: { from: Date; to: Date; label: string },
  timezone: string,
): Promise<KpiDigest> {
  const s = await kpiSummary(db, { from: window.from, to: window.to });
  const days = await kpiDaily(db, 7, { now: new Date(window.to.getTime() - 1), timeZone: timezone });
  const subject = file.kpis.probes.endpoints.map((e) => new URL(e.url).host).join(", ");
  return {
    window,
    figures: {
      availabilityPct: orNull(s.endpoints.availabilityPercent),
      avgMs: orNull(s.endpoints.avgMs),
      p95Ms: orNull(s.endpoints.p95Ms),
      errorRatePct: orNull(s.endpoints.errorRatePercent),
      dbMs: orNull(s.database.avgMs),
      samples: s.endpoints.samples + s.database.samples,
    },
    targets: kpiTargets(file),
    daily: days.map((d) => ({
      date: d.day,
      availabilityPct: orNull(d.availabilityPercent),
      avgMs: orNull(d.avgMs),
      p95Ms: orNull(d.p95Ms),
    })),
    ...(subject ? { subject } : {}),
  };
}

/**
 * What the daily digest reads: yesterday's KPIs (local to the digest's time zone) from the
 * probe samples, and cost from Cost Explorer (cached for the day). Each part that cannot be had
 * says why instead of failing the digest.
 */
export function digestSources(deps: {
  db: Db;
  file: MigrationFile;
  costExplorer?: CostExplorerApi | undefined;
  log?: Logger;
  /** a live migration's database half: its replication is in the digest */
  live?: LiveDeps | undefined;
}): DigestSources {
  const { db, file, live } = deps;
  return {
    ...(live
      ? {
          async replication() {
            const found = await replicationStatus(live.step);
            return found.length ? found.map(describeReplication) : ["not running"];
          },
        }
      : {}),
    async kpi({ day, timezone }): Promise<KpiDigestPart> {
      const probes = file.kpis.probes;
      if (probes.endpoints.length === 0 && !(probes.database.enabled && file.target?.rds)) {
        return {
          unavailable: "nothing is probed: add endpoints under kpis.probes.endpoints in the migration file",
        };
      }
      try {
        const to = zonedMidnight(day, timezone);
        const from = new Date(to.getTime() - 24 * 3600_000);
        return await kpiDigest(db, file, { from, to, label: "yesterday" }, timezone);
      } catch (err) {
        return { unavailable: `the KPI samples could not be read: ${describeError(err)}` };
      }
    },
    async cost({ now }): Promise<CostDigestPart> {
      if (!file.cost) return { unavailable: "the migration file has no `cost` section" };
      if (!deps.costExplorer) return { unavailable: "no Cost Explorer client in this process" };
      const c = await costSummary(
        { db, file, costExplorer: deps.costExplorer, ...(deps.log ? { log: deps.log } : {}) },
        now,
      );
      if (!c.available) return { unavailable: `${c.reason}. ${c.hint}` };
      return {
        month: now.toISOString().slice(0, 7),
        currency: c.currency,
        monthToDate: c.monthToDate,
        forecast: c.projected.amount,
        target: c.monthlyTarget,
        budget: c.budgetAlert,
        daily: c.daily,
        asOf: c.asOf,
        topServices: [...c.byService]
          .sort((a, b) => b.monthToDate - a.monthToDate)
          .slice(0, 5)
          .map((s) => ({ service: s.service, amount: s.monthToDate })),
        savings: c.optimisations.map((o) => ({ title: o.title, min: o.saving.min, max: o.saving.max })),
      };
    },
  };
}

/**
 * Whether the KPIs stayed within the plan's targets over a window (for decommission): the
 * figures over the whole window, against kpis.longTerm.
 */
export async function kpiWindowGreen(
  db: Db,
  file: MigrationFile,
  window: { since: Date; until: Date },
): Promise<{ green: boolean; detail: string }> {
  const k = await kpiDigest(
    db,
    file,
    { from: window.since, to: window.until, label: "over the window" },
    "UTC",
  );
  const f = k.figures;
  const t = k.targets;
  if (f.samples === 0)
    return { green: false, detail: "no KPI samples over the window: is the kpi.monitor step running?" };
  const show = (v: number | null, unit: string) => (v === null ? "n/a" : `${v}${unit}`);
  const detail = `availability ${show(f.availabilityPct, " %")} (target ≥ ${t.availabilityPct} %), avg ${show(f.avgMs, " ms")} (≤ ${t.avgMs} ms), error rate ${show(f.errorRatePct, " %")} (≤ ${t.errorRatePct} %), database ${show(f.dbMs, " ms")} (≤ ${t.dbMs} ms), from ${f.samples} samples`;
  return { green: kpisGreen(k), detail };
}
