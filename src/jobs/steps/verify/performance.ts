import { z } from "zod";
import { measureCdnHitRatio } from "../../../cloud/cdn.js";
import { connect } from "../../../cloud/postgres.js";
import { latencyStats, type TimedProbe } from "../../../cloud/probe.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { targetEndpoint } from "../db/endpoints.js";
import { openTarget } from "../storage/buckets.js";
import { sampleObjects } from "../storage/cdn-check.js";
import { type AppTarget, resolveApp, resolveCdnBase } from "./app-target.js";
import {
  type Check,
  defineVerificationStep,
  judged,
  type MeasuredRow,
  runChecks,
  skipped,
  verificationStep,
} from "./checks.js";
import { ms, round, slug } from "./format.js";
import { appHint, appRequest, type HttpAnswer, keepAliveAgents } from "./http.js";
import { objectRoundTrip, TEST_OBJECT_PREFIX } from "./object-round-trip.js";
import type { CheckRow, VerificationReport } from "./report.js";

export const verifyPerformance = defineVerificationStep("performance", {
  input: {
    /** one API probe; default kpis.probes.timeoutMs */
    probeTimeoutMs: z.number().int().min(100).max(120_000).optional(),
    /** a path stops being probed after this many failures in a row (a down or hanging API ends quickly) */
    giveUpAfterFailures: z.number().int().min(1).max(1000).default(3),
    /** one database query */
    queryTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** the upload test's whole round trip */
    transferTimeoutSeconds: z.number().int().min(1).max(3600).default(600),
    /** CDN fetches run this many at a time */
    cdnConcurrency: z.number().int().min(1).max(64).default(8),
  },
  timeLimit: 3600,
});
type Input = z.infer<typeof verifyPerformance.input>;
type Row = MeasuredRow;

const MB = 1024 * 1024;

/**
 * `verify.performance`: the plan's performance targets, measured: API latency (avg and p95 over N
 * probes per path), database query time, upload and download throughput of a test object
 * through the bucket and the CDN, and the CDN's cache hit ratio. Reads only, except the test
 * object, which it deletes again.
 */
