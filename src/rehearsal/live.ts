import pg from "pg";
import { readLag, replicationNames } from "../cloud/replication.js";
import type { MigrationFile } from "../config/schema.js";
import { checkObjects, startTraffic, type Traffic, type TrafficLog } from "../sandbox/live-shop.js";
import { OLD } from "./config.js";
import type { LiveReport } from "./report.js";
import type { World } from "./world.js";

/*
 * The rehearsal's live shop: customers order, pay, cancel, upload and read through whichever app
 * the fake Cloudflare's `api.gogojap.com` names at each request (the old IP: the old shop on the
 * source as shop_app; anything else: the new shop on the target), and fetch media from whichever
 * host `cdn.gogojap.com` names (R2's public URL, or CloudFront with R2 as its failover origin).
 * Replication lag is sampled meanwhile.
 */

/** The switch names, in the order the rehearsal switches. */
export const SWITCH_NAMES = ["cutover 1", "rollback", "cutover 2"] as const;

export interface LiveShopRun {
  readonly traffic: Traffic;
  /** each moment (epoch ms) a request first went to the other app than the one before */
  readonly switches: number[];
  readonly startedAt: number;
  /** replication lag samples: ms behind and WAL bytes, from whichever direction runs */
  readonly lag: Array<{ at: number; ms: number; bytes: number }>;
  /** stops the traffic (waiting for the request in flight) and the lag sampler; safe twice */
  stop(): Promise<TrafficLog>;
}

function recordContent(world: World, name: string): string | undefined {
  return world.cloudflare.records("gogojap.com").find((r) => r.name === name)?.content;
}

/** Starts the live shop's traffic and the lag sampler. Stop it with {@link LiveShopRun.stop}. */
export function startLiveShop(world: World, file: MigrationFile, writesPerSecond: number): LiveShopRun {
  const switches: number[] = [];
  let side: "old" | "new" = "old";
  const oldMediaHost = new URL(OLD.cdnUrl).host;
  const traffic = startTraffic({
    route: () => {
      const now = recordContent(world, "api.gogojap.com") === OLD.ip ? "old" : "new";
      if (now !== side) {
        side = now;
        switches.push(Date.now());
      }
      return now === "old" ? world.oldShop : world.newShop;
    },
    writesPerSecond,
    seed: 18,
    media: {
      cdn: () =>
        recordContent(world, "cdn.gogojap.com") === oldMediaHost ? world.oldCdn.url : world.cdn.url,
    },
  });
  const lag: LiveShopRun["lag"] = [];
  const env = file.environment;
  let stopped = false;
  const sampler = (async () => {
    const clients: pg.Client[] = [];
    try {
      const open = async (url: string) => {
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
        c.on("error", () => undefined);
        await c.connect();
        clients.push(c);
        return c;
      };
      const source = await open(world.db.source);
      const target = await open(world.db.target);
      while (!stopped) {
        const at = Date.now();
        const l =
          (await readLag(source, replicationNames(env, "fwd").slot).catch(() => null)) ??
          (await readLag(target, replicationNames(env, "rev").slot).catch(() => null));
        if (l?.connected) lag.push({ at, ms: Math.round(l.seconds * 1000), bytes: l.bytes });
        await new Promise((r) => setTimeout(r, 500));
      }
    } catch {
      // a sampler that cannot connect leaves the lag unmeasured; the report says "no samples"
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
    }
  })();
  let stopping: Promise<TrafficLog> | undefined;
  return {
    traffic,
    switches,
    startedAt: Date.now(),
    lag,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        const log = await traffic.stop();
        await sampler;
        return log;
      })();
      return stopping;
    },
  };
}

/** The uploads acknowledged until `until` (epoch ms) that the source bucket (R2) lacks. */
export async function uploadsMissingOnSource(
  world: World,
  log: TrafficLog,
  until: number,
): Promise<{ acknowledged: number; lost: number; examples: string[] }> {
  const upTo = { ...log, acked: log.acked.filter((w) => w.kind === "upload" && w.at < until) };
  const c = await checkObjects(upTo, world.sourceStore);
  return {
    acknowledged: c.acknowledged,
    lost: c.lost.length,
    examples: c.lost.slice(0, 5).map((l) => l.why),
  };
}

/** p50, p99 and max of the lag samples. */
export function lagFigures(samples: LiveShopRun["lag"]): LiveReport["lag"] {
  if (!samples.length) return { samples: 0, p50Ms: null, p99Ms: null, maxMs: null, maxBytes: null };
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)]!;
  return {
    samples: ms.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: ms[ms.length - 1]!,
    maxBytes: Math.max(...samples.map((s) => s.bytes)),
  };
}
