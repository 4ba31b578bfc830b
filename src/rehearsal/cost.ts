import {
  type CostExplorerProxy,
  costAndUsageDay,
  type ForecastFigures,
  seedCostAndUsage,
  startCostExplorerProxy,
} from "../sandbox/cost-explorer-proxy.js";

/**
 * The bill a rehearsal shows: what the plan's stack (migration.example.yml's `cost.target`)
 * would cost a day in ap-southeast-1, so `/migrate cost`, the cost.report step and the daily
 * digest have real-looking figures: about $70 a month against the plan's $85 target.
 */

/** Cost Explorer's SERVICE names for the plan's lines, and what each costs a day (USD). */
const DAILY: Record<string, { base: number; wobble: number }> = {
  // the $44 bundle billed by the hour (44 / 730 h × 24 h), the same every day
  "Amazon Lightsail": { base: 1.4466, wobble: 0 },
  // db.t4g.micro by the hour, 20 GB gp3 and backups
  "Amazon Relational Database Service": { base: 0.69, wobble: 0.03 },
  // storage and requests, with the day's uploads
  "Amazon Simple Storage Service": { base: 0.1, wobble: 0.25 },
  // traffic: more on some days than others
  "Amazon CloudFront": { base: 0.06, wobble: 0.4 },
};

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** A deterministic number in [-1, 1) for a day and a service: the same bill every rehearsal. */
function jitter(date: string, service: string): number {
  let h = 2166136261;
  for (const ch of `${date}|${service}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return ((h >>> 0) % 2000) / 1000 - 1;
}

/** What each service costs on `date` ("YYYY-MM-DD"). */
export function dailyCosts(date: string): Record<string, number> {
  return Object.fromEntries(
    Object.entries(DAILY).map(([service, d]) => [
      service,
      Math.round(d.base * (1 + d.wobble * jitter(date, service)) * 10_000) / 10_000,
    ]),
  );
}

const total = (date: string) => Object.values(dailyCosts(date)).reduce((a, b) => a + b, 0);

/** Cost Explorer's forecast over [start, end): the same bill carried on, ±12 % at 80 %. */
export function forecastFor(period: { start: string; end: string }): ForecastFigures {
  let sum = 0;
  for (
    let t = Date.parse(`${period.start}T00:00:00Z`);
    t < Date.parse(`${period.end}T00:00:00Z`);
    t += DAY_MS
  )
    sum += total(isoDay(t));
  return { amount: sum.toFixed(2), low: (sum * 0.88).toFixed(2), high: (sum * 1.12).toFixed(2) };
}

/**
 * The rehearsal's Cost Explorer: moto seeded with every day from the 1st of last month to the
 * end of next month (the bot reads only complete days up to its "today", and the digest's
 * "next morning" may fall in the next month), behind the sandbox proxy that answers the
 * forecast and an RDS reservation recommendation (for the example file's db.t4g.micro).
 */
export async function startRehearsalCostExplorer(
  motoEndpoint: string,
  now = new Date(),
): Promise<CostExplorerProxy> {
  const from = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1);
  const to = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 2, 1);
  const days = [];
  for (let t = from; t < to; t += DAY_MS) days.push(costAndUsageDay(isoDay(t), dailyCosts(isoDay(t))));
  // moto hands each new set of request parameters the next queued result: the cost.report
  // step and `/migrate cost` ask for today, the digest for the next morning, a refresh again
  await seedCostAndUsage(motoEndpoint, days, 4);
  return startCostExplorerProxy(motoEndpoint, {
    forecast: forecastFor,
    reservation: {
      instanceType: "db.t4g.micro",
      engine: "PostgreSQL",
      count: 1,
      upfrontCost: "132.00",
      monthlySavings: "6.65",
      savingsPercent: "38.0",
      breakEvenMonths: "7.9",
    },
  });
}