export function createVerifyPerformanceStep(deps: StepDeps): StepDefinition<Input> {
  const cfg = () => deps.file.verification.performance;

  async function apiLatency(app: AppTarget, p: string, input: Input, ctx: StepContext): Promise<Row> {
    const { samples, maxAvgMs } = cfg().api;
    const timeoutMs = input.probeTimeoutMs ?? deps.file.kpis.probes.timeoutMs;
    const agents = keepAliveAgents();
    const probes: TimedProbe[] = [];
    let lastFailure: HttpAnswer | undefined;
    let inARow = 0;
    try {
      for (let i = 0; i < samples && inARow < input.giveUpAfterFailures; i++) {
        const at = Date.now();
        const a = await appRequest(app, p, { timeoutMs, signal: ctx.signal, agents });
        const ok = !a.error && a.status !== undefined && a.status >= 200 && a.status < 400;
        probes.push({ at, ok, ms: a.ms });
        if (ok) inARow = 0;
        else {
          inARow++;
          lastFailure = a;
        }
      }
    } finally {
      agents.destroy();
    }
    const s = latencyStats(probes);
    const figures: CheckRow["figures"] = { samples: s.samples, failures: s.failures };
    if (s.avgMs !== undefined) figures.avgMs = s.avgMs;
    if (s.p95Ms !== undefined) figures.p95Ms = s.p95Ms;
    if (s.minMs !== undefined) figures.minMs = s.minMs;
    if (s.maxMs !== undefined) figures.maxMs = s.maxMs;
    const why = lastFailure ? (lastFailure.error ?? `HTTP ${lastFailure.status}`) : "";
    const gaveUp = probes.length < samples;
    const measured =
      s.avgMs === undefined
        ? `${s.failures} of ${s.samples} probes failed (${why})${gaveUp ? `; stopped after ${input.giveUpAfterFailures} failures in a row` : ""}`
        : `avg ${ms(s.avgMs)} · p95 ${ms(s.p95Ms!)} over ${s.samples - s.failures} probes${s.failures ? `; ${s.failures} failed (${why})` : ""}${gaveUp ? `; stopped after ${input.giveUpAfterFailures} failures in a row` : ""}`;
    const problems: string[] = [];
    if (lastFailure) problems.push(appHint(deps, lastFailure, timeoutMs));
    if (s.avgMs !== undefined && s.avgMs > maxAvgMs) {
      problems.push(
        "slow: compare with the old host's latency, look at gunicorn's workers and the database time (the `db` row), and measure from near the region",
      );
    }
    return judged(measured, problems, figures);
  }

  async function dbTime(input: Input, ctx: StepContext): Promise<Row> {
    const { query, samples, maxAvgMs } = cfg().database;
    const ep = await targetEndpoint(deps);
    const client = await connect(ep, {
      timeoutSeconds: Math.ceil(input.connectTimeoutSeconds),
      readOnly: true,
      appName: "cutover-verify",
    });
    const probes: TimedProbe[] = [];
    try {
      await client.query(`SET statement_timeout = ${input.queryTimeoutMs}`);
      await client.query(query); // warms the connection and the plan; not counted
      for (let i = 0; i < samples; i++) {
        ctx.signal.throwIfAborted();
        const t0 = performance.now();
        await client.query(query);
        probes.push({ at: Date.now(), ok: true, ms: performance.now() - t0 });
      }
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (err instanceof CutoverError || ctx.signal.aborted) throw err;
      throw new CutoverError(
        ErrorCode.StepFailed,
        e.code === "57014"
          ? `the query did not finish within ${input.queryTimeoutMs} ms`
          : `the query failed on the target database: ${e.message ?? String(err)}`,
        {
          hint: "check verification.performance.database.query, and run it with EXPLAIN ANALYZE on the target",
        },
      );
    } finally {
      await client.end().catch(() => undefined);
    }
    const s = latencyStats(probes);
    const ok = (s.avgMs ?? Number.POSITIVE_INFINITY) <= maxAvgMs;
    return {
      measured: `avg ${ms(s.avgMs!)} · p95 ${ms(s.p95Ms!)} over ${s.samples} queries`,
      status: ok ? "pass" : "fail",
      ...(ok
        ? {}
        : {
            hint: "slow: look at the RDS instance's CPU credits and the query plan (EXPLAIN ANALYZE); a distant Cutover adds its round trip — run it near the region",
          }),
      figures: { avgMs: s.avgMs!, p95Ms: s.p95Ms!, samples: s.samples },
    };
  }

  async function transfer(input: Input, ctx: StepContext): Promise<{ up: Row; down: Row }> {
    const { sizeMb, minMBps } = cfg().upload;
    const cdnBase = await resolveCdnBase(deps, input.cdnBaseUrl);
    const r = await objectRoundTrip(deps, ctx, {
      bytes: Math.max(1, Math.round(sizeMb * MB)),
      cdnBase,
      timeoutMs: input.transferTimeoutSeconds * 1000,
    });
    const via = cdnBase ? "the CDN" : "the bucket (no CDN known yet)";
    const rate = (bytes: number, millis: number) => round(bytes / MB / (millis / 1000), 2);
    const upRate = rate(r.bytes, r.uploadMs);
    const downRate = r.downloadStatus === 200 ? rate(r.bytes, r.downloadMs) : 0;
    const cleanup = r.cleanupFailed
      ? `; the test object ${r.key} could not be deleted: remove it by hand`
      : "";
    const slowHint =
      "Cutover measures from where it runs: run it near the bucket's region, or look at the network between";
    const up: Row = {
      measured: `${sizeMb} MB in ${ms(r.uploadMs)}: ${upRate} MB/s`,
      status: upRate >= minMBps && !r.cleanupFailed ? "pass" : "fail",
      ...(upRate < minMBps || r.cleanupFailed
        ? { hint: `${upRate < minMBps ? slowHint : ""}${cleanup}`.replace(/^; /, "") }
        : {}),
      figures: { MBps: upRate, ms: r.uploadMs, bytes: r.bytes },
    };
    const downOk = r.identical && downRate >= minMBps;
    const down: Row = {
      measured:
        r.downloadStatus === 200
          ? `${sizeMb} MB through ${via} in ${ms(r.downloadMs)}: ${downRate} MB/s${r.identical ? "" : ", content differs"}`
          : `through ${via}: ${r.downloadError ?? `HTTP ${r.downloadStatus}`}`,
      status: downOk ? "pass" : "fail",
      ...(downOk
        ? {}
        : {
            hint:
              r.downloadStatus !== 200 || !r.identical
                ? "the object did not come back through the CDN: check the distribution's origin and its origin access control (bucket policy)"
                : slowHint,
          }),
      figures: { MBps: downRate, ms: r.downloadMs, identical: r.identical, via: cdnBase ? "cdn" : "bucket" },
    };
    return { up, down };
  }

  async function cdnHits(input: Input, base: string, ctx: StepContext): Promise<Row> {
    const { sampleObjects: n, minHitRatioPercent } = cfg().cdn;
    const store = openTarget(deps);
    let objects: Array<{ key: string; size: number }>;
    try {
      objects = (await sampleObjects(store, { n: n * 2, scanLimit: 10_000, seed: 1, signal: ctx.signal }))
        .filter((o) => !o.key.startsWith(TEST_OBJECT_PREFIX))
        .slice(0, n);
    } finally {
      store.destroy();
    }
    if (objects.length === 0) {
      throw new CutoverError(
        ErrorCode.StepFailed,
        `the target bucket ${store.bucket} holds no objects to fetch through the CDN`,
        {
          hint: "copy the objects first (`storage.sync`)",
        },
      );
    }
    const r = await measureCdnHitRatio({
      baseUrl: base,
      objects,
      rounds: 2,
      concurrency: input.cdnConcurrency,
      timeoutMs: input.probeTimeoutMs ?? 15_000,
      signal: ctx.signal,
    });
    const warm = r.hitRatioByRound[1] ?? 0;
    const ok = warm >= minHitRatioPercent && r.errors === 0;
    const firstError = r.fetches.find((f) => f.status !== 200);
    return {
      measured: `${warm} % hits on the second fetch of ${r.samples} objects (first fetch ${r.hitRatioByRound[0] ?? 0} %), avg ${ms(r.avgMs)}${r.errors ? `; ${r.errors} failed (${firstError?.error ?? `HTTP ${firstError?.status}`})` : ""}`,
      status: ok ? "pass" : "fail",
      ...(ok
        ? {}
        : {
            hint: r.errors
              ? "fetches through the CDN failed: check the distribution's origin and its origin access control (bucket policy)"
              : "objects are not kept at the edge: check the cache policy (CachingOptimized), the objects' Cache-Control headers, and that no query string or cookie is in the cache key",
          }),
      figures: {
        hitRatioPercent: warm,
        firstFetchHitRatioPercent: r.hitRatioByRound[0] ?? 0,
        samples: r.samples,
        errors: r.errors,
        avgMs: r.avgMs,
      },
    };
  }

  async function measure(input: Input, ctx: StepContext): Promise<VerificationReport> {
    const c = cfg();
    let app: AppTarget | undefined;
    let appError: unknown;
    try {
      app = await resolveApp(deps);
    } catch (err) {
      appError = err;
    }
    const checks: Check[] = c.api.paths.map((p) => ({
      id: `api.${slug(p)}`,
      title: `API latency ${p}`,
      target: `avg ≤ ${c.api.maxAvgMs} ms over ${c.api.samples} probes, none failing`,
      measure: async () => {
        if (!app) throw appError;
        return apiLatency(app, p, input, ctx);
      },
    }));
    checks.push(
      deps.file.target?.rds
        ? {
            id: "db",
            title: "Database query time",
            target: `avg ≤ ${c.database.maxAvgMs} ms over ${c.database.samples} queries`,
            measure: () => dbTime(input, ctx),
          }
        : skipped("db", "Database query time", "no target.rds in the migration file"),
    );
    if (deps.file.target?.s3) {
      let moved: Promise<{ up: Row; down: Row }> | undefined;
      const once = () => {
        moved ??= transfer(input, ctx);
        return moved;
      };
      const target = `≥ ${c.upload.minMBps} MB/s`;
      checks.push(
        {
          id: "upload",
          title: `Upload ${c.upload.sizeMb} MB to the bucket`,
          target,
          measure: async () => (await once()).up,
        },
        {
          id: "download",
          title: `Download ${c.upload.sizeMb} MB through the CDN`,
          target,
          measure: async () => (await once()).down,
        },
      );
      const base = await resolveCdnBase(deps, input.cdnBaseUrl);
      checks.push(
        base
          ? {
              id: "cdn",
              title: "CDN cache hit ratio",
              target: `≥ ${c.cdn.minHitRatioPercent} % on the second fetch`,
              measure: () => cdnHits(input, base, ctx),
            }
          : skipped(
              "cdn",
              "CDN cache hit ratio",
              "the CloudFront distribution is not known yet",
              "run `s3.bucket` first, or give the step a `cdnBaseUrl`",
            ),
      );
    } else {
      checks.push(
        skipped("upload", "Upload to the bucket", "no target.s3 in the migration file"),
        skipped("download", "Download through the CDN", "no target.s3 in the migration file"),
        skipped("cdn", "CDN cache hit ratio", "no target.s3 in the migration file"),
      );
    }
    return runChecks("performance", checks, ctx, {
      ...(app ? { baseUrl: app.label } : {}),
      only: input.only,
    });
  }

  return verificationStep(deps, verifyPerformance, {
    measure,
    async plan() {
      const c = cfg();
      const app = await resolveApp(deps).catch(() => undefined);
      const changes: PlannedChange[] = [
        ...c.api.paths.map((p) => ({
          action: "check" as const,
          target: `API latency ${p}`,
          detail: `${c.api.samples} probes, want avg ≤ ${c.api.maxAvgMs} ms`,
        })),
        {
          action: "check",
          target: "database query time",
          detail: `${c.database.samples} × ${c.database.query}, want avg ≤ ${c.database.maxAvgMs} ms`,
        },
        {
          action: "create",
          target: `a ${c.upload.sizeMb} MB test object in the target bucket`,
          detail: `want ≥ ${c.upload.minMBps} MB/s both ways; deleted afterwards`,
        },
        {
          action: "check",
          target: "CDN cache hit ratio",
          detail: `${c.cdn.sampleObjects} objects fetched twice, want ≥ ${c.cdn.minHitRatioPercent} %`,
        },
      ];
      return {
        summary: `would measure API latency${app ? ` at ${app.label}` : " (the new host's address is not known yet)"}, database time, transfer speed and the CDN hit ratio`,
        changes,
      };
    },
  });
}
