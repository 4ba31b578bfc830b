import { setTimeout as sleep } from "node:timers/promises";
import type { DistributionConfig } from "@aws-sdk/client-cloudfront";
import { explainAwsError } from "./aws-access.js";
import { lazyAwsClient } from "./lazy-sdk.js";

/** A distribution as Cutover needs to know it. */
export interface DistributionInfo {
  id: string;
  arn: string;
  /** d1234abcd.cloudfront.net */
  domain: string;
  /** InProgress or Deployed */
  status: string;
}

export interface DistributionWithConfig extends DistributionInfo {
  config: DistributionConfig;
  /** for UpdateDistribution / DeleteDistribution (If-Match) */
  etag: string;
}

/**
 * The CloudFront port: distributions in front of an S3 bucket, and their origin access controls.
 * Errors are CutoverErrors naming the action and the IAM permission when one is missing.
 */
export interface CdnAdmin {
  /** the first distribution whose origins include `originDomain` */
  findDistributionByOrigin(originDomain: string, signal?: AbortSignal): Promise<DistributionInfo | undefined>;
  getDistribution(id: string, signal?: AbortSignal): Promise<DistributionWithConfig>;
  createDistribution(config: DistributionConfig, signal?: AbortSignal): Promise<DistributionInfo>;
  updateDistribution(
    id: string,
    etag: string,
    config: DistributionConfig,
    signal?: AbortSignal,
  ): Promise<DistributionInfo>;
  /** disables the distribution, waits until CloudFront has deployed that, then deletes it */
  disableAndDelete(
    id: string,
    opts: { signal?: AbortSignal; timeoutMs?: number; pollMs?: number },
  ): Promise<void>;
  findOriginAccessControl(name: string, signal?: AbortSignal): Promise<{ id: string } | undefined>;
  createOriginAccessControl(name: string, description: string, signal?: AbortSignal): Promise<{ id: string }>;
  deleteOriginAccessControl(id: string, signal?: AbortSignal): Promise<void>;
  /** a cache policy's default TTL in seconds, or undefined when it cannot be read */
  cachePolicyDefaultTtl(id: string, signal?: AbortSignal): Promise<number | undefined>;
  destroy(): void;
}

export interface CdnAdminOptions {
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  maxAttempts?: number;
}

