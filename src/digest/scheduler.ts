import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Cron } from "croner";
import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { MigrationFile } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Db } from "../store/client.js";
import { claimDigestDay, markDigestFailed, markDigestPosted } from "../store/digests.js";

export { claimDigestDay };

import type { PublishedDigest } from "./publish.js";
import { readStabilisation } from "./stabilisation.js";

/**
 * The daily digest schedule: at digest.time in digest.timezone, and once at start-up (a replica
 * that starts after the time posts a digest the others missed). Exactly one digest per
 * environment and local day, however many replicas run or restart: each first claims the day
 * with a unique (env, day) row in the state database, and only the one whose insert went in
 * posts. A claim whose process died before posting is taken over after `leaseMs`; a digest
 * that failed to post is retried after `retryMs`.
 */

const DAY_MS = 86_400_000;

/** "YYYY-MM-DD" of `date` in `timezone`. */
export function localDay(date: Date, timezone: string): string {
  return new Intl.DateTimeFormat("en-CA", {
    timeZone: timezone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).format(date);
}

/** "HH:MM" (24-hour) of `date` in `timezone`. */
export function localTime(date: Date, timezone: string): string {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: timezone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(date);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "00";
  return `${get("hour")}:${get("minute")}`;
}

export type TickOutcome =
  | { kind: "disabled" }
  | { kind: "not-due"; day: string; at: string }
  | { kind: "window-over"; day: string }
  | { kind: "taken"; day: string }
  | { kind: "posted"; day: string; digest: PublishedDigest }
  | { kind: "failed"; day: string; error: string };

export interface DigestSchedulerDeps {
  db: Db;
  file: MigrationFile;
  log: Logger;
  /** posts the digest of a local day (src/digest/publish.ts `publishDigest`, bound to its deps) */
  publish(day: string, now: Date): Promise<PublishedDigest>;
  clock?: Clock;
  /** names this process in the claim row; default host:pid:random */
  instanceId?: string;
  /** a claim older than this whose digest was not posted is taken over (default 15 min) */
  leaseMs?: number;
  /** a failed digest is tried again after this (default 5 min) */
  retryMs?: number;
}

export interface DigestScheduler {
  /** checks now: posts today's digest if it is due and no one has claimed it */
  tick(): Promise<TickOutcome>;
  /** when the loop will next wake up (undefined when stopped or disabled) */
  readonly nextRunAt: Date | undefined;
  /** stops the loop and waits for a digest being posted to finish */
  stop(): Promise<void>;
}

/**
 * Starts the schedule: one tick now, then one at every digest.time in digest.timezone (and a
 * retry after a failure).
 *
 * @example const s = startDigestScheduler({ db, file, log, publish: (day, now) => publishDigest(deps, day, now) }); … await s.stop();
 */
export function startDigestScheduler(deps: DigestSchedulerDeps): DigestScheduler {
  const { db, file, log } = deps;
  const clock = deps.clock ?? systemClock;
  const cfg = file.digest;
  const by = deps.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const leaseMs = deps.leaseMs ?? 15 * 60_000;
  const retryMs = deps.retryMs ?? 5 * 60_000;
  const [hh, mm] = cfg.time.split(":").map(Number) as [number, number];
  const cron = new Cron(`${mm} ${hh} * * *`, { timezone: cfg.timezone, paused: true });
  const controller = new AbortController();
  let nextRunAt: Date | undefined;
  let retryAt: Date | undefined;
  let ticking: Promise<TickOutcome> | undefined;

  async function tickOnce(): Promise<TickOutcome> {
    if (!cfg.enabled) return { kind: "disabled" };
    const now = clock.now();
    const day = localDay(now, cfg.timezone);
    if (localTime(now, cfg.timezone) < cfg.time) return { kind: "not-due", day, at: cfg.time };
    // Digests run until the day after the stabilisation window ends (that day's says it is over).
    const stab = await readStabilisation(db, file, now);
    if (stab?.over && now.getTime() >= stab.endsAt.getTime() + DAY_MS) return { kind: "window-over", day };
    const won = await claimDigestDay(db, { env: file.environment, day, by, now, leaseMs, retryMs });
    if (!won) return { kind: "taken", day };
    try {
      const digest = await deps.publish(day, now);
      await markDigestPosted(db, file.environment, day, {
        at: clock.now(),
        channel: digest.channel,
        ts: digest.ts,
        fileIds: digest.fileIds,
        note: digest.chartsNote,
      });
      log.info({ day, channel: digest.channel, files: digest.fileIds.length }, "daily digest posted");
      return { kind: "posted", day, digest };
    } catch (err) {
      const error = describeError(err);
      await markDigestFailed(db, file.environment, day, error).catch(() => undefined);
      log.warn({ day, err: error }, "daily digest failed; it will be tried again");
      retryAt = new Date(clock.now().getTime() + retryMs);
      return { kind: "failed", day, error };
    }
  }

  function tick(): Promise<TickOutcome> {
    // one tick at a time in a process; the database arbitrates between processes
    ticking ??= tickOnce().finally(() => {
      ticking = undefined;
    });
    return ticking;
  }

  async function loop(): Promise<void> {
    while (!controller.signal.aborted) {
      try {
        await tick();
      } catch (err) {
        log.warn({ err: describeError(err) }, "digest schedule check failed");
      }
      if (controller.signal.aborted || !cfg.enabled) break;
      const now = clock.now();
      const fromCron = cron.nextRun(now) ?? new Date(now.getTime() + DAY_MS);
      const wake = retryAt && retryAt < fromCron ? retryAt : fromCron;
      retryAt = undefined;
      nextRunAt = wake;
      await clock.sleep(wake.getTime() - now.getTime(), controller.signal);
    }
    nextRunAt = undefined;
  }

  const running = loop();
  return {
    tick,
    get nextRunAt() {
      return nextRunAt;
    },
    async stop() {
      controller.abort();
      cron.stop();
      await running;
      await ticking?.catch(() => undefined);
    },
  };
}
