import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { MigrationFile, VerificationConfig } from "../../../src/config/schema.js";
import { TEST_OBJECT_PREFIX } from "../../../src/jobs/steps/verify/object-round-trip.js";
import { createVerifyPerformanceStep } from "../../../src/jobs/steps/verify/performance.js";
import type { VerificationReport } from "../../../src/jobs/steps/verify/report.js";
import { type AppServer, startAppServer } from "../../../src/sandbox/app-servers.js";
import { type FakeCdn, startFakeCdn } from "../../../src/sandbox/fake-cdn.js";
import { verificationView } from "../../../src/views/verification.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { tempDir } from "../host/fixtures.js";
import { type DataWorld, depsFor, fileWith, keysUnder, row, startDataWorld } from "./world.js";

let w: DataWorld;
let app: AppServer;
let data: { dir: string; remove: () => Promise<void> };

beforeAll(async () => {
  [w, app, data] = await Promise.all([
    startDataWorld(),
    startAppServer({ name: "new (Lightsail)" }),
    tempDir("cutover-verify-perf-"),
  ]);
  // objects for the CDN sample, as storage.sync leaves them
  for (let i = 0; i < 12; i++) {
    await w.store.put(`media/p${i}.jpg`, Buffer.alloc(2000 + i, i), 2000 + i, {
      contentType: "image/jpeg",
      metadata: {},
    });
  }
});
afterAll(async () => {
  await Promise.all([w?.stop(), app?.stop(), data?.remove()]);
});
beforeEach(() => {
  app.setLatency(0);
  app.setFailing(false);
  app.setHanging(false);
  w.cdn.invalidate();
});

async function run(
  edit: (v: VerificationConfig, f: MigrationFile) => void,
  raw: Record<string, unknown> = {},
) {
  const file = await fileWith((f, v) => {
    v.baseUrl = app.url;
    v.performance.api = { maxAvgMs: 200, paths: ["/health"], samples: 5 };
    v.performance.database = { maxAvgMs: 50, query: "SELECT 1", samples: 5 };
    v.performance.upload = { minMBps: 0.01, sizeMb: 0.5 };
    v.performance.cdn = { minHitRatioPercent: 80, sampleObjects: 10 };
    w.point(f);
    edit(v, f);
  });
  const step = createVerifyPerformanceStep(depsFor(file, data.dir, w.env));
  const ctx = makeStepContext();
  const input = step.parse({ cdnBaseUrl: w.cdn.url, ...raw });
  const outcome = await step.run(input, ctx);
  const verified = await step.verify(input, ctx);
  return { outcome, verified, report: ctx.checkpoints.get("report") as VerificationReport, ctx };
}