/** Builds the port over @aws-sdk/client-cloudfront (a global service, signed for us-east-1). */
export function createCdnAdmin(opts: CdnAdminOptions = {}): CdnAdmin {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-cloudfront"),
    (sdk) =>
      new sdk.CloudFrontClient({
        region: "us-east-1",
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
        maxAttempts: opts.maxAttempts ?? 4,
      }),
  );
  const call = async <T>(action: string, resource: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if ((err as { name?: string })?.name === "AbortError") throw err;
      throw explainAwsError(err, action, resource);
    }
  };
  const info = (
    d: { Id?: string; ARN?: string; DomainName?: string; Status?: string } | undefined,
  ): DistributionInfo => ({
    id: d?.Id ?? "",
    arn: d?.ARN ?? "",
    domain: d?.DomainName ?? "",
    status: d?.Status ?? "",
  });
  const admin: CdnAdmin = {
    async findDistributionByOrigin(originDomain, signal) {
      let marker: string | undefined;
      do {
        const page = await call("cloudfront:ListDistributions", "distributions", () =>
          client.send((sdk) => new sdk.ListDistributionsCommand(marker ? { Marker: marker } : {}), {
            abortSignal: signal,
          }),
        );
        for (const item of page.DistributionList?.Items ?? []) {
          let origins = item.Origins?.Items?.map((o) => o.DomainName);
          // Some implementations (moto) leave the summary's origins out: read the config then.
          if (!origins || origins.every((d) => !d)) {
            const full = await admin.getDistribution(item.Id ?? "", signal);
            origins = full.config.Origins?.Items?.map((o) => o.DomainName);
          }
          if (origins?.includes(originDomain)) return info(item);
        }
        marker = page.DistributionList?.IsTruncated ? page.DistributionList.NextMarker : undefined;
      } while (marker);
      return undefined;
    },
    async getDistribution(id, signal) {
      const [d, c] = await Promise.all([
        call("cloudfront:GetDistribution", `distribution ${id}`, () =>
          client.send((sdk) => new sdk.GetDistributionCommand({ Id: id }), { abortSignal: signal }),
        ),
        call("cloudfront:GetDistributionConfig", `distribution ${id}`, () =>
          client.send((sdk) => new sdk.GetDistributionConfigCommand({ Id: id }), { abortSignal: signal }),
        ),
      ]);
      return {
        ...info(d.Distribution),
        config: c.DistributionConfig ?? ({} as DistributionConfig),
        etag: c.ETag ?? "",
      };
    },
    async createDistribution(config, signal) {
      const out = await call("cloudfront:CreateDistribution", "a distribution", () =>
        client.send((sdk) => new sdk.CreateDistributionCommand({ DistributionConfig: config }), {
          abortSignal: signal,
        }),
      );
      return info(out.Distribution);
    },
    async updateDistribution(id, etag, config, signal) {
      const out = await call("cloudfront:UpdateDistribution", `distribution ${id}`, () =>
        client.send(
          (sdk) => new sdk.UpdateDistributionCommand({ Id: id, IfMatch: etag, DistributionConfig: config }),
          {
            abortSignal: signal,
          },
        ),
      );
      return info(out.Distribution);
    },
    async disableAndDelete(id, o) {
      let current = await admin.getDistribution(id, o.signal);
      if (current.config.Enabled) {
        await admin.updateDistribution(id, current.etag, { ...current.config, Enabled: false }, o.signal);
      }
      const deadline = Date.now() + (o.timeoutMs ?? 30 * 60_000);
      for (;;) {
        current = await admin.getDistribution(id, o.signal);
        if (current.status === "Deployed" && !current.config.Enabled) break;
        if (Date.now() > deadline)
          throw new Error(`distribution ${id} was still ${current.status} after the wait`);
        await sleep(o.pollMs ?? 15_000, undefined, o.signal ? { signal: o.signal } : {});
      }
      await call("cloudfront:DeleteDistribution", `distribution ${id}`, () =>
        client.send((sdk) => new sdk.DeleteDistributionCommand({ Id: id, IfMatch: current.etag }), {
          abortSignal: o.signal,
        }),
      );
    },
    async findOriginAccessControl(name, signal) {
      let marker: string | undefined;
      do {
        const page = await call("cloudfront:ListOriginAccessControls", "origin access controls", () =>
          client.send((sdk) => new sdk.ListOriginAccessControlsCommand(marker ? { Marker: marker } : {}), {
            abortSignal: signal,
          }),
        );
        const found = page.OriginAccessControlList?.Items?.find((i) => i.Name === name);
        if (found?.Id) return { id: found.Id };
        marker = page.OriginAccessControlList?.IsTruncated
          ? page.OriginAccessControlList.NextMarker
          : undefined;
      } while (marker);
      return undefined;
    },
    async createOriginAccessControl(name, description, signal) {
      const out = await call("cloudfront:CreateOriginAccessControl", `origin access control ${name}`, () =>
        client.send(
          (sdk) =>
            new sdk.CreateOriginAccessControlCommand({
              OriginAccessControlConfig: {
                Name: name,
                Description: description,
                SigningProtocol: "sigv4",
                SigningBehavior: "always",
                OriginAccessControlOriginType: "s3",
              },
            }),
          { abortSignal: signal },
        ),
      );
      return { id: out.OriginAccessControl?.Id ?? "" };
    },
    async deleteOriginAccessControl(id, signal) {
      const got = await call("cloudfront:GetOriginAccessControl", `origin access control ${id}`, () =>
        client.send((sdk) => new sdk.GetOriginAccessControlCommand({ Id: id }), { abortSignal: signal }),
      );
      await call("cloudfront:DeleteOriginAccessControl", `origin access control ${id}`, () =>
        client.send((sdk) => new sdk.DeleteOriginAccessControlCommand({ Id: id, IfMatch: got.ETag }), {
          abortSignal: signal,
        }),
      );
    },
    async cachePolicyDefaultTtl(id, signal) {
      try {
        const out = await client.send((sdk) => new sdk.GetCachePolicyCommand({ Id: id }), {
          abortSignal: signal,
        });
        return out.CachePolicy?.CachePolicyConfig?.DefaultTTL;
      } catch {
        return undefined;
      }
    },
    destroy: () => client.destroy(),
  };
  return admin;
}

