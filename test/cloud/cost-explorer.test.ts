import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  COST_EXPLORER_REGION,
  type CostReport,
  costSummary,
  createCostExplorer,
  freshnessText,
} from "../../src/cloud/cost-explorer.js";
import { parseMigrationFile } from "../../src/config/load.js";
import type { MigrationFile } from "../../src/config/schema.js";
import {
  type CostExplorerProxy,
  costAndUsageDay,
  seedCostAndUsage,
  startCostExplorerProxy,
} from "../../src/sandbox/cost-explorer-proxy.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { costView } from "../../src/views/cost.js";
import { renderBlocksAsText } from "../../src/views/text.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { type MotoHandle, useMoto } from "../helpers/moto.js";

/*
 * Cost Explorer through the real SDK client. moto serves GetCostAndUsage from seeded results;
 * it has no GetCostForecast or GetReservationPurchaseRecommendation, so the sandbox's proxy in
 * front of it (src/sandbox/cost-explorer-proxy.ts, the rehearsal's too) answers those (JSON 1.1,
 * as AWS does), counts every request by operation, and can refuse everything with
 * AccessDeniedException.
 */

const FILE_TEXT = (cost = true) => `version: 1
project: shop
environment: cost-test
timezone: Asia/Singapore
slack: { channel: C0MIGRATE }
access: { operators: [U0OP], approvers: [U0AP], channels: [C0MIGRATE] }
${
  cost
    ? `cost:
  monthlyTarget: 85
  budgetAlert: 100
  target:
    - { service: AWS Lightsail, monthly: 44, awsServices: [Amazon Lightsail] }
    - { service: AWS RDS, monthly: { min: 15, max: 30 }, awsServices: [Amazon Relational Database Service] }
    - { service: AWS S3 + CloudFront, monthly: { min: 5, max: 10 }, awsServices: [Amazon Simple Storage Service, Amazon CloudFront] }
  optimisations:
    - { id: rds-reserved, title: RDS RI, savingsPercent: 40, appliesTo: [AWS RDS] }
    - { id: s3-lifecycle, title: S3 lifecycle — archive old files, savingsPercent: { min: 50, max: 80 }, appliesTo: [AWS S3 + CloudFront] }
    - { id: cloudfront-regional, title: CloudFront Asia/Europe edges only, savingsPercent: 20, appliesTo: [AWS S3 + CloudFront] }
`
    : ""
}runbook:
  phases:
    - id: p
      title: P
      steps:
        - { id: report, uses: ${cost ? "cost.report" : "http.check"}, with: {} }
`;

/** Seeds moto's queue with one GetCostAndUsage answer: October every day, November to the 25th. */
async function seedUsage(endpoint: string): Promise<void> {
  const results = [];
  for (let d = 1; d <= 31; d++)
    results.push(
      costAndUsageDay(`2026-10-${String(d).padStart(2, "0")}`, {
        "Amazon Lightsail": 1.4,
        "Amazon Relational Database Service": 0.5,
        "Amazon Simple Storage Service": 0.2,
      }),
    );
  for (let d = 1; d <= 25; d++)
    results.push(
      costAndUsageDay(`2026-11-${String(d).padStart(2, "0")}`, {
        "Amazon Lightsail": 1.45,
        "Amazon Relational Database Service": 0.9,
        "Amazon Simple Storage Service": 0.1,
      }),
    );
  await seedCostAndUsage(endpoint, results);
}

let state: TestDatabase;
let db: Db;
let moto: MotoHandle;
let proxy: CostExplorerProxy;
let file: MigrationFile;
const NOW = new Date("2026-11-26T00:12:00Z"); // 08:12 in Singapore

const ce = (endpoint = proxy.url) =>
  createCostExplorer({
    region: COST_EXPLORER_REGION,
    endpoint,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    maxAttempts: 1,
  });

beforeAll(async () => {
  state = await createTestDatabase("cost");
  db = createPrismaClient(state.url);
  moto = await useMoto({ forcePrivate: true });
  proxy = await startCostExplorerProxy(moto.endpoint);
  file = parseMigrationFile(FILE_TEXT(), { checkEnv: false });
});
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
  await db?.$disconnect();
  await state?.drop();
});
beforeEach(async () => {
  await db.costCache.deleteMany();
  await moto.reset();
  proxy.counts.clear();
  proxy.mode = "normal";
});

const total = (p: CostExplorerProxy) => [...p.counts.values()].reduce((a, b) => a + b, 0);

