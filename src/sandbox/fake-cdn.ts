import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ObjectStore } from "../cloud/object-store.js";

/**
 * A stand-in for a CloudFront distribution (moto has no edge): an HTTP server that serves a
 * bucket's objects, caches them in memory (LRU, bounded in bytes) and answers with CloudFront's
 * headers: `X-Cache: Miss from cloudfront` on the first fetch, `Hit from cloudfront` afterwards,
 * `Age` and `Via`. A rehearsal points `cdn.check` at it with `baseUrl`.
 */
export interface FakeCdn {
  /** http://127.0.0.1:port */
  url: string;
  stats(): { hits: number; misses: number; errors: number };
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
}

export async function startFakeCdn(
  origin: ObjectStore,
  opts: { maxBytes?: number; port?: number } = {},
): Promise<FakeCdn> {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const cache = new Map<string, Cached>();
  let cachedBytes = 0;
  const stats = { hits: 0, misses: 0, errors: 0 };

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
    origin
      .get(key)
      .then(async ({ head, body }) => {
        const chunks: Buffer[] = [];
        for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
        const entry: Cached = {
          body: Buffer.concat(chunks),
          type: head.contentType ?? "application/octet-stream",
          etag: head.etag,
          at: Date.now(),
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
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({ ...stats }),
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
