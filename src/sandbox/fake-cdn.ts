import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import type { ObjectHead, ObjectStore } from "../cloud/object-store.js";

/**
 * A stand-in for a CloudFront distribution (moto has no edge): an HTTP server that serves a
 * bucket's objects, caches them in memory (LRU, bounded in bytes) and answers with CloudFront's
 * headers: `X-Cache: Miss from cloudfront` on the first fetch, `Hit from cloudfront` afterwards,
 * `Age` and `Via`. A rehearsal points `cdn.check` at it with `baseUrl`.
 */
export interface FakeCdn {
  /** http://127.0.0.1:port */
  url: string;
  /** `failovers`: misses the secondary origin answered after the primary's 403/404 */
  stats(): { hits: number; misses: number; errors: number; failovers: number };
  /**
   * Turns origin failover on (the secondary origin given, e.g. the old bucket) or off
   * (`undefined`), as editing the distribution's origin group does. See {@link FAILOVER_STATUS_CODES}.
   */
  setFailover(secondary: ObjectStore | undefined): void;
  /** empties the cache, like an invalidation of /* */
  invalidate(): void;
  close(): Promise<void>;
}

interface Cached {
  body: Buffer;
  type: string;
  cacheControl?: string;
  etag: string;
  at: number;
  from: "primary" | "secondary";
}

/**
 * The origin-group failover criteria this CDN applies: the primary origin's answers after which it
 * asks the secondary. CloudFront origin groups fail over, for GET, HEAD and OPTIONS requests only,
 * when the primary returns one of the status codes chosen for the group (any of 400, 403, 404, 416,
 * 500, 502, 503, 504) or cannot be reached
 * (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/high_availability_origin_failover.html).
 * The cutover's group uses 403 and 404: S3 behind an origin access control answers 403 for a key
 * it lacks (404 when the policy allows s3:ListBucket), so an object not yet copied to the new
 * bucket is served from the old one. An unreachable primary fails over too.
 */
export const FAILOVER_STATUS_CODES: readonly number[] = [403, 404];

/**
 * Starts the CDN over `origin` (the primary origin). With `failover`, it starts as an origin
 * group with that bucket as the secondary origin; {@link FakeCdn.setFailover} changes it later.
 * Responses say which origin served them in `x-cutover-origin: primary | secondary` (not a
 * CloudFront header: for tests).
 */
