import { z } from "zod";
import type { ObjectStore } from "../../../cloud/object-store.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import { formatBytes, formatDuration } from "../../../text/units.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { type ContextOf, defineStep, stepNow } from "../../define-step.js";
import { splitOnce } from "../../shards.js";
import { checkBucket, openSource, openTarget, pairId, storageSections } from "./buckets.js";
import { EtagMemo } from "./etag-memo.js";
import type { KeySplit } from "./listing.js";
import {
  deleteExtras,
  estimateSync,
  type KeyRange,
  type SyncEstimate,
  type SyncResult,
  type SyncSettings,
  syncBuckets,
} from "./sync-engine.js";
import { count, objects, TARGET_ONLY_RULE } from "./wording.js";

const MiB = 1024 * 1024;

const Input = z.strictObject({
  /** objects copied at once */
  concurrency: z.number().int().min(1).max(256).default(16),
  /** objects of this size (MiB) or more are uploaded in parts */
  multipartThresholdMb: z
    .number()
    .min(1)
    .max(5 * 1024)
    .default(64),
  /** part size (MiB); S3 needs at least 5 */
  partSizeMb: z
    .number()
    .min(5)
    .max(5 * 1024)
    .default(8),
  /** parts of one object uploaded at once */
  partsInFlight: z.number().int().min(1).max(16).default(4),
  /** memory for the part buffers of all multipart uploads together (MiB) */
  memoryMb: z.number().int().min(16).max(16_384).default(96),
  /** a bandwidth limit over all copies, in MB/s (10^6 bytes); none when absent */
  bandwidthMBps: z.number().positive().optional(),
  /** tries per object after the first, on throttling, 5xx and dropped connections */
  retries: z.number().int().min(0).max(20).default(5),
  retryBaseMs: z.number().int().min(1).max(60_000).default(500),
  /**
   * how S3 checks each write: `md5` sends the source's MD5 (its ETag) as Content-MD5, end to end;
   * `crc32` lets the SDK add a CRC32 trailer (aws-chunked; moto decodes it very slowly); `none`
   */
  checksums: z.enum(["md5", "crc32", "none"]).default("md5"),
  /** keys held back per side to repair a server that lists out of order */
  listWindow: z.number().int().min(0).max(100_000).default(2_000),
  pageSize: z.number().int().min(1).max(1000).default(1000),
  /** copies waiting for a worker; past it the listing pauses and a counting pass finds the totals */
  queueLength: z.number().int().min(1).max(100_000).optional(),
  /**
   * `full`: what the listings show as identical is compared as storage.verify compares it
   * (headers, user metadata, content where ETags cannot prove it) and copied again if it differs;
   * `listing`: sizes and ETags from the listings only (fastest; storage.verify checks the rest)
   */
  compare: z.enum(["full", "listing"]).default("full"),
  /** keys, or prefixes ending in `/` or `*`, to copy again whatever the comparison says */
  recopy: z.array(z.string().min(1)).max(10_000).default([]),
  /** how often the resume point is written */
  checkpointSeconds: z.number().min(0.1).max(600).default(3),
  /**
   * key ranges the sync is split into, each a job any worker on any replica takes (with
   * `engine.shardWorkers` per process); 1: the whole sync in the run's own worker
   */
  shards: z.number().int().min(1).max(1_000).default(1),
});
export type StorageSyncInput = z.infer<typeof Input>;

export const storageSync = defineStep({
  type: "storage.sync",
  description: "copy objects from the source bucket to the target bucket",
  input: Input,
  configSections: ["source.storage", "target.s3"],
  mutating: true,
  stallWatch: true,
  checkpoints: {
    split: z.custom<KeySplit>(),
    began: z.number(),
    // by key range: how many times its check found it short and it was sent again (sharded)
    rounds: z.array(z.number().int().min(0)),
    // in a part: the round its resume point belongs to
    round: z.number().int().min(0),
    // the copy engine's own resume point (storage-sync-engine.ts), an object it alone reads
    sync: z.record(z.string(), z.unknown()),
  },
});