describe("verify.performance", () => {
  it("measures API latency, database time, transfer speed and the CDN hit ratio against their targets", async () => {
    app.setRoute("/api/v1/products", { body: [1, 2] });
    app.setLatency(20);
    const { outcome, verified, report } = await run((v) => {
      v.performance.api.paths = ["/health", "/api/v1/products"];
    });
    expect(report.rows.map((r) => [r.id, r.status])).toEqual([
      ["api.health", "pass"],
      ["api.api-v1-products", "pass"],
      ["db", "pass"],
      ["upload", "pass"],
      ["download", "pass"],
      ["cdn", "pass"],
    ]);
    expect(verified.ok).toBe(true);
    const f = outcome.figures!;
    expect(f["api.health.samples"]).toBe(5);
    expect(f["api.health.failures"]).toBe(0);
    expect(f["api.health.avgMs"]).toBeGreaterThanOrEqual(20);
    expect(f["api.health.p95Ms"]).toBeGreaterThanOrEqual(f["api.health.avgMs"] as number);
    expect(app.requests().filter((r) => r.path === "/api/v1/products")).toHaveLength(5);
    expect(f["db.samples"]).toBe(5);
    expect(f["db.avgMs"]).toBeLessThan(50);
    expect(f["upload.bytes"]).toBe(512 * 1024);
    expect(f["upload.MBps"]).toBeGreaterThan(0.01);
    expect(f["download.MBps"]).toBeGreaterThan(0.01);
    expect(f["download.identical"]).toBe(true);
    expect(f["download.via"]).toBe("cdn");
    expect(f["cdn.samples"]).toBe(10);
    expect(f["cdn.firstFetchHitRatioPercent"]).toBe(0);
    expect(f["cdn.hitRatioPercent"]).toBe(100);
    // the sample never includes the test object, and the test object is gone
    expect(await keysUnder(w.store, TEST_OBJECT_PREFIX)).toEqual([]);
    expect(row(report, "cdn").measured).toMatch(
      /^100 % hits on the second fetch of 10 objects \(first fetch 0 %\)/,
    );
    const view = verificationView(report);
    expect(view.text).toBe("Performance verification: 6 of 6 checks passed");
  });

  it("fails a slow API with its measured average, and what to look at", async () => {
    app.setLatency(120);
    const { report, verified } = await run(
      (v) => {
        v.performance.api = { maxAvgMs: 100, paths: ["/health"], samples: 3 };
      },
      { only: ["api"] },
    );
    expect(report.rows.map((r) => r.id)).toEqual(["api.health"]);
    expect(verified.ok).toBe(false);
    const r = row(report, "api.health");
    expect(r).toMatchObject({
      status: "fail",
      target: "avg ≤ 100 ms over 3 probes, none failing",
      hint: expect.stringMatching(/^slow/),
    });
    expect(r.figures.avgMs).toBeGreaterThanOrEqual(120);
    expect(r.measured).toMatch(/^avg \d+ ms · p95 \d+ ms over 3 probes$/);
  });

  it("stops probing a hanging API after a few timeouts instead of waiting out every sample", async () => {
    app.setHanging(true);
    const started = Date.now();
    const { report } = await run(
      (v) => {
        v.performance.api = { maxAvgMs: 200, paths: ["/health"], samples: 50 };
      },
      { only: ["api"], probeTimeoutMs: 200, giveUpAfterFailures: 2 },
    );
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(row(report, "api.health")).toMatchObject({
      status: "fail",
      measured: "2 of 2 probes failed (no answer within 200 ms); stopped after 2 failures in a row",
      figures: { samples: 2, failures: 2 },
      hint: expect.stringMatching(/nothing came back within 200 ms/),
    });
  });

  it("fails failing probes and a slow database query", async () => {
    app.setFailing({ status: 502 });
    const { report } = await run(
      (v) => {
        v.performance.database = { maxAvgMs: 50, query: "SELECT pg_sleep(0.06)", samples: 2 };
      },
      { only: ["api", "db"] },
    );
    expect(row(report, "api.health")).toMatchObject({
      status: "fail",
      hint: expect.stringMatching(/nginx answered 502/),
    });
    const db = row(report, "db");
    expect(db).toMatchObject({ status: "fail", hint: expect.stringMatching(/^slow/) });
    expect(db.figures.avgMs).toBeGreaterThanOrEqual(60);
  });

  it("fails transfer speed below the target, and a CDN that does not cache", async () => {
    const noCache: FakeCdn = await startFakeCdn(w.store, { maxBytes: 100 }); // every object is larger: never kept
    try {
      const { report } = await run(
        (v) => {
          v.performance.upload = { minMBps: 100_000, sizeMb: 0.25 };
        },
        { only: ["upload", "download", "cdn"], cdnBaseUrl: noCache.url },
      );
      expect(row(report, "upload")).toMatchObject({
        status: "fail",
        hint: expect.stringMatching(/measures from where it runs/),
      });
      expect(row(report, "upload").figures.MBps).toBeLessThan(100_000);
      expect(row(report, "download")).toMatchObject({ status: "fail", figures: { identical: true } });
      expect(row(report, "cdn")).toMatchObject({
        status: "fail",
        figures: { hitRatioPercent: 0, errors: 0 },
        hint: expect.stringMatching(/cache policy/),
      });
      expect(noCache.stats().hits).toBe(0);
      expect(await keysUnder(w.store, TEST_OBJECT_PREFIX)).toEqual([]);
    } finally {
      await noCache.close();
    }
  });

  it("skips what the file does not configure, and says the API address is unknown", async () => {
    const { report } = await run((v, f) => {
      delete v.baseUrl;
      delete f.target!.rds;
      delete f.target!.s3;
      delete f.target!.lightsail;
    });
    expect(row(report, "db")).toMatchObject({
      status: "skip",
      measured: "no target.rds in the migration file",
    });
    expect(row(report, "cdn").status).toBe("skip");
    expect(row(report, "api.health")).toMatchObject({ status: "fail" });
    expect(row(report, "api.health").hint).toMatch(/not known yet.*verification\.baseUrl/);
  });
});
