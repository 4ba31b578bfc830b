import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  baseline,
  type Clock,
  latencyStats,
  longestOutage,
  type ProbeResult,
  percentile,
  probeOnce,
  summarize,
  type WatchSample,
  watch,
} from "../../src/cloud/probe.js";
import { isCutoverError } from "../../src/errors.js";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";

describe("probe statistics (pure)", () => {
  const p = (at: number, ok: boolean, ms = 10) => ({ at, ok, ms });

  it("measures downtime from the first failure of the longest run to the next success", () => {
    const probes = [
      p(0, true),
      p(100, false),
      p(200, true),
      p(300, false),
      p(400, false),
      p(500, false),
      p(600, true),
    ];
    expect(longestOutage(probes, 1_000)).toEqual({ from: 300, to: 600, probes: 3, open: false });
    expect(summarize(probes, 1_000).downtimeMs).toBe(300);
  });

  it("runs an outage with no success after it to the window's end", () => {
    const probes = [p(0, true), p(100, false), p(200, true), p(700, false), p(800, false)];
    expect(longestOutage(probes, 1_000)).toEqual({ from: 700, to: 1_000, probes: 2, open: true });
  });

  it("reports no downtime when every probe succeeded, and orders probes by time", () => {
    expect(summarize([p(0, true), p(100, true)], 200)).toMatchObject({ downtimeMs: 0, outage: undefined });
    const shuffled = [p(300, true), p(100, false), p(0, true), p(200, false)];
    expect(longestOutage(shuffled, 400)).toMatchObject({ from: 100, to: 300 });
  });

  it("computes the error rate, and latency over successful probes only", () => {
    const probes = [p(0, true, 10), p(1, true, 20), p(2, true, 30), p(3, false, 5_000)];
    expect(latencyStats(probes)).toEqual({
      samples: 4,
      failures: 1,
      errorRate: 0.25,
      avgMs: 20,
      p95Ms: 30,
      minMs: 10,
      maxMs: 30,
    });
    const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentile(twenty, 95)).toBe(19);
    expect(percentile(twenty, 50)).toBe(10);
    expect(percentile([], 95)).toBeUndefined();
    expect(latencyStats([])).toMatchObject({ samples: 0, errorRate: 0, avgMs: undefined });
  });
});

describe("watch with a fake clock", () => {
  /** time moves only when someone sleeps or a probe takes time */
  function fakeClock(): Clock & { t: number } {
    const clock = {
      t: 1_000_000,
      now: () => clock.t,
      sleep: async (ms: number) => {
        clock.t += ms;
      },
    };
    return clock;
  }

  it("probes on the interval for the window, and measures an outage of the new host", async () => {
    const clock = fakeClock();
    const start = clock.t;
    // the new host is down from 3 s to 7.5 s into the window; each probe takes 20 ms
    const probe = async (url: string): Promise<ProbeResult> => {
      const since = clock.t - start;
      clock.t += 20;
      const down = url === "new" && since >= 3_000 && since < 7_500;
      return down ? { ok: false, status: 502, ms: 20, error: "HTTP 502" } : { ok: true, status: 200, ms: 20 };
    };
    const samples: WatchSample[] = [];
    const report = await watch({
      targets: { new: "new" },
      windowMs: 10_000,
      intervalMs: 1_000,
      clock,
      probe,
      onSample: (s) => samples.push(s),
    });
    expect(samples.map((s) => s.at - start)).toEqual([
      0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000,
    ]);
    expect(report.targets.new).toMatchObject({
      samples: 10,
      failures: 5,
      errorRate: 0.5,
      // failed at 3 s … 7 s; the next success came at 8 s
      downtimeMs: 5_000,
      outage: { from: start + 3_000, to: start + 8_000, probes: 5, open: false },
    });
    expect(report).toMatchObject({ startedAt: start, endedAt: start + 10_000, aborted: false });
  });

  it("does not burst to catch up after a probe slower than the interval", async () => {
    const clock = fakeClock();
    const start = clock.t;
    let n = 0;
    const probe = async (): Promise<ProbeResult> => {
      n++;
      const ms = n === 2 ? 2_500 : 10; // the second probe hangs until its timeout
      clock.t += ms;
      return ms > 1_000 ? { ok: false, ms, error: "no answer" } : { ok: true, status: 200, ms };
    };
    const samples: WatchSample[] = [];
    await watch({
      targets: { t: "t" },
      windowMs: 6_000,
      intervalMs: 1_000,
      clock,
      probe,
      onSample: (s) => samples.push(s),
    });
    expect(samples.map((s) => s.at - start)).toEqual([0, 1_000, 3_500, 4_500, 5_500]);
  });
});