/** {GetObject: 3, ListObjectsV2: 1} → "GetObject 3, ListObjectsV2 1" */
function byOperation(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([op, n]) => `${op} ${n}`)
    .join(", ");
}

function settingsOf(input: StorageSyncInput, deps: StepDeps, deleteExtra: boolean): SyncSettings {
  const { source, target } = storageSections(deps);
  return {
    prefix: source.prefix,
    concurrency: input.concurrency,
    multipartThreshold: Math.round(input.multipartThresholdMb * MiB),
    partSize: Math.round(input.partSizeMb * MiB),
    queueSize: input.partsInFlight,
    multipartMemory: input.memoryMb * MiB,
    ...(input.bandwidthMBps ? { bandwidth: input.bandwidthMBps * 1e6 } : {}),
    retries: input.retries,
    retryBaseMs: input.retryBaseMs,
    window: input.listWindow,
    pageSize: input.pageSize,
    queueLength: input.queueLength ?? Math.max(256, input.concurrency * 16),
    ...(target.storageClass !== "STANDARD" ? { storageClass: target.storageClass } : {}),
    deleteExtra,
    contentMd5: input.checksums === "md5",
    compare: input.compare,
    recopy: input.recopy,
  };
}

function withStores<T>(
  deps: StepDeps,
  input: StorageSyncInput,
  fn: (source: ObjectStore, target: ObjectStore) => Promise<T>,
): Promise<T> {
  const sockets = input.concurrency * 2 + 8;
  const source = openSource(deps, { maxSockets: sockets });
  const target = openTarget(deps, { maxSockets: sockets, writeChecksums: input.checksums === "crc32" });
  return fn(source, target).finally(() => {
    source.destroy();
    target.destroy();
  });
}

/**
 * A key range as a part of the sync (or, with `check`, of the check after it; with `newSince`, a
 * live migration's check, where what was uploaded since the sync began is new, not missing).
 */
type RangePart = KeyRange & { check?: boolean; round?: number; newSince?: number };

/**
 * The parts over a split: a range sent again after its check found it short carries its round
 * (a new part: the pool does not take the earlier result for it, and the part lists its range
 * from the start); over a server that listed out of order each part lists the whole bucket.
 */
async function rangeParts(
  split: KeySplit,
  ctx: ContextOf<typeof storageSync>,
  check: boolean,
): Promise<RangePart[]> {
  const rounds = (await ctx.checkpoint.get("rounds")) ?? [];
  return split.ranges.map(({ after, until }, i) => ({
    after,
    ...(until === undefined ? {} : { until }),
    ...(split.ordered === false ? { whole: true } : {}),
    ...(check ? { check: true } : {}),
    ...(rounds[i] ? { round: rounds[i] } : {}),
  }));
}

/**
 * A key range's result as its part returns it: the copy's, and when the part's call began and ended
 * (epoch ms, by the clock of the worker that ran it), so that the step can tell a range finished in
 * an earlier attempt from one finished in this one. Absent from a result an older build stored.
 */
type RangeResult = SyncResult & { startedAt?: number; finishedAt?: number };

/**
 * A sharded sync: `copied`, `copiedBytes`, `repaired`, `forced` and `seconds` are this attempt's (the
 * copies it made and the time they took), the other counts add up every range; `before` is what the
 * ranges finished in an earlier attempt had copied (their results kept, the ranges not run again).
 */
interface ShardedSyncResult extends SyncResult {
  ranges: number;
  before: { ranges: number; copied: number; copiedBytes: number };
}

/**
 * The sync split into key ranges: one pass over the source listing samples the split (kept in the
 * checkpoint, so a retry reuses it and finished ranges stay finished), each range goes to the job
 * queue as a part for any worker, with a checkpoint of its own, and the parts' results add up.
 */
