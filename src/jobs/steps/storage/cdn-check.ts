import { z } from "zod";
import { type CdnProbeResult, measureCdnHitRatio } from "../../../cloud/cdn.js";
import type { ObjectStore } from "../../../cloud/object-store.js";
import { requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepContext, StepDefinition, StepDeps, VerifyOutcome } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { readProvisioned } from "../../provisioned.js";
import { s3OriginDomain } from "./bucket.js";
import { openTarget } from "./buckets.js";
import { count } from "./wording.js";

const Input = z.strictObject({
  /** fetch through this base URL instead of the distribution's domain (a rehearsal's stand-in) */
  baseUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** objects sampled; defaults to verification.performance.cdn.sampleObjects */
  sampleObjects: z.number().int().min(1).max(10_000).optional(),
  /** the warm round's hit ratio wanted; defaults to verification.performance.cdn.minHitRatioPercent */
  minHitRatioPercent: z.number().min(0).max(100).optional(),
  /** times each object is fetched; the first round warms the cache */
  rounds: z.number().int().min(1).max(10).default(2),
  concurrency: z.number().int().min(1).max(64).default(8),
  timeoutMs: z.number().int().min(100).max(120_000).default(15_000),
  /** the sample is drawn from the first this-many keys of the bucket */
  scanLimit: z.number().int().min(1).max(1_000_000).default(10_000),
  seed: z.number().int().default(1),
});
export type CdnCheckInput = z.infer<typeof Input>;

export const cdnCheck = defineStep({
  type: "cdn.check",
  description: "fetch sample objects through the CDN and report the cache hit ratio",
  input: Input,
  configSections: ["target.cloudfront", "target.s3"],
  timeLimit: 600,
  mutating: false,
  checkpoints: { result: z.custom<CdnCheckResult>() },
});

/** The CDN check's stored result (without the per-fetch list). */
export interface CdnCheckResult extends Omit<CdnProbeResult, "fetches"> {
  baseUrl: string;
  /** the last round's hit ratio: the one held against the target */
  warmHitRatio: number;
  minHitRatioPercent: number;
  ok: boolean;
  /** a few failed fetches, for the report */
  failures: Array<{ key: string; status: number; error?: string }>;
}

/**
 * Up to `n` objects drawn evenly (reservoir sampling, seeded) from the first `scanLimit` keys of
 * the bucket, skipping folder markers. Memory: the sample.
 */