describe("costSummary", () => {
  it("reports month to date by service, the forecast, movers, the plan lines and the RDS saving", async () => {
    await seedUsage(moto.endpoint);
    const s = (await costSummary({ db, file, costExplorer: ce() }, NOW)) as CostReport;
    expect(s.available).toBe(true);
    // 25 complete days of November: 2.45/day
    expect(s.daysElapsed).toBe(25);
    expect(s.daysInMonth).toBe(30);
    expect(s.monthToDate).toBeCloseTo(61.25, 2);
    expect(s.daily).toHaveLength(25);
    expect(s.daily[0]).toEqual({ date: "2026-11-01", amount: 2.45 });
    expect(s.byService.map((x) => x.service)).toEqual([
      "Amazon Lightsail",
      "Amazon Relational Database Service",
      "Amazon Simple Storage Service",
    ]);
    // last month: 31 days at 2.1; like for like: its first 25 days
    expect(s.lastMonth.total).toBeCloseTo(65.1, 2);
    expect(s.lastMonth.samePeriod).toBeCloseTo(52.5, 2);
    // RDS moved most (+0.4/day × 25 = +10), then S3 (−2.5), then Lightsail (+1.25)
    expect(s.movers.map((m) => [m.service, m.change])).toEqual([
      ["Amazon Relational Database Service", 10],
      ["Amazon Simple Storage Service", -2.5],
      ["Amazon Lightsail", 1.25],
    ]);
    expect(s.forecast).toMatchObject({ available: true, amount: 30.5, low: 25, high: 36 });
    expect(s.projected).toEqual({ amount: 91.75, basis: "forecast" });
    expect(s.status).toBe("over-target");
    expect(s.lines.find((l) => l.service === "AWS RDS")).toMatchObject({
      monthToDate: 22.5,
      projected: 27,
      planned: { min: 15, max: 30 },
    });
    expect(s.reservation).toMatchObject({
      available: true,
      plannedPercent: 40,
      recommendation: { count: 1, instanceType: "db.t4g.micro", monthlySavings: 6.1, upfrontCost: 105 },
    });
    // the plan's optimisations priced on this month's spend; RDS from Cost Explorer's own figure
    const opt = Object.fromEntries(s.optimisations.map((o) => [o.id, o]));
    expect(opt["rds-reserved"]).toMatchObject({ saving: { min: 6.1, max: 6.1 }, source: "cost explorer" });
    const storageLine = s.lines.find((l) => l.service === "AWS S3 + CloudFront")!;
    expect(opt["s3-lifecycle"]!.monthlyBase).toBeCloseTo(storageLine.projected, 2);
    expect(storageLine.projected).toBeGreaterThan(0);
    expect(opt["s3-lifecycle"]!.saving.min).toBeCloseTo(storageLine.projected * 0.5, 2);
    expect(opt["s3-lifecycle"]!.saving.max).toBeCloseTo(storageLine.projected * 0.8, 2);
    expect(opt["cloudfront-regional"]!.saving.max).toBeCloseTo(storageLine.projected * 0.2, 2);
    expect(s.freshness).toBe("as of 08:12 GMT+8, just now");
    expect(s.requests).toBe(3);
    expect(Object.fromEntries(proxy.counts)).toEqual({
      GetCostAndUsage: 1,
      GetCostForecast: 1,
      GetReservationPurchaseRecommendation: 1,
    });

    const text = renderBlocksAsText(costView(s).blocks);
    expect(text).toContain("$61.25 over 25 of 30 days");
    expect(text).toContain("$91.75 ($86.25–$97.25)");
    expect(text).toContain("above the monthly target");
    expect(text).toContain("▲ Amazon Relational Database Service +$10.00 ($12.50 → $22.50)");
    expect(text).toContain("1 × db.t4g.micro saves $6.10/month (42 %), $105.00 upfront");
    expect(text).toContain("The plan expected 40 %");
    expect(text).toContain("RDS RI: saves ~$6.10/month (Cost Explorer's recommendation)");
    expect(text).toMatch(
      /S3 lifecycle — archive old files: saves ~\$[\d.]+–\$[\d.]+\/month \(of \$[\d.]+ on AWS S3 \+ CloudFront\)/,
    );
    expect(text).toContain("as of 08:12 GMT+8, just now");
  });

  it("at the first and the last minute of a month: whole days only, the right month, nothing divided by zero", async () => {
    // October and all of November in Cost Explorer
    const results = [];
    for (const [month, days, perDay] of [
      ["10", 31, 2.1],
      ["11", 30, 2.45],
    ] as const)
      for (let d = 1; d <= days; d++)
        results.push(
          costAndUsageDay(`2026-${month}-${String(d).padStart(2, "0")}`, { "Amazon Lightsail": perDay }),
        );

    // 23:59 UTC on the 30th: the 30th is not complete yet, so 29 of 30 days
    await seedCostAndUsage(moto.endpoint, results);
    const last = (await costSummary(
      { db, file, costExplorer: ce() },
      new Date("2026-11-30T23:59:00Z"),
    )) as CostReport;
    expect(last.available).toBe(true);
    expect([last.daysElapsed, last.daysInMonth]).toEqual([29, 30]);
    expect(last.monthToDate).toBeCloseTo(29 * 2.45, 2);
    expect(last.daily.at(-1)).toEqual({ date: "2026-11-29", amount: 2.45 });
    expect(last.lastMonth.total).toBeCloseTo(31 * 2.1, 2);
    expect(last.lastMonth.samePeriod).toBeCloseTo(29 * 2.1, 2);
    const lastText = renderBlocksAsText(costView(last).blocks);
    expect(lastText).toContain("COST — NOVEMBER 2026");
    expect(lastText).toContain("$71.05 over 29 of 30 days");

    // one minute later it is December: no complete day yet, last month is the whole of November
    await db.costCache.deleteMany();
    await seedCostAndUsage(moto.endpoint, results);
    const first = (await costSummary(
      { db, file, costExplorer: ce() },
      new Date("2026-12-01T00:00:00Z"),
    )) as CostReport;
    expect(first.available).toBe(true);
    expect([first.daysElapsed, first.daysInMonth]).toEqual([0, 31]);
    expect(first.monthToDate).toBe(0);
    expect(first.daily).toEqual([]);
    expect(first.lastMonth.total).toBeCloseTo(30 * 2.45, 2);
    expect(first.lastMonth.samePeriod).toBe(0);
    expect(Number.isFinite(first.projected.amount)).toBe(true);
    const firstText = renderBlocksAsText(costView(first).blocks);
    expect(firstText).toContain("COST — DECEMBER 2026");
    expect(firstText).toContain("$0.00 over 0 of 31 days");
    expect(firstText).not.toMatch(/NaN|Infinity|undefined/);
  });

  it("serves the rest of the day from the cache, says how old it is, and asks again the next day", async () => {
    await seedUsage(moto.endpoint);
    const first = (await costSummary({ db, file, costExplorer: ce() }, NOW)) as CostReport;
    expect(total(proxy)).toBe(3);
    const later = new Date(NOW.getTime() + 3 * 3600_000 + 5 * 60_000);
    const second = (await costSummary({ db, file, costExplorer: ce() }, later)) as CostReport;
    expect(total(proxy)).toBe(3); // no request
    expect(second.requests).toBe(0);
    expect(second.monthToDate).toBe(first.monthToDate);
    expect(second.asOf.toISOString()).toBe(NOW.toISOString());
    expect(second.freshness).toBe("as of 08:12 GMT+8, 3 h ago");
    // `refresh` asks again (moto answers the same body with the same result)
    await costSummary({ db, file, costExplorer: ce() }, later, { refresh: true });
    expect(total(proxy)).toBe(6);
    // a new UTC day asks again
    proxy.counts.clear();
    const tomorrow = new Date("2026-11-27T00:05:00Z");
    await costSummary({ db, file, costExplorer: ce() }, tomorrow);
    expect(proxy.counts.get("GetCostAndUsage")).toBe(1);
  });

  it("turns AccessDenied into 'cost unavailable' naming the IAM permission, without throwing or caching", async () => {
    proxy.mode = "deny";
    const s = await costSummary({ db, file, costExplorer: ce() }, NOW);
    expect(s.available).toBe(false);
    if (s.available) return;
    expect(s.reason).toBe("AWS refused ce:GetCostAndUsage: the credentials Cutover uses may not call it");
    expect(s.permission).toBe("ce:GetCostAndUsage");
    expect(s.hint).toContain(
      "ce:GetCostAndUsage, ce:GetCostForecast and ce:GetReservationPurchaseRecommendation",
    );
    const text = renderBlocksAsText(costView(s).blocks);
    expect(text).toContain("Cost unavailable: AWS refused ce:GetCostAndUsage");
    expect(text).toContain("Missing IAM permission: `ce:GetCostAndUsage`");
    expect(await db.costCache.count()).toBe(0);
    // fixed policy: the next ask works at once
    proxy.mode = "normal";
    await seedUsage(moto.endpoint);
    expect((await costSummary({ db, file, costExplorer: ce() }, NOW)).available).toBe(true);
  });

  it("keeps the report when only the forecast is refused, extrapolating the month instead", async () => {
    await seedUsage(moto.endpoint);
    proxy.mode = "forecast-denied";
    const s = (await costSummary({ db, file, costExplorer: ce() }, NOW)) as CostReport;
    expect(s.available).toBe(true);
    expect(s.forecast).toMatchObject({ available: false, permission: "ce:GetCostForecast" });
    // 61.25 over 25 days → 73.50 over 30
    expect(s.projected).toEqual({ amount: 73.5, basis: "extrapolated" });
    expect(s.status).toBe("on-target");
    expect(renderBlocksAsText(costView(s).blocks)).toContain(
      "~$73.50 _extrapolated: forecast unavailable (AWS refused ce:GetCostForecast",
    );
  });

  it("works against moto alone, which has no forecast: it says plainly that the endpoint does not speak the API", async () => {
    await seedUsage(moto.endpoint);
    const s = (await costSummary({ db, file, costExplorer: ce(moto.endpoint) }, NOW)) as CostReport;
    expect(s.available).toBe(true);
    expect(s.monthToDate).toBeCloseTo(61.25, 2);
    const host = new URL(moto.endpoint).host;
    // moto answers an HTML error page to the operations it lacks
    expect(s.forecast).toMatchObject({
      available: false,
      reason: `Cost Explorer at ${host} answered something that is not its API for ce:GetCostForecast (HTTP 500, text/html) — check AWS_ENDPOINT_URL_COST_EXPLORER and AWS_ENDPOINT_URL`,
    });
    expect(s.reservation).toMatchObject({
      available: false,
      reason: expect.stringContaining(
        `Cost Explorer at ${host} answered something that is not its API for ce:GetReservationPurchaseRecommendation`,
      ),
      hint: expect.stringContaining(`The bot sends Cost Explorer requests to ${moto.endpoint}`),
    });
    const text = renderBlocksAsText(costView(s).blocks);
    expect(text).toContain(
      `forecast unavailable (Cost Explorer at ${host} answered something that is not its API for ce:GetCostForecast`,
    );
    expect(text).toContain("RDS reservation savings unavailable: Cost Explorer at");
    expect(text).not.toMatch(/SyntaxError|Unexpected token|Deserialization error/);
  });

  it("says cost is unavailable, naming the endpoint, when it answers a web page to everything", async () => {
    const page = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!doctype html><html><body>Welcome to nginx!</body></html>");
    });
    await new Promise<void>((r) => page.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
      const s = await costSummary({ db, file, costExplorer: ce(url) }, NOW);
      expect(s).toMatchObject({
        available: false,
        reason: `Cost Explorer at ${new URL(url).host} answered something that is not its API for ce:GetCostAndUsage (HTTP 200, text/html) — check AWS_ENDPOINT_URL_COST_EXPLORER and AWS_ENDPOINT_URL`,
      });
      const text = renderBlocksAsText(costView(s).blocks);
      expect(text).toContain(`Cost unavailable: Cost Explorer at ${new URL(url).host} answered something`);
      expect(text).not.toMatch(/SyntaxError|Unexpected token|Deserialization error/);
      expect(await db.costCache.count()).toBe(0);
    } finally {
      page.closeAllConnections();
      await new Promise((r) => page.close(r));
    }
  });

  it("says cost is unavailable when Cost Explorer cannot be reached, or the file has no cost section", async () => {
    const down = await costSummary({ db, file, costExplorer: ce("http://127.0.0.1:9") }, NOW);
    expect(down.available).toBe(false);
    if (!down.available) {
      expect(down.reason).toMatch(/Cost Explorer could not be reached|ce:GetCostAndUsage failed/);
      expect(down.hint.length).toBeGreaterThan(10);
    }
    const noCost = parseMigrationFile(FILE_TEXT(false), { checkEnv: false });
    const none = await costSummary({ db, file: noCost, costExplorer: ce() }, NOW);
    expect(none).toMatchObject({ available: false, reason: "the migration file has no `cost` section" });
    expect(total(proxy)).toBe(0);
  });

  it("writes how fresh figures are in the file's time zone", () => {
    const at = new Date("2026-11-26T00:12:00Z");
    expect(freshnessText(at, new Date(at.getTime() + 30_000), "Asia/Singapore")).toBe(
      "as of 08:12 GMT+8, just now",
    );
    expect(freshnessText(at, new Date(at.getTime() + 42 * 60_000), "UTC")).toBe(
      "as of 00:12 UTC, 42 min ago",
    );
  });
});