async function shardedSync(
  source: ObjectStore,
  target: ObjectStore,
  settings: SyncSettings,
  input: StorageSyncInput,
  ctx: ContextOf<typeof storageSync> & { shards: NonNullable<StepContext["shards"]> },
  /** epoch ms, the step's clock */
  now: () => number,
): Promise<ShardedSyncResult> {
  const attemptBegan = now();
  const split = await splitOnce(
    source,
    input.shards,
    { prefix: settings.prefix, window: settings.window, pageSize: settings.pageSize },
    ctx,
  );
  const ranges = split.ranges;
  ctx.log.info({ ranges: ranges.length, objects: split.objects }, "sync split into key ranges");
  const results = await ctx.shards.run<RangeResult>(await rangeParts(split, ctx, false), (each, finished) => {
    let done = 0;
    let total = 0;
    let activity = finished;
    const workers = new Set<unknown>();
    each.forEach((p, i) => {
      done += p?.done ?? 0;
      total += p?.total ?? ranges[i]!.objects;
      activity += p?.activity ?? 0;
      if (p && (p as { worker?: unknown }).worker !== undefined)
        workers.add((p as { worker?: unknown }).worker);
    });
    return {
      done,
      total: Math.max(total, done),
      activity,
      unit: "objects",
      message: `${count(finished)} of ${count(ranges.length)} key ranges done, ${workers.size} worker${workers.size === 1 ? "" : "s"} · ${count(done)} of ${objects(Math.max(total, done))} checked`,
    };
  });
  // A range whose part ended before this attempt began was finished by an earlier one (a resumed
  // step: its result kept, the range not run again): its copies are not this attempt's, and no time
  // of this attempt measures them (a rate over both read "8,000 objects in 6 ms (535 MB/s)"). The
  // others ended while this attempt waited; one still at work on another replica when it began
  // (the step resumed after a crash of its own) started before it, and the time counts from there.
  const earlier = results.filter((r) => r.finishedAt === undefined || r.finishedAt < attemptBegan);
  const fresh = results.filter((r) => !earlier.includes(r));
  const sum = results.map(withoutTimes).reduce(addResults);
  const mine = fresh.map(withoutTimes).reduce(addResults, zeroed(sum));
  const before = earlier.map(withoutTimes).reduce(addResults, zeroed(sum));
  Object.assign(sum, {
    copied: mine.copied,
    copiedBytes: mine.copiedBytes,
    repaired: mine.repaired,
    forced: mine.forced,
  });
  if (settings.deleteExtra) sum.deleted = await deleteExtras(source, target, settings, ctx);
  const from = Math.min(attemptBegan, ...fresh.map((r) => r.startedAt ?? attemptBegan));
  sum.seconds = Math.max(0, now() - from) / 1000;
  return {
    ...sum,
    ranges: results.length,
    before: { ranges: earlier.length, copied: before.copied, copiedBytes: before.copiedBytes },
  };
}

/** A range's result without its times (which do not add up). */
function withoutTimes(r: RangeResult): SyncResult {
  const { startedAt: _startedAt, finishedAt: _finishedAt, ...rest } = r;
  return rest;
}

/** Zero for every count, to add results to (`shape` gives the fields and the strings). */
function zeroed(shape: SyncResult): SyncResult {
  const out = { ...shape, requests: { source: {}, target: {} } };
  for (const [k, v] of Object.entries(out))
    if (typeof v === "number") (out as Record<string, unknown>)[k] = 0;
  return out;
}

/**
 * The check after a sharded sync, in the same key ranges (the split the copy used), each range a
 * job again: what is still missing or different, added up. A range found short goes into its next
 * round: the next attempt copies it again from its start (its earlier result and resume point
 * vouched for what is not there) and checks it again; the ranges found whole keep their results.
 */
