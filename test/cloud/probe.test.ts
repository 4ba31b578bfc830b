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
import { waitUntil } from "../helpers/wait.js";

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

/**
 * Time moves only when someone sleeps or a probe takes time. With real probes, a sleep moves the
 * clock at once and a target whose next instant the clock has already reached does not sleep, so
 * two targets on one grid probe at the same instants and nothing waits on the wall.
 */
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

describe("watch with a fake clock", () => {
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
    const before = newApp.requests().length;
    const pending = probeOnce(newApp.healthUrl, { timeoutMs: 5_000, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    // cancelled while the server holds the request
    await waitUntil("the hanging server to hold the probe", () => newApp.requests().length > before);
    controller.abort();
    const outcome = await pending;
    newApp.setHanging(false);
    expect(isCutoverError(outcome)).toBe(true);
  });

  it("watch: measures the new host's downtime while the old one stays up", async () => {
    const clock = fakeClock();
    const start = clock.t;
    // the new host fails from 400 ms to 900 ms into the window: decided as each probe leaves
    const probe: typeof probeOnce = (url, opts) => {
      if (url === newApp.healthUrl) {
        const since = clock.t - start;
        newApp.setFailing(since >= 400 && since < 900);
      }
      return probeOnce(url, opts);
    };
    const samples: WatchSample<"old" | "new">[] = [];
    const report = await watch({
      targets: { old: oldApp.healthUrl, new: newApp.healthUrl },
      windowMs: 1_600,
      intervalMs: 50,
      timeoutMs: 1_000,
      clock,
      probe,
      onSample: (s) => samples.push(s),
    });
    newApp.setFailing(false);

    const { old, new: fresh } = report.targets;
    expect(old).toMatchObject({ samples: 32, failures: 0, errorRate: 0, downtimeMs: 0 });
    expect(old.avgMs).toBeDefined();
    expect(old.p95Ms!).toBeGreaterThanOrEqual(old.minMs!);

    expect(fresh).toMatchObject({ samples: 32, failures: 10, downtimeMs: 500 });
    expect(fresh.errorRate).toBeCloseTo(10 / 32, 10);
    expect(fresh.outage?.open).toBe(false);
    expect(samples.filter((s) => s.target === "new" && !s.ok).map((s) => s.at - start)).toEqual([
      400, 450, 500, 550, 600, 650, 700, 750, 800, 850,
    ]);
    expect(report.endedAt - report.startedAt).toBe(1_600);
  });

  it("watch: an abort ends it early with what was measured so far", async () => {
    const clock = fakeClock();
    const start = clock.t;
    const controller = new AbortController();
    const before = oldApp.requests().length;
    const report = await watch({
      targets: { old: oldApp.healthUrl },
      windowMs: 10_000,
      intervalMs: 50,
      clock,
      signal: controller.signal,
      onSample: (s) => {
        if (s.at - start >= 300) controller.abort();
      },
    });
    expect(report.aborted).toBe(true);
    expect(report.targets.old.samples).toBe(7);
    expect(report.endedAt - report.startedAt).toBe(300);
    // nothing was sent after the abort
    expect(oldApp.requests().length - before).toBe(7);
  });

  it("baseline: n probes in a row with their latency", async () => {
    oldApp.setLatency(20);
    const before = oldApp.requests().length;
    const stats = await baseline(oldApp.healthUrl, 5, { timeoutMs: 1_000 });
    oldApp.setLatency(0);
    expect(oldApp.requests().length - before).toBe(5);
    expect(stats).toMatchObject({ samples: 5, failures: 0, errorRate: 0 });
    expect(stats.avgMs!).toBeGreaterThanOrEqual(18);
  });
});