describe("probes against local app servers", () => {
  let oldApp: AppServer;
  let newApp: AppServer;

  beforeAll(async () => {
    oldApp = await startAppServer({ name: "old (Zeabur)" });
    newApp = await startAppServer({ name: "new (Lightsail)", healthPath: "/healthz" });
  });
  afterAll(async () => {
    await oldApp.stop();
    await newApp.stop();
  });

  it("probeOnce: ok on the health path, the status on a failure, refused when nothing listens", async () => {
    const good = await probeOnce(oldApp.healthUrl, { timeoutMs: 1_000 });
    expect(good).toMatchObject({ ok: true, status: 200 });
    expect(good.error).toBeUndefined();
    expect(oldApp.requests().at(-1)).toMatchObject({ path: "/health", status: 200 });

    expect(await probeOnce(`${newApp.url}/missing`, { timeoutMs: 1_000 })).toMatchObject({
      ok: false,
      status: 404,
      error: "HTTP 404",
    });
    newApp.setFailing({ status: 502 });
    expect(await probeOnce(newApp.healthUrl, { timeoutMs: 1_000 })).toMatchObject({ ok: false, status: 502 });
    newApp.setFailing(false);
    expect(await probeOnce(newApp.healthUrl, { timeoutMs: 1_000, expectStatus: 204 })).toMatchObject({
      ok: false,
      status: 200,
    });

    const spare = await startAppServer({ name: "spare" });
    const closed = spare.url;
    await spare.stop();
    expect(await probeOnce(closed, { timeoutMs: 1_000 })).toMatchObject({
      ok: false,
      error: "connection refused",
    });
  });

  it("bounds a hanging server by the timeout, and measures latency", async () => {
    newApp.setHanging(true);
    const started = Date.now();
    const hung = await probeOnce(newApp.healthUrl, { timeoutMs: 300 });
    newApp.setHanging(false);
    expect(hung).toMatchObject({ ok: false, error: "no answer within 300 ms" });
    expect(Date.now() - started).toBeLessThan(800);
    expect(hung.ms).toBeGreaterThanOrEqual(290);

    oldApp.setLatency(60);
    const slow = await probeOnce(oldApp.healthUrl, { timeoutMs: 1_000 });
    oldApp.setLatency(0);
    expect(slow.ok).toBe(true);
    expect(slow.ms).toBeGreaterThanOrEqual(55);
  });

  it("a cancelled probe throws instead of counting as a failure", async () => {
    newApp.setHanging(true);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const outcome = await probeOnce(newApp.healthUrl, { timeoutMs: 5_000, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    newApp.setHanging(false);
    expect(isCutoverError(outcome)).toBe(true);
  });

  it("watch: measures the new host's downtime while the old one stays up", async () => {
    const windowMs = 1_600;
    const intervalMs = 50;
    // the new host fails from ~400 ms to ~900 ms into the window
    const t1 = setTimeout(() => newApp.setFailing(true), 400);
    const t2 = setTimeout(() => newApp.setFailing(false), 900);
    const samples: WatchSample<"old" | "new">[] = [];
    const report = await watch({
      targets: { old: oldApp.healthUrl, new: newApp.healthUrl },
      windowMs,
      intervalMs,
      timeoutMs: 500,
      onSample: (s) => samples.push(s),
    });
    clearTimeout(t1);
    clearTimeout(t2);
    newApp.setFailing(false);

    const { old, new: fresh } = report.targets;
    expect(old).toMatchObject({ failures: 0, errorRate: 0, downtimeMs: 0 });
    expect(old.samples).toBeGreaterThan(15);
    expect(old.avgMs).toBeDefined();
    expect(old.p95Ms!).toBeGreaterThanOrEqual(old.minMs!);

    expect(fresh.failures).toBeGreaterThan(3);
    expect(fresh.errorRate).toBeCloseTo(fresh.failures / fresh.samples, 10);
    // 500 ms of failure, measured at a 50 ms resolution (plus timer slack on a busy machine)
    expect(fresh.downtimeMs).toBeGreaterThanOrEqual(400);
    expect(fresh.downtimeMs).toBeLessThanOrEqual(800);
    expect(fresh.outage?.open).toBe(false);
    expect(samples.filter((s) => s.target === "new").length).toBe(fresh.samples);
    expect(report.endedAt - report.startedAt).toBe(windowMs);
  });

  it("watch: an abort ends it early with what was measured so far", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    const report = await watch({
      targets: { old: oldApp.healthUrl },
      windowMs: 10_000,
      intervalMs: 50,
      signal: controller.signal,
    });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(report.aborted).toBe(true);
    expect(report.targets.old.samples).toBeGreaterThan(2);
    expect(report.endedAt - report.startedAt).toBeLessThan(1_000);
  });

  it("baseline: n probes in a row with their latency", async () => {
    // a probe the aborted watch above had sent may still be on its way to the server: let it land
    for (let seen = -1; seen !== oldApp.requests().length; ) {
      seen = oldApp.requests().length;
      await new Promise((r) => setTimeout(r, 100));
    }
    oldApp.setLatency(20);
    const before = oldApp.requests().length;
    const stats = await baseline(oldApp.healthUrl, 5, { timeoutMs: 1_000 });
    oldApp.setLatency(0);
    expect(oldApp.requests().length - before).toBe(5);
    expect(stats).toMatchObject({ samples: 5, failures: 0, errorRate: 0 });
    expect(stats.avgMs!).toBeGreaterThanOrEqual(18);
  });
});