async function shardedCheck(
  source: ObjectStore,
  settings: SyncSettings,
  input: StorageSyncInput,
  ctx: ContextOf<typeof storageSync> & { shards: NonNullable<StepContext["shards"]> },
  /** live (`replication`): when this sync began; what was uploaded since is for the sync after the switch */
  began: number | undefined,
): Promise<SyncEstimate> {
  const split = await splitOnce(
    source,
    input.shards,
    { prefix: settings.prefix, window: settings.window, pageSize: settings.pageSize },
    ctx,
  );
  const estimates = await ctx.shards.run<SyncEstimate>(
    (await rangeParts(split, ctx, true)).map((p) => (began === undefined ? p : { ...p, newSince: began })),
    (each, finished) => {
      const done = each.reduce((n, p) => n + (p?.done ?? 0), 0);
      return {
        done,
        activity: done + finished,
        total: Math.max(split.objects, done),
        unit: "objects",
        message: `checking the copy in ${count(split.ranges.length)} key ranges, ${count(finished)} done: ${count(done)} examined`,
      };
    },
    "check",
  );
  const short = (e: SyncEstimate) => e.toCopy > 0 || (settings.deleteExtra && e.extra > 0);
  if (estimates.some(short)) {
    const rounds = (await ctx.checkpoint.get("rounds")) ?? [];
    await ctx.checkpoint.set(
      "rounds",
      split.ranges.map((_, i) => (rounds[i] ?? 0) + (short(estimates[i]!) ? 1 : 0)),
    );
  }
  return estimates.reduce((a, b) => ({
    toCopy: a.toCopy + b.toCopy,
    toCopyBytes: a.toCopyBytes + b.toCopyBytes,
    missing: a.missing + b.missing,
    changed: a.changed + b.changed,
    identical: a.identical + b.identical,
    identicalBytes: a.identicalBytes + b.identicalBytes,
    extra: a.extra + b.extra,
    extraBytes: a.extraBytes + b.extraBytes,
    sourceObjects: a.sourceObjects + b.sourceObjects,
    sourceBytes: a.sourceBytes + b.sourceBytes,
    sampleCopies: [...a.sampleCopies, ...b.sampleCopies].slice(0, 10),
    sampleExtras: [...a.sampleExtras, ...b.sampleExtras].slice(0, 10),
    ...(a.newSince !== undefined || b.newSince !== undefined
      ? { newSince: (a.newSince ?? 0) + (b.newSince ?? 0) }
      : {}),
  }));
}

/** Two parts' results as one. */
function addResults(a: SyncResult, b: SyncResult): SyncResult {
  const out = { ...a };
  for (const k of Object.keys(a) as Array<keyof SyncResult>) {
    const x = a[k];
    const y = b[k];
    if (typeof x === "number" && typeof y === "number") (out as Record<string, unknown>)[k] = x + y;
  }
  out.heldPeak = Math.max(a.heldPeak, b.heldPeak);
  const merge = (p: Record<string, number>, q: Record<string, number>) => {
    const m = { ...p };
    for (const [op, n] of Object.entries(q)) m[op] = (m[op] ?? 0) + n;
    return m;
  };
  out.requests = {
    source: merge(a.requests.source, b.requests.source),
    target: merge(a.requests.target, b.requests.target),
  };
  return out;
}

/**
 * The step's outcome from what the sync (or its parts together) did. Its figures: `copied` and
 * `copiedBytes`, what this attempt copied; `seconds`, the time that took (this attempt's, or from
 * the start of a key range it waited for that had begun before it); `bytesPerSecond`, `copiedBytes`
 * over `seconds`, 0 when this attempt copied nothing (no rate to measure); `copiedBefore`, copies an
 * interrupted attempt had made before the resume point this one started from. In key ranges also
 * `ranges`, and `rangesFinishedBefore` with what those had copied
 * (`copiedInRangesFinishedBefore`, `copiedBytesInRangesFinishedBefore`): ranges an earlier attempt
 * finished, not run again, and counted in no rate. The other counts cover every range.
 */