// ───────────────────────────── the hit-ratio probe ─────────────────────────────

/** One fetch through the CDN. */
export interface CdnFetch {
  key: string;
  round: number;
  status: number;
  /** the X-Cache header: "Hit from cloudfront", "Miss from cloudfront", … */
  cache: string;
  hit: boolean;
  bytes: number;
  ms: number;
  error?: string;
}

export interface CdnProbeResult {
  samples: number;
  fetches: CdnFetch[];
  /** hits among the fetches of each round, in percent (round 1 is usually cold) */
  hitRatioByRound: number[];
  /** hits among all fetches, in percent */
  hitRatio: number;
  errors: number;
  /** fetches whose size differed from the object's */
  sizeMismatches: number;
  avgMs: number;
}

/** The URL of a key under a CDN base URL: every segment percent-encoded, slashes kept. */
export function objectUrl(baseUrl: string, key: string): string {
  const base = baseUrl.replace(/\/+$/, "");
  return `${base}/${key
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/")}`;
}

/** Whether an X-Cache header (CloudFront's, or a stand-in's) reports a cache hit. */
export function isCacheHit(xCache: string): boolean {
  return /^(hit|refreshhit)\b/i.test(xCache.trim());
}

/**
 * Fetches each sample object `rounds` times through the CDN (round by round, so the first round
 * warms the cache) and reads CloudFront's X-Cache header. Used by `cdn.check` and by the
 * performance verification.
 */
export async function measureCdnHitRatio(opts: {
  baseUrl: string;
  objects: Array<{ key: string; size: number }>;
  rounds?: number;
  concurrency?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<CdnProbeResult> {
  const rounds = opts.rounds ?? 2;
  const fetches: CdnFetch[] = [];
  for (let round = 1; round <= rounds; round++) {
    let next = 0;
    const worker = async () => {
      while (next < opts.objects.length) {
        const o = opts.objects[next++]!;
        const started = performance.now();
        try {
          const res = await fetch(objectUrl(opts.baseUrl, o.key), {
            signal: AbortSignal.any([
              ...(opts.signal ? [opts.signal] : []),
              AbortSignal.timeout(opts.timeoutMs ?? 15_000),
            ]),
          });
          const body = await res.arrayBuffer();
          const cache = res.headers.get("x-cache") ?? "";
          fetches.push({
            key: o.key,
            round,
            status: res.status,
            cache,
            hit: isCacheHit(cache),
            bytes: body.byteLength,
            ms: performance.now() - started,
          });
        } catch (err) {
          opts.signal?.throwIfAborted();
          fetches.push({
            key: o.key,
            round,
            status: 0,
            cache: "",
            hit: false,
            bytes: 0,
            ms: performance.now() - started,
            error: (err as Error).message,
          });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, opts.objects.length) }, worker));
  }
  const pct = (hits: number, all: number) => (all === 0 ? 0 : Math.round((hits / all) * 1000) / 10);
  const sizes = new Map(opts.objects.map((o) => [o.key, o.size]));
  const ok = fetches.filter((f) => f.status === 200);
  return {
    samples: opts.objects.length,
    fetches,
    hitRatioByRound: Array.from({ length: rounds }, (_, i) => {
      const inRound = fetches.filter((f) => f.round === i + 1);
      return pct(inRound.filter((f) => f.hit).length, inRound.length);
    }),
    hitRatio: pct(fetches.filter((f) => f.hit).length, fetches.length),
    errors: fetches.filter((f) => f.status !== 200).length,
    sizeMismatches: ok.filter((f) => f.bytes !== sizes.get(f.key)).length,
    avgMs: fetches.length ? Math.round(fetches.reduce((a, f) => a + f.ms, 0) / fetches.length) : 0,
  };
}