export async function sampleObjects(
  store: ObjectStore,
  opts: { n: number; scanLimit: number; prefix?: string; seed: number; signal?: AbortSignal },
): Promise<Array<{ key: string; size: number }>> {
  let state = opts.seed >>> 0 || 1;
  const rand = () => {
    // xorshift32: small, seeded, good enough to spread a sample
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const sample: Array<{ key: string; size: number }> = [];
  let seen = 0;
  let token: string | undefined;
  do {
    const page = await store.listPage({
      ...(opts.prefix ? { prefix: opts.prefix } : {}),
      ...(token ? { token } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    for (const o of page.objects) {
      if (o.key.endsWith("/") || seen >= opts.scanLimit) continue;
      seen++;
      if (sample.length < opts.n) sample.push({ key: o.key, size: o.size });
      else {
        const j = Math.floor(rand() * seen);
        if (j < opts.n) sample[j] = { key: o.key, size: o.size };
      }
    }
    token = seen < opts.scanLimit ? page.nextToken : undefined;
  } while (token);
  return sample;
}

/**
 * Where to fetch from: the step's `baseUrl`, else the distribution's domain as `s3.bucket`
 * recorded it, else as CloudFront reports it for the bucket's origin.
 */
async function resolveBaseUrl(deps: StepDeps, input: CdnCheckInput, ctx: StepContext): Promise<string> {
  if (input.baseUrl) return input.baseUrl;
  const recorded = (await readProvisioned(deps.dataDir, ctx.run.env))["target.cloudfront.domain"];
  if (recorded) return `https://${recorded}`;
  const s3 = requireSection(deps.file, "target.s3");
  const found = await deps.ports
    .cdn()
    .findDistributionByOrigin(s3OriginDomain(s3.bucket, s3.region), ctx.signal);
  if (found?.domain) return `https://${found.domain}`;
  throw new CutoverError(
    ErrorCode.StepFailed,
    `There is no CloudFront distribution in front of bucket ${s3.bucket} yet.`,
    { hint: "Run the provisioning step (`s3.bucket`) first, or give the step a `baseUrl`." },
  );
}

/**
 * `cdn.check`: fetches a sample of the target bucket's objects through the distribution, each
 * `rounds` times, and reports the cache hit ratio from CloudFront's X-Cache header. Read-only.
 */
export function createCdnCheckStep(deps: StepDeps): StepDefinition<CdnCheckInput> {
  const limits = (input: CdnCheckInput) => {
    const cdnCfg = deps.file.verification.performance.cdn;
    return {
      n: input.sampleObjects ?? cdnCfg.sampleObjects,
      min: input.minHitRatioPercent ?? cdnCfg.minHitRatioPercent,
    };
  };
  const measure = async (input: CdnCheckInput, ctx: StepContext): Promise<CdnCheckResult> => {
    requireSection(deps.file, "target.cloudfront");
    const s3 = requireSection(deps.file, "target.s3");
    const { n, min } = limits(input);
    const baseUrl = await resolveBaseUrl(deps, input, ctx);
    const target = openTarget(deps);
    let objects: Array<{ key: string; size: number }>;
    try {
      objects = await sampleObjects(target, {
        n,
        scanLimit: input.scanLimit,
        seed: input.seed,
        signal: ctx.signal,
      });
    } finally {
      target.destroy();
    }
    if (objects.length === 0) {
      throw new CutoverError(
        ErrorCode.StepFailed,
        `Bucket ${s3.bucket} holds no objects to fetch through the CDN.`,
        {
          hint: "Copy the objects first (`storage.sync`).",
        },
      );
    }
    ctx.progress({
      done: 0,
      total: objects.length * input.rounds,
      unit: "fetches",
      message: `fetching through ${baseUrl}`,
    });
    const probe = await measureCdnHitRatio({
      baseUrl,
      objects,
      rounds: input.rounds,
      concurrency: input.concurrency,
      timeoutMs: input.timeoutMs,
      signal: ctx.signal,
    });
    const warm = probe.hitRatioByRound[probe.hitRatioByRound.length - 1] ?? 0;
    const { fetches, ...rest } = probe;
    return {
      ...rest,
      baseUrl,
      warmHitRatio: warm,
      minHitRatioPercent: min,
      ok: warm >= min && probe.errors === 0 && probe.sizeMismatches === 0,
      failures: fetches
        .filter((f) => f.status !== 200)
        .slice(0, 10)
        .map((f) => ({ key: f.key, status: f.status, ...(f.error ? { error: f.error } : {}) })),
    };
  };
  const outcome = (r: CdnCheckResult): VerifyOutcome => ({
    ok: r.ok,
    summary:
      `cache hit ratio ${r.warmHitRatio}% on the warm round (want ≥ ${r.minHitRatioPercent}%), ` +
      `${r.hitRatioByRound.map((h, i) => `round ${i + 1}: ${h}%`).join(", ")}; ${count(r.samples)} objects through ${r.baseUrl}, ` +
      `avg ${r.avgMs} ms${r.errors ? `; ${r.errors} failed fetches (e.g. ${r.failures[0]?.key} → ${r.failures[0]?.status || r.failures[0]?.error})` : ""}` +
      `${r.sizeMismatches ? `; ${r.sizeMismatches} with the wrong size` : ""}`,
    figures: {
      samples: r.samples,
      hitRatioPercent: r.warmHitRatio,
      firstRoundHitRatioPercent: r.hitRatioByRound[0] ?? 0,
      overallHitRatioPercent: r.hitRatio,
      errors: r.errors,
      sizeMismatches: r.sizeMismatches,
      avgMs: r.avgMs,
      baseUrl: r.baseUrl,
    },
  });
  return cdnCheck.implement({
    async plan(input, ctx) {
      const { n, min } = limits(input);
      const baseUrl = await resolveBaseUrl(deps, input, ctx).catch(
        () => "the distribution (not created yet)",
      );
      return {
        summary: `would fetch ${n} sample objects ${input.rounds} times through ${baseUrl} and want a warm hit ratio of ≥ ${min}%`,
        changes: [{ action: "check", target: baseUrl, detail: `${n} objects × ${input.rounds} rounds` }],
      };
    },
    async run(input, ctx) {
      const r = await measure(input, ctx);
      await ctx.checkpoint.set("result", r);
      const o = outcome(r);
      return { summary: o.summary, ...(o.figures ? { figures: o.figures } : {}) };
    },
    async verify(input, ctx) {
      const kept = await ctx.checkpoint.get("result");
      return outcome(kept ?? (await measure(input, ctx)));
    },
  });
}