function outcomeOf(
  r: SyncResult & Partial<Pick<ShardedSyncResult, "ranges" | "before">>,
  deleteExtra: boolean,
) {
  const rate = r.copied > 0 && r.seconds > 0 ? r.copiedBytes / r.seconds : 0;
  const before = r.before?.ranges ? r.before : undefined;
  const finishedBefore = before
    ? `${before.ranges === r.ranges ? `all ${count(before.ranges)}` : `${count(before.ranges)} of ${count(r.ranges ?? 0)}`} key ranges finished in an earlier attempt${
        before.copied > 0
          ? `, which copied ${objects(before.copied)} (${formatBytes(before.copiedBytes)})`
          : ""
      }`
    : undefined;
  const parts = [
    r.copied > 0
      ? `copied ${objects(r.copied)} (${formatBytes(r.copiedBytes)}) in ${formatDuration(r.seconds * 1000)}${rate > 0 ? ` (${formatBytes(rate)}/s)` : ""}`
      : before
        ? `nothing left to copy: ${finishedBefore}`
        : "nothing to copy",
    ...(before && r.copied > 0 ? [finishedBefore] : []),
    `${count(r.identical)} already identical`,
  ];
  if (r.repaired > 0)
    parts.push(
      `${objects(r.repaired)} copied again that looked identical but differed as storage.verify compares`,
    );
  if (r.forced > 0) parts.push(`${objects(r.forced)} copied again as \`recopy\` asks`);
  if (r.copiedBefore > 0) parts.push(`${count(r.copiedBefore)} copied by the interrupted attempt before`);
  if (r.vanished > 0) parts.push(`${count(r.vanished)} deleted at the source meanwhile`);
  if (deleteExtra) parts.push(`${count(r.deleted)} extra deleted from the target`);
  else if (r.extra > 0) parts.push(`${objects(r.extra)} only on the target: ${TARGET_ONLY_RULE}`);
  return {
    summary: parts.join("; "),
    figures: {
      copied: r.copied,
      copiedBytes: r.copiedBytes,
      identical: r.identical,
      identicalBytes: r.identicalBytes,
      extra: r.extra,
      deleted: r.deleted,
      vanished: r.vanished,
      stragglers: r.stragglers,
      repaired: r.repaired,
      forced: r.forced,
      copiedBefore: r.copiedBefore,
      seconds: Math.round(r.seconds * 10) / 10,
      bytesPerSecond: Math.round(rate),
      ...(r.ranges !== undefined && r.before
        ? {
            ranges: r.ranges,
            rangesFinishedBefore: r.before.ranges,
            copiedInRangesFinishedBefore: r.before.copied,
            copiedBytesInRangesFinishedBefore: r.before.copiedBytes,
          }
        : {}),
      sourceRequests: Object.values(r.requests.source).reduce((a, b) => a + b, 0),
      targetRequests: Object.values(r.requests.target).reduce((a, b) => a + b, 0),
      sourceRequestsByOperation: byOperation(r.requests.source),
      targetRequestsByOperation: byOperation(r.requests.target),
    },
  };
}

/** Progress for a pass over both listings: every object examined counts, identical ones too. */
function examining(
  ctx: StepContext,
  what: string,
): (examined: number, e: { toCopy: number; sourceObjects: number }) => void {
  return (examined, e) =>
    ctx.progress({
      done: examined,
      unit: "objects",
      message: `${what}: ${count(examined)} examined, ${count(e.toCopy)} to copy so far`,
    });
}

/**
 * `storage.sync`: copies the source bucket (R2) into the target bucket (S3). Compares both listings
 * key by key (size, and ETag where both are plain MD5s), copies what is missing or different,
 * streamed, keeping the object's headers and metadata; never deletes unless the run was started
 * with `--delete` (confirmed). Resumable after a kill, from a checkpointed point in key order.
 */