export async function startFakeCdn(
  origin: ObjectStore,
  opts: { maxBytes?: number; port?: number; failover?: ObjectStore } = {},
): Promise<FakeCdn> {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const cache = new Map<string, Cached>();
  let cachedBytes = 0;
  const stats = { hits: 0, misses: 0, errors: 0, failovers: 0 };
  let secondary = opts.failover;

  const remember = (key: string, entry: Cached) => {
    if (entry.body.length > maxBytes) return;
    cache.set(key, entry);
    cachedBytes += entry.body.length;
    for (const [k, v] of cache) {
      if (cachedBytes <= maxBytes) break;
      cache.delete(k);
      cachedBytes -= v.body.length;
    }
  };

  const server = http.createServer((req, res) => {
    const send = (status: number, entry: Cached | undefined, xCache: string) => {
      res.statusCode = status;
      res.setHeader("x-cache", xCache);
      res.setHeader("via", "1.1 fake.cloudfront.net (CloudFront)");
      if (entry) {
        res.setHeader("x-cutover-origin", entry.from);
        res.setHeader("content-type", entry.type);
        res.setHeader("content-length", entry.body.length);
        res.setHeader("etag", `"${entry.etag}"`);
        if (entry.cacheControl) res.setHeader("cache-control", entry.cacheControl);
        res.setHeader("age", Math.floor((Date.now() - entry.at) / 1000));
        res.end(req.method === "HEAD" ? undefined : entry.body);
      } else res.end();
    };
    let key: string;
    try {
      key = decodeURIComponent((req.url ?? "/").split("?")[0]!.slice(1));
    } catch {
      stats.errors++;
      send(400, undefined, "Error from cloudfront");
      return;
    }
    const hit = cache.get(key);
    if (hit) {
      cache.delete(key);
      cache.set(key, hit); // most recently used last
      stats.hits++;
      send(200, hit, "Hit from cloudfront");
      return;
    }
    fetchFromOrigins(key, req.method ?? "GET")
      .then(async ({ head, body, from }) => {
        const chunks: Buffer[] = [];
        for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
        const entry: Cached = {
          body: Buffer.concat(chunks),
          type: head.contentType ?? "application/octet-stream",
          etag: head.etag,
          at: Date.now(),
          from,
          ...(head.cacheControl ? { cacheControl: head.cacheControl } : {}),
        };
        remember(key, entry);
        stats.misses++;
        send(200, entry, "Miss from cloudfront");
      })
      .catch(() => {
        stats.errors++;
        // An origin reached through an origin access control answers 403 for a missing key.
        send(403, undefined, "Error from cloudfront");
      });
  });
  /** the primary's object, or, on one of the failover answers, the secondary's */
  async function fetchFromOrigins(
    key: string,
    method: string,
  ): Promise<{ head: ObjectHead; body: Readable; from: "primary" | "secondary" }> {
    try {
      return { ...(await origin.get(key)), from: "primary" };
    } catch (err) {
      const other = secondary;
      if (!other || !["GET", "HEAD", "OPTIONS"].includes(method) || !failsOver(err)) throw err;
      const out = await other.get(key);
      stats.failovers++;
      return { ...out, from: "secondary" };
    }
  }

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({ ...stats }),
    setFailover(store) {
      secondary = store;
    },
    invalidate() {
      cache.clear();
      cachedBytes = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A 403 or 404 from the primary (ObjectStore errors carry the status), or no answer at all. */
function failsOver(err: unknown): boolean {
  const details = (err as { details?: { status?: unknown; awsError?: unknown } }).details;
  const status = details?.status;
  if (typeof status === "number") return FAILOVER_STATUS_CODES.includes(status);
  return details?.awsError === "NoSuchKey" || status === undefined;
}

/** The parts of a CloudFront distribution's configuration the fake CDN follows. */
export interface FollowedDistribution {
  Origins?: { Items?: Array<{ Id?: string; DomainName?: string }> };
  OriginGroups?: {
    Items?: Array<{
      Id?: string;
      FailoverCriteria?: { StatusCodes?: { Items?: number[] } };
      Members?: { Items?: Array<{ OriginId?: string }> };
    }>;
  };
  DefaultCacheBehavior?: { TargetOriginId?: string };
}

/**
 * Makes the CDN fail over as a distribution's configuration says (read from the CloudFront API,
 * e.g. moto's GetDistributionConfig): when the default behaviour targets an origin group, its
 * second member, found by domain in `stores`, answers what the primary refuses; otherwise there
 * is no failover. Returns the secondary origin's domain, or undefined. Refuses a group whose
 * criteria are not 403 and 404, which is all this CDN implements.
 */
export function followDistribution(
  cdn: FakeCdn,
  config: FollowedDistribution,
  stores: Record<string, ObjectStore>,
): string | undefined {
  const target = config.DefaultCacheBehavior?.TargetOriginId;
  const group = config.OriginGroups?.Items?.find((g) => g.Id === target);
  if (!group) {
    cdn.setFailover(undefined);
    return undefined;
  }
  const codes = [...(group.FailoverCriteria?.StatusCodes?.Items ?? [])].sort().join(",");
  if (codes !== FAILOVER_STATUS_CODES.join(","))
    throw new Error(`the fake CDN fails over on ${FAILOVER_STATUS_CODES.join("/")} only, not ${codes}`);
  const secondaryId = group.Members?.Items?.[1]?.OriginId;
  const domain = config.Origins?.Items?.find((o) => o.Id === secondaryId)?.DomainName;
  const store = domain ? stores[domain] : undefined;
  if (!domain || !store) throw new Error(`no bucket stands for the failover origin ${domain ?? secondaryId}`);
  cdn.setFailover(store);
  return domain;
}
