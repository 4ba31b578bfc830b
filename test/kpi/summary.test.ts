import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DB_TARGET, kpiDaily, kpiSummary } from "../../src/kpi/summary.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let state: TestDatabase;
let db: Db;

beforeAll(async () => {
  state = await createTestDatabase("kpi_summary");
  db = createPrismaClient(state.url);
});
afterAll(async () => {
  await db?.$disconnect();
  await state?.drop();
});
beforeEach(async () => {
  await db.kpiSample.deleteMany();
});

const T0 = Date.parse("2026-11-20T00:00:00Z");
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

describe("kpiSummary", () => {
  it("derives availability, error rate, avg and p95 latency and database time over a window", async () => {
    const rows = [];
    // api: 20 probes, latencies 10..200 ms; one 503 and one timeout among them
    for (let i = 1; i <= 20; i++) {
      if (i === 5)
        rows.push({ at: at(i), target: "api", ok: false, status: 503, latencyMs: 4, error: "HTTP 503" });
      else if (i === 6)
        rows.push({
          at: at(i),
          target: "api",
          ok: false,
          status: null,
          latencyMs: null,
          error: "no answer within 500 ms",
        });
      else rows.push({ at: at(i), target: "api", ok: true, status: 200, latencyMs: i * 10, error: null });
    }
    // web: 10 good probes at 100 ms, one 404 (answered, so up, but an error)
    for (let i = 1; i <= 10; i++)
      rows.push({ at: at(i), target: "web", ok: true, status: 200, latencyMs: 100, error: null });
    rows.push({ at: at(11), target: "web", ok: false, status: 404, latencyMs: 3, error: "HTTP 404" });
    // database: 4 queries, one failed
    for (const [i, ms] of [2, 4, 6].entries())
      rows.push({ at: at(i + 1), target: DB_TARGET, ok: true, status: null, latencyMs: ms, error: null });
    rows.push({
      at: at(9),
      target: DB_TARGET,
      ok: false,
      status: null,
      latencyMs: null,
      error: "target database: gone",
    });
    // outside the window
    rows.push({ at: at(200), target: "api", ok: false, status: 500, latencyMs: 1, error: "HTTP 500" });
    await db.kpiSample.createMany({ data: rows });

    const s = await kpiSummary(db, { from: at(0), to: at(100) });
    // 31 endpoint probes: 3 failed (503, timeout, 404); down = the 503 and the timeout
    expect(s.endpoints.samples).toBe(31);
    expect(s.endpoints.failures).toBe(3);
    expect(s.endpoints.availabilityPercent).toBeCloseTo((29 / 31) * 100, 2);
    expect(s.endpoints.errorRatePercent).toBeCloseTo((3 / 31) * 100, 2);
    // latency of the 28 good probes: api 18 values (10..200 without 50, 60) + web 10 × 100
    const good = [
      ...Array.from({ length: 20 }, (_, k) => (k + 1) * 10).filter((v) => v !== 50 && v !== 60),
      ...Array(10).fill(100),
    ];
    expect(s.endpoints.avgMs).toBeCloseTo(good.reduce((a, b) => a + b, 0) / good.length, 1);
    const sorted = [...good].sort((a, b) => a - b);
    expect(s.endpoints.p95Ms).toBe(sorted[Math.ceil(0.95 * sorted.length) - 1]);
    expect(s.byEndpoint.map((e) => e.target)).toEqual(["api", "web"]);
    expect(s.byEndpoint[0]).toMatchObject({
      samples: 20,
      failures: 2,
      availabilityPercent: 90,
      lastError: "no answer within 500 ms",
    });
    expect(s.byEndpoint[1]).toMatchObject({
      samples: 11,
      failures: 1,
      availabilityPercent: 100,
      lastError: "HTTP 404",
    });
    expect(s.database).toMatchObject({
      samples: 4,
      failures: 1,
      avgMs: 4,
      p95Ms: 6,
      lastError: "target database: gone",
    });
  });

  it("gives undefined figures, not zeros, for a window without samples", async () => {
    const s = await kpiSummary(db, { from: at(0), to: at(10) });
    expect(s.endpoints).toEqual({
      samples: 0,
      failures: 0,
      availabilityPercent: undefined,
      errorRatePercent: undefined,
      avgMs: undefined,
      p95Ms: undefined,
    });
    expect(s.byEndpoint).toEqual([]);
    expect(s.database.samples).toBe(0);
  });

  it("refuses a window that ends before it starts, saying so", async () => {
    await expect(kpiSummary(db, { from: at(10), to: at(0) })).rejects.toThrow(
      "`from` is after `to` — swap the two",
    );
    await expect(kpiSummary(db, { from: new Date("nope"), to: at(0) })).rejects.toThrow("two valid dates");
  });
});

describe("kpiDaily", () => {
  it("gives one entry per local day, oldest first, with empty days present", async () => {
    const rows = [];
    // 2026-11-18 and 2026-11-20 (Singapore days); nothing on the 19th
    const sg = (iso: string) => new Date(`${iso}+08:00`);
    rows.push({
      at: sg("2026-11-18T10:00:00"),
      target: "api",
      ok: true,
      status: 200,
      latencyMs: 100,
      error: null,
    });
    rows.push({
      at: sg("2026-11-18T11:00:00"),
      target: "api",
      ok: false,
      status: 502,
      latencyMs: 5,
      error: "HTTP 502",
    });
    rows.push({
      at: sg("2026-11-18T12:00:00"),
      target: DB_TARGET,
      ok: true,
      status: null,
      latencyMs: 3,
      error: null,
    });
    // 00:30 on the 20th in Singapore is still the 19th in UTC
    rows.push({
      at: sg("2026-11-20T00:30:00"),
      target: "api",
      ok: true,
      status: 200,
      latencyMs: 300,
      error: null,
    });
    await db.kpiSample.createMany({ data: rows });

    const now = sg("2026-11-20T09:00:00");
    const days = await kpiDaily(db, 3, { now, timeZone: "Asia/Singapore" });
    expect(days.map((d) => d.day)).toEqual(["2026-11-18", "2026-11-19", "2026-11-20"]);
    expect(days[0]).toMatchObject({
      samples: 2,
      failures: 1,
      availabilityPercent: 50,
      avgMs: 100,
      dbSamples: 1,
      dbAvgMs: 3,
    });
    expect(days[1]).toMatchObject({ samples: 0, availabilityPercent: undefined, avgMs: undefined });
    expect(days[2]).toMatchObject({ samples: 1, availabilityPercent: 100, avgMs: 300 });

    const utc = await kpiDaily(db, 2, { now, timeZone: "UTC" });
    expect(utc.map((d) => [d.day, d.samples])).toEqual([
      ["2026-11-19", 1],
      ["2026-11-20", 0],
    ]);
    const yesterday = await kpiDaily(db, 1, { now, timeZone: "Asia/Singapore", includeToday: false });
    expect(yesterday.map((d) => d.day)).toEqual(["2026-11-19"]);
  });

  it("says what is wrong with a bad time zone or day count", async () => {
    await expect(kpiDaily(db, 7, { timeZone: "Mars/Olympus" })).rejects.toThrow(
      "`Mars/Olympus` is not a time zone — use an IANA name such as Asia/Singapore or UTC",
    );
    await expect(kpiDaily(db, 0)).rejects.toThrow("ask for a whole number from 1 to 366");
  });
});