export function createStorageSyncStep(deps: StepDeps): StepDefinition<StorageSyncInput> {
  const now = stepNow(deps);
  return storageSync.implement({
    async plan(input, ctx) {
      const deleteExtra = ctx.run.options.delete === true;
      const settings = settingsOf(input, deps, deleteExtra);
      const { source: srcCfg, target: s3 } = storageSections(deps);
      return withStores(deps, input, async (source, target) => {
        await checkBucket(source, srcCfg.region, ctx.signal, { listingFollows: true });
        let targetExists = true;
        try {
          await checkBucket(target, s3.region, ctx.signal);
        } catch (err) {
          if (!(err instanceof CutoverError && err.code === ErrorCode.BucketMissing)) throw err;
          targetExists = false;
        }
        const memo = await EtagMemo.load(deps.dataDir, pairId(deps));
        const e = await estimateSync(source, targetExists ? target : undefined, settings, {
          signal: ctx.signal,
          concurrency: input.concurrency,
          memo,
          onExamined: examining(ctx, "listing both buckets"),
        });
        const changes: PlannedChange[] = [];
        if (!targetExists)
          changes.push({
            action: "check",
            target: target.label,
            detail: "does not exist yet: `s3.bucket` creates it",
          });
        changes.push({
          action: e.toCopy > 0 ? "copy" : "none",
          target: `${objects(e.toCopy)} (${formatBytes(e.toCopyBytes)})`,
          detail: `${count(e.missing)} missing on the target, ${count(e.changed)} different${
            e.sampleCopies.length
              ? `; e.g. ${e.sampleCopies
                  .slice(0, 5)
                  .map((k) => `\`${k}\``)
                  .join(", ")}`
              : ""
          }`,
        });
        changes.push({
          action: "none",
          target: `${objects(e.identical)} already identical (${formatBytes(e.identicalBytes)})`,
        });
        if (e.extra > 0) {
          changes.push({
            action: deleteExtra ? "delete" : "none",
            target: `${objects(e.extra)} only on the target (${formatBytes(e.extraBytes)})`,
            detail: deleteExtra
              ? `deleted because --delete was given; e.g. ${e.sampleExtras
                  .slice(0, 5)
                  .map((k) => `\`${k}\``)
                  .join(", ")}`
              : TARGET_ONLY_RULE,
          });
        }
        return {
          summary:
            e.toCopy > 0
              ? `would copy ${count(e.toCopy)} of ${objects(e.sourceObjects)} (${formatBytes(e.toCopyBytes)} of ${formatBytes(e.sourceBytes)})${deleteExtra && e.extra > 0 ? ` and delete ${count(e.extra)}` : ""}`
              : `nothing to copy: all ${objects(e.sourceObjects)} (${formatBytes(e.sourceBytes)}) are already on the target${deleteExtra && e.extra > 0 ? `; would delete ${count(e.extra)} extra` : ""}`,
          changes,
        };
      });
    },

    async run(input, ctx) {
      const deleteExtra = ctx.run.options.delete === true;
      const settings = settingsOf(input, deps, deleteExtra);
      const { source: srcCfg, target: s3 } = storageSections(deps);
      // before anything is listed: what the source gets after this is for the next sync (see verify)
      if (deps.file.replication) await ctx.checkpoint.set("began", stepNow(deps)().getTime());
      return withStores(deps, input, async (source, target) => {
        // The target's region is checked before anything is listed; an R2 source (no regions) is
        // checked by its listing's first page.
        await checkBucket(source, srcCfg.region, ctx.signal, { listingFollows: true });
        await checkBucket(target, s3.region, ctx.signal);
        const memo = await EtagMemo.load(deps.dataDir, pairId(deps));
        if (input.shards > 1 && ctx.shards) {
          const sharded = await shardedSync(
            source,
            target,
            settings,
            input,
            { ...ctx, shards: ctx.shards },
            () => now().getTime(),
          );
          return outcomeOf(sharded, deleteExtra);
        }
        const r = await syncBuckets(source, target, settings, {
          signal: ctx.signal,
          log: ctx.log,
          progress: (p) => ctx.progress(p),
          checkpoint: ctx.checkpoint,
          memo,
          checkpointEveryMs: input.checkpointSeconds * 1000,
        });
        return outcomeOf(r, deleteExtra);
      });
    },

    async shard(input, part, ctx) {
      const { check, round = 0, newSince, ...range } = part as RangePart;
      const settings = { ...settingsOf(input, deps, false), range };
      // a range sent again after its check found it short: its resume point vouched for what is
      // not there, so it is listed from its start
      if (!check && ((await ctx.checkpoint.get("round")) ?? 0) !== round) {
        await ctx.checkpoint.set("sync", {});
        await ctx.checkpoint.set("round", round);
      }
      if (check)
        return withStores(deps, input, async (source, target) =>
          estimateSync(source, target, settings, {
            signal: ctx.signal,
            memo: await EtagMemo.load(deps.dataDir, pairId(deps)),
            concurrency: input.concurrency,
            onExamined: examining(ctx, "checking the copy"),
            ...(newSince !== undefined ? { newSince } : {}),
          }),
        );
      return withStores(deps, input, async (source, target) => {
        const startedAt = now().getTime();
        const r = await syncBuckets(source, target, settings, {
          signal: ctx.signal,
          log: ctx.log,
          progress: (p) => ctx.progress(p),
          checkpoint: ctx.checkpoint,
          memo: await EtagMemo.load(deps.dataDir, pairId(deps)),
          checkpointEveryMs: input.checkpointSeconds * 1000,
        });
        return {
          ...r,
          requests: { source: r.requests.source, target: r.requests.target },
          startedAt,
          finishedAt: now().getTime(),
        } satisfies RangeResult;
      });
    },

    async verify(input, ctx) {
      const deleteExtra = ctx.run.options.delete === true;
      const settings = settingsOf(input, deps, deleteExtra);
      return withStores(deps, input, async (source, target) => {
        const memo = await EtagMemo.load(deps.dataDir, pairId(deps));
        // live (`replication`): customers keep uploading; what arrived after this sync began is
        // not missing but new, and the sync after the switch copies it
        const began = deps.file.replication ? await ctx.checkpoint.get("began") : undefined;
        const e =
          input.shards > 1 && ctx.shards
            ? await shardedCheck(source, settings, input, { ...ctx, shards: ctx.shards }, began)
            : await estimateSync(source, target, settings, {
                signal: ctx.signal,
                memo,
                concurrency: input.concurrency,
                onExamined: examining(ctx, "checking the copy"),
                ...(began !== undefined ? { newSince: began } : {}),
              });
        const ok = e.toCopy === 0 && (!deleteExtra || e.extra === 0);
        // A failed check means the resume point cannot be trusted: the next attempt lists everything.
        if (!ok) await ctx.checkpoint.set("sync", {});
        const fresh = e.newSince
          ? `; ${objects(e.newSince)} uploaded to the source since this sync began, for the sync after the switch`
          : "";
        const extras =
          e.extra > 0
            ? `; ${objects(e.extra)} only on the target${deleteExtra ? " (still there after --delete)" : `: ${TARGET_ONLY_RULE}`}`
            : "";
        return {
          ok,
          summary: ok
            ? `all ${objects(e.sourceObjects)} of the source (${formatBytes(e.sourceBytes)}) are on the target ${
                input.compare === "full"
                  ? "with equal size, content, headers and metadata"
                  : "with equal size and ETag or a later copy (listings only)"
              }${fresh}${extras}`
            : `${count(e.toCopy)} of ${objects(e.sourceObjects)} still missing or different (e.g. ${e.sampleCopies
                .slice(0, 3)
                .map((k) => `\`${k}\``)
                .join(", ")})${extras}`,
          figures: {
            sourceObjects: e.sourceObjects,
            sourceBytes: e.sourceBytes,
            pending: e.toCopy,
            extra: e.extra,
            ...(e.newSince !== undefined ? { uploadedSinceTheSyncBegan: e.newSince } : {}),
          },
        };
      });
    },
  });
}
