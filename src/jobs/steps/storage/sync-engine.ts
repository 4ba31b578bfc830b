import type { Readable, Transform } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { isRetryableStoreError, type ObjectStore, type ObjectSummary } from "../../../cloud/object-store.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import { formatBytes, formatDuration } from "../../../text/units.js";
import { Semaphore } from "../../../util/semaphore.js";
import type { CheckpointStore, Progress } from "../../define-step.js";
import type { EtagMemo } from "./etag-memo.js";
import { BoundedQueue, backoffMs, meter, RateLimit, RateMeter } from "./flow.js";
import {
  compareKeyStrings,
  isPlainMd5,
  type ListedObject,
  looksIdentical,
  mergeListings,
  sortedListing,
} from "./listing.js";
import { compareObject } from "./verify.js";
import { count, objects } from "./wording.js";

/** How a sync runs; every size in bytes. */
export interface SyncSettings {
  prefix: string;
  concurrency: number;
  /** objects of this size or more go up in parts */
  multipartThreshold: number;
  partSize: number;
  /** parts of one object in flight */
  queueSize: number;
  /** bound on the part buffers of all multipart uploads together */
  multipartMemory: number;
  /** bytes per second over all copies; undefined for no limit */
  bandwidth?: number;
  /** tries per object after the first */
  retries: number;
  retryBaseMs: number;
  /** keys held back per side to repair a server's local disorder */
  window: number;
  pageSize: number;
  /** tasks waiting for a worker; the listing pauses beyond it */
  queueLength: number;
  storageClass?: string;
  /** delete target objects the source does not have (`--delete`, confirmed) */
  deleteExtra: boolean;
  /**
   * send the source's MD5 (its single-part ETag) as Content-MD5, so S3 checks the bytes end to end;
   * off where the target client adds its own checksum instead
   */
  contentMd5: boolean;
  /**
   * `full` (the default): an object whose listing looks identical is compared as storage.verify
   * compares it (headers, user metadata, and content where the ETags cannot prove it), and copied
   * again when verify would flag it; `listing`: size and ETag (or a later copy) from the listings
   * alone, the fastest, for a delta sync whose result storage.verify checks
   */
  compare?: "full" | "listing";
  /** keys, or prefixes ending in `/` or `*`, copied again whatever the comparison says */
  recopy?: string[];
  /**
   * only keys after `after` up to and including `until` (open-ended without it): one part of a
   * sync split into key ranges. Keys a server lists out of order are handled by whichever part
   * meets them, up to its `until`. With `whole` (the split met a server listing out of order) a
   * part lists the whole bucket and keeps its range's keys: such a server's key of one range can
   * come after later ranges' keys, where a part stopping at `until` would not wait for it, and its
   * start-after need not follow S3's order (s3rver and the light stand-in compare UTF-16, so a
   * range starting after "！" never shows "😀"), where a part listing from `after` would not see it
   */
  range?: KeyRange;
}

/** A part of the key space: keys after `after` ("" for the start), up to and including `until`. */
export interface KeyRange {
  after: string;
  until?: string;
  whole?: boolean;
}

/** Whether a key is before a range (at or before its `after`), for a part listing the whole bucket. */
export function beforeRange(range: KeyRange | undefined, key: string): boolean {
  return range?.whole === true && range.after !== "" && compareKeyStrings(key, range.after) <= 0;
}

/** Whether a key is named by `recopy` (exactly, or under a prefix ending in `/` or `*`). */
export function forcedRecopy(recopy: string[] | undefined, key: string): boolean {
  if (!recopy?.length) return false;
  return recopy.some((r) =>
    r.endsWith("*") ? key.startsWith(r.slice(0, -1)) : r.endsWith("/") ? key.startsWith(r) : key === r,
  );
}

export interface SyncHooks {
  signal: AbortSignal;
  log: Logger;
  progress(p: Progress): void;
  checkpoint: CheckpointStore;
  memo: EtagMemo;
  /** ms between progress reports */
  progressEveryMs?: number;
  /** ms between checkpoint writes */
  checkpointEveryMs?: number;
}

export interface SyncResult {
  /** objects copied by this run */
  copied: number;
  copiedBytes: number;
  /** objects found identical and left alone */
  identical: number;
  identicalBytes: number;
  /** objects the source listed but were gone when read */
  vanished: number;
  /** target objects the source does not have (kept unless deleteExtra) */
  extra: number;
  deleted: number;
  /** keys listed out of order by a server, resolved one by one */
  stragglers: number;
  /** copied again although the listings looked identical: verify's comparison found a difference */
  repaired: number;
  /** copied again because `recopy` named them */
  forced: number;
  /** where this run started (a resume point from a checkpoint), or "" */
  resumedAfter: string;
  /** copies made by earlier, interrupted attempts of the same step */
  copiedBefore: number;
  /**
   * the most listed objects held at once for the resume point (queued or in flight, or finished
   * behind one that is not): bounded by the queue and the workers, whatever the bucket's size
   */
  heldPeak: number;
  seconds: number;
  requests: { source: Record<string, number>; target: Record<string, number> };
}

/** What a dry run reports: read from both listings, nothing written. */
export interface SyncEstimate {
  toCopy: number;
  toCopyBytes: number;
  missing: number;
  changed: number;
  identical: number;
  identicalBytes: number;
  extra: number;
  extraBytes: number;
  sourceObjects: number;
  sourceBytes: number;
  /** some keys, for the preview */
  sampleCopies: string[];
  sampleExtras: string[];
  /** with `newSince`: source objects missing on the target that were uploaded at or after it */
  newSince?: number;
}

interface Task {
  /**
   * copy; check (a straggler: look it up first); compare (looks identical: compare fully first);
   * retry (a key an earlier attempt could not copy: read its source head, then as check)
   */
  kind: "copy" | "check" | "compare" | "retry";
  source: ListedObject;
  /** position in listing order, for the resume point; undefined for stragglers */
  seq?: number;
}

const FATAL = new Set([
  ErrorCode.StorageAccessRefused,
  ErrorCode.BucketMissing,
  ErrorCode.RegionMismatch,
  ErrorCode.Unreachable,
]);

/** Counts what a sync would do, from the two listings alone. */
export async function estimateSync(
  source: ObjectStore,
  target: ObjectStore | undefined,
  settings: Pick<SyncSettings, "prefix" | "window" | "pageSize" | "compare" | "recopy" | "range">,
  opts: {
    signal?: AbortSignal;
    memo?: EtagMemo;
    samples?: number;
    onListed?: (n: number) => void;
    /**
     * every object examined so far (identical ones included), every `progressEveryMs` and at the
     * end: a pass that finds nothing to copy still shows it is moving (the stall watchdog)
     */
    onExamined?: (examined: number, found: Pick<SyncEstimate, "toCopy" | "sourceObjects">) => void;
    progressEveryMs?: number;
    /** comparisons at once in `full` mode */
    concurrency?: number;
    /**
     * epoch ms: a source object missing on the target uploaded at or after it (by the second, as
     * S3 keeps Last-Modified) is counted in `newSince`, not as one to copy: in a live migration,
     * an upload that arrived after the sync began (the sync after the switch copies it)
     */
    newSince?: number;
  } = {},
): Promise<SyncEstimate> {
  const e: SyncEstimate = {
    toCopy: 0,
    toCopyBytes: 0,
    missing: 0,
    changed: 0,
    identical: 0,
    identicalBytes: 0,
    extra: 0,
    extraBytes: 0,
    sourceObjects: 0,
    sourceBytes: 0,
    sampleCopies: [],
    sampleExtras: [],
    ...(opts.newSince !== undefined ? { newSince: 0 } : {}),
  };
  const cutOff = opts.newSince !== undefined ? Math.floor(opts.newSince / 1000) * 1000 : undefined;
  const samples = opts.samples ?? 10;
  const remembered = opts.memo ? (k: string) => opts.memo!.get(k) : undefined;
  const copy = (o: ObjectSummary, why: "missing" | "changed") => {
    e.toCopy++;
    e.toCopyBytes += o.size;
    e[why]++;
    if (e.sampleCopies.length < samples) e.sampleCopies.push(o.key);
  };
  const items = target
    ? mergeListings(source, target, {
        prefix: settings.prefix,
        ...(settings.range?.after && !settings.range.whole ? { startAfter: settings.range.after } : {}),
        window: settings.window,
        pageSize: settings.pageSize,
        ...(opts.signal ? { signal: opts.signal } : {}),
        onListed: (side, n) => side === "source" && opts.onListed?.(n),
      })
    : onlySource(source, settings, opts.signal);
  // full mode: what looks identical in the listings is compared as storage.verify compares it
  const full = target !== undefined && settings.compare !== "listing";
  const slots = new Semaphore(opts.concurrency ?? 16);
  const pending = new Set<Promise<void>>();
  let failed: unknown;
  let examined = 0;
  /** runs one lookup with a slot (at most `concurrency` at once, none kept past its end) */
  const inSlot = async (work: () => Promise<void>) => {
    const release = await slots.acquire();
    const p = work()
      .catch((err) => {
        failed ??= err;
      })
      .finally(() => {
        examined++;
        release();
        pending.delete(p);
      });
    pending.add(p);
  };
  const compareFully = (o: ObjectSummary) =>
    inSlot(async () => {
      const c = await compareObject(source, target!, o.key, {
        metadata: true,
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(remembered ? { remembered } : {}),
        proven: (a, b) => opts.memo?.remember(o.key, a, b),
      });
      if (c.result === "same" || c.result === "vanished") {
        e.identical++;
        e.identicalBytes += o.size;
      } else copy(o, "changed");
    });
  // A key a server listed out of order: looked up on the target as it comes, not kept to the end.
  const lookUp = (s: ListedObject) =>
    inSlot(async () => {
      const head = target ? await target.head(s.key, opts.signal ? { signal: opts.signal } : {}) : undefined;
      if (head && looksIdentical(s, head, remembered)) {
        e.identical++;
        e.identicalBytes += s.size;
      } else copy(s, head ? "changed" : "missing");
    });
  const tell = () => opts.onExamined?.(examined, e);
  const ticker = opts.onExamined ? setInterval(tell, opts.progressEveryMs ?? 1_000) : undefined;
  ticker?.unref();
  try {
    await estimateItems();
  } finally {
    clearInterval(ticker);
  }
  tell();
  return e;

  async function estimateItems() {
    const until = settings.range?.until;
    for await (const item of items) {
      if (failed) throw failed;
      const key = "source" in item ? item.source.key : item.target.key;
      if (beforeRange(settings.range, key)) continue; // an earlier part's
      if (until !== undefined && compareKeyStrings(key, until) > 0) {
        // a later part's; a straggler of this one may still come unless the server lists in order
        if (item.kind === "source-straggler" || item.kind === "target-straggler" || settings.range?.whole)
          continue;
        break;
      }
      if (item.kind === "source-only" || item.kind === "both" || item.kind === "source-straggler") {
        e.sourceObjects++;
        e.sourceBytes += item.source.size;
      }
      switch (item.kind) {
        case "both":
          if (forcedRecopy(settings.recopy, item.source.key)) copy(item.source, "changed");
          else if (!looksIdentical(item.source, item.target, remembered)) copy(item.source, "changed");
          else if (full) {
            await compareFully(item.source); // examined when its comparison ends
            continue;
          } else {
            e.identical++;
            e.identicalBytes += item.source.size;
          }
          break;
        case "source-only":
          if (cutOff !== undefined && item.source.lastModified >= cutOff) e.newSince = (e.newSince ?? 0) + 1;
          else copy(item.source, "missing");
          break;
        case "target-only":
          e.extra++;
          e.extraBytes += item.target.size;
          if (e.sampleExtras.length < samples) e.sampleExtras.push(item.target.key);
          break;
        case "source-straggler":
          await lookUp(item.source); // examined when its lookup ends
          continue;
        case "target-straggler":
          break;
      }
      examined++;
    }
    await Promise.all([...pending]);
    if (failed) throw failed;
  }
}

async function* onlySource(
  source: ObjectStore,
  settings: Pick<SyncSettings, "prefix">,
  signal?: AbortSignal,
) {
  let token: string | undefined;
  do {
    const page = await source.listPage({
      prefix: settings.prefix,
      ...(token ? { token } : {}),
      ...(signal ? { signal } : {}),
    });
    for (const o of page.objects)
      yield { kind: "source-only" as const, source: { ...o, bytes: Buffer.from(o.key) } };
    token = page.nextToken;
  } while (token);
}

interface Checkpointed {
  /** every key up to and including this one is on the target */
  after?: string;
  /** false once a server listed keys out of order: resume points are then not trusted */
  ordered?: boolean;
  copied?: number;
  copiedBytes?: number;
  /**
   * keys before `after` that could not be copied: the next attempt tries them first (the resume
   * point moves past a failed key, so nothing waits on it)
   */
  failed?: string[];
}

/** failed keys kept for the next attempt; past it, the next attempt lists everything again */
const FAILED_KEPT = 1_000;

/**
 * Copies what the target lacks or holds differently, streaming, with bounded concurrency, and
 * resumable: the listing order gives a resume point (every key before it is done) that is
 * checkpointed every few seconds, so a rerun after a kill lists and compares only the rest.
 */
export async function syncBuckets(
  source: ObjectStore,
  target: ObjectStore,
  settings: SyncSettings,
  hooks: SyncHooks,
): Promise<SyncResult> {
  const { signal, log, memo } = hooks;
  const started = performance.now();
  const saved = (await hooks.checkpoint.get<Checkpointed>("sync")) ?? {};
  const range = settings.range;
  const savedAfter = saved.ordered !== false ? (saved.after ?? "") : "";
  // a part starts at its range, or further on at its own resume point
  const resumeAfter = range?.whole
    ? ""
    : range?.after && (!savedAfter || compareKeyStrings(savedAfter, range.after) < 0)
      ? range.after
      : savedAfter;
  const beyond = (key: string) => range?.until !== undefined && compareKeyStrings(key, range.until) > 0;
  if (savedAfter && resumeAfter === savedAfter)
    log.info({ after: resumeAfter }, "resuming the sync after the last checkpointed key");
  const remembered = (k: string) => memo.get(k);

  const result: SyncResult = {
    copied: 0,
    copiedBytes: 0,
    identical: 0,
    identicalBytes: 0,
    vanished: 0,
    extra: 0,
    deleted: 0,
    stragglers: 0,
    repaired: 0,
    forced: 0,
    resumedAfter: savedAfter && resumeAfter === savedAfter ? savedAfter : "",
    copiedBefore: saved.copied ?? 0,
    heldPeak: 0,
    seconds: 0,
    requests: { source: {}, target: {} },
  };
  // a server that lists out of order (the split saw it) gives no resume point to trust
  let ordered = saved.ordered !== false && !range?.whole;
  const retryKeys = resumeAfter ? (saved.failed ?? []) : [];
  if (retryKeys.length > 0)
    log.info({ keys: retryKeys.length }, "trying again first the objects the last attempt could not copy");

  // Totals: what the producer has found so far, plus a counting pass ahead of it once it waits.
  let found = 0;
  let foundBytes = 0;
  let listingDone = false;
  let ahead: { base: number; baseBytes: number; count: number; bytes: number; done: boolean } | undefined;
  let bytesMoving = 0; // bytes of objects in flight, counted as they stream
  const speed = new RateMeter();
  speed.add(0); // from the start, so the first report already has a pace
  // Permanent failures: counted, the first FAILED_KEPT kept (for the checkpoint and the message).
  const failures: Array<{ key: string; error: string }> = [];
  let failedCount = 0;
  // Every object the listing has shown (identical ones too) and every task finished: the progress
  // the stall watchdog sees moves while a sync finds nothing to copy.
  let examined = 0;
  let settled = 0;
  let fatal: unknown;

  const queue = new BoundedQueue<Task>(settings.queueLength);
  const internal = new AbortController();
  const stop = AbortSignal.any([signal, internal.signal]);

  // Resume point bookkeeping: tasks carry their listing position; the point advances over finished ones.
  const keyOfSeq = new Map<number, string>();
  const finishedSeqs = new Set<number>();
  let retireNext = 0;
  let lastProduced = resumeAfter; // the last in-order key the producer has passed
  let doneThrough = resumeAfter;
  const finishTask = (seq: number | undefined) => {
    if (seq === undefined) return;
    finishedSeqs.add(seq);
    while (finishedSeqs.has(retireNext)) {
      finishedSeqs.delete(retireNext);
      doneThrough = keyOfSeq.get(retireNext) ?? doneThrough;
      keyOfSeq.delete(retireNext);
      retireNext++;
    }
  };
  const hold = (seq: number, key: string) => {
    keyOfSeq.set(seq, key);
    if (keyOfSeq.size > result.heldPeak) result.heldPeak = keyOfSeq.size;
  };
  const resumePoint = () => (keyOfSeq.size === 0 ? lastProduced : doneThrough);

  // Once the copies hold the listing back, a pass over the rest of the SOURCE listing alone counts
  // what is left to examine, for the total and the ETA: one more listing of one side, not of both.
  let sourceSeen = 0; // source objects the producer has passed
  const startCounter = () => {
    if (ahead) return;
    const from = lastProduced;
    ahead = { base: sourceSeen, baseBytes: 0, count: 0, bytes: 0, done: false };
    const a = ahead;
    countAfter(from)
      .then(() => {
        a.done = true;
      })
      .catch((err) => {
        if (!stop.aborted)
          log.warn({ err }, "could not count ahead; totals stay open until the listing ends");
      });
    async function countAfter(after: string) {
      for await (const o of sortedListing(source, {
        prefix: settings.prefix,
        ...(after ? { startAfter: after } : {}),
        window: settings.window,
        pageSize: settings.pageSize,
        signal: stop,
      })) {
        if (beyond(o.key)) break;
        a.count++;
        a.bytes += o.size;
      }
    }
  };

  // The producer: the merged listing, turned into tasks, with back-pressure from the queue.
  const produce = async () => {
    let seq = 0;
    const enqueue = async (task: Task) => {
      if (queue.full) startCounter();
      await queue.push(task, stop);
    };
    for (const key of retryKeys) {
      found++;
      await enqueue({
        kind: "retry",
        source: { key, size: 0, etag: "", lastModified: 0, bytes: Buffer.from(key) },
      });
    }
    for await (const item of mergeListings(source, target, {
      prefix: settings.prefix,
      ...(resumeAfter ? { startAfter: resumeAfter } : {}),
      window: settings.window,
      pageSize: settings.pageSize,
      signal: stop,
    })) {
      const key =
        item.kind === "target-only" || item.kind === "target-straggler" ? item.target.key : item.source.key;
      if (beforeRange(range, key)) continue; // an earlier part's
      if (beyond(key)) {
        // a later part's; a straggler of this one may still come unless the server lists in order
        if (item.kind === "source-straggler" || item.kind === "target-straggler" || range?.whole) continue;
        break; // in order: everything after is a later part's too
      }
      examined++;
      if (item.kind !== "target-only" && item.kind !== "target-straggler") sourceSeen++;
      switch (item.kind) {
        case "both":
          if (forcedRecopy(settings.recopy, item.source.key)) {
            result.forced++;
            break;
          }
          if (looksIdentical(item.source, item.target, remembered)) {
            if (settings.compare !== "listing") {
              // compared fully by a worker; copied only if storage.verify would flag it
              const task: Task = { kind: "compare", source: item.source, seq: seq++ };
              hold(task.seq!, item.source.key);
              lastProduced = item.source.key;
              await enqueue(task);
              continue;
            }
            result.identical++;
            result.identicalBytes += item.source.size;
            settled++;
            lastProduced = item.source.key;
            continue;
          }
          break;
        case "source-only":
          break;
        case "target-only":
          result.extra++;
          continue;
        case "source-straggler":
          ordered = false;
          result.stragglers++;
          found++;
          foundBytes += item.source.size;
          await enqueue({ kind: "check", source: item.source });
          continue;
        case "target-straggler":
          ordered = false;
          result.stragglers++;
          continue;
      }
      const s = item.source;
      found++;
      foundBytes += s.size;
      const task: Task = { kind: "copy", source: s, seq: seq++ };
      hold(task.seq!, s.key);
      lastProduced = s.key;
      await enqueue(task);
    }
    listingDone = true;
  };

  const multipartSlots = new Semaphore(
    Math.max(1, Math.floor(settings.multipartMemory / ((settings.queueSize + 1) * settings.partSize))),
  );
  const limit = settings.bandwidth ? new RateLimit(settings.bandwidth) : undefined;

  // Keys whose source ETag looked like an MD5 but S3 found otherwise (BadDigest): sent without it.
  const notMd5 = new Set<string>();
  const copyOnce = async (key: string) => {
    const { head, body } = await source.get(key, { signal: stop });
    // A source stream cut mid-object must fail this copy at once (and be retried): left alone, the
    // PUT would wait for bytes that never come until its request timeout, minutes later.
    const cut = new AbortController();
    const onStop = () => cut.abort(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
    body.once("error", (err) => cut.abort(err));
    const objectSignal = cut.signal;
    let streamed = 0;
    // A counting stream costs CPU per object: only where a rate limit needs it, or the object is
    // large enough for its progress to show; small objects are counted when they are done.
    const metered = limit !== undefined || head.size >= 8 * 1024 * 1024;
    let flowing: Readable = body;
    let counted: Transform | undefined;
    if (metered) {
      counted = meter(
        (n) => {
          streamed += n;
          bytesMoving += n;
        },
        limit,
        stop,
      );
      flowing = body.pipe(counted);
      const c = counted;
      body.on("error", (err) => c.destroy(err));
      // The upload reports the failure; after an abort nobody else may be listening.
      c.on("error", () => undefined);
    }
    const meta = {
      ...(head.contentType !== undefined ? { contentType: head.contentType } : {}),
      ...(head.cacheControl !== undefined ? { cacheControl: head.cacheControl } : {}),
      ...(head.contentDisposition !== undefined ? { contentDisposition: head.contentDisposition } : {}),
      ...(head.contentEncoding !== undefined ? { contentEncoding: head.contentEncoding } : {}),
      ...(head.contentLanguage !== undefined ? { contentLanguage: head.contentLanguage } : {}),
      ...(head.expires !== undefined ? { expires: head.expires } : {}),
      metadata: head.metadata,
    };
    const storage = settings.storageClass ? { storageClass: settings.storageClass } : {};
    try {
      let etag: string;
      if (head.size >= settings.multipartThreshold) {
        const release = await multipartSlots.acquire();
        try {
          // 10,000 parts at most: grow the part for very large objects.
          const partSize = Math.max(settings.partSize, Math.ceil(head.size / 9_000));
          ({ etag } = await target.upload(key, flowing, meta, {
            signal: objectSignal,
            partSize,
            queueSize: settings.queueSize,
            ...storage,
          }));
        } finally {
          release();
        }
      } else {
        const md5 =
          settings.contentMd5 && isPlainMd5(head.etag) && !notMd5.has(key)
            ? Buffer.from(head.etag, "hex").toString("base64")
            : undefined;
        ({ etag } = await target.put(key, flowing, head.size, meta, {
          signal: objectSignal,
          ...storage,
          ...(md5 ? { contentMd5: md5 } : {}),
        }));
      }
      // Unmetered: the PUT's Content-Length held the transfer to the size.
      const sent = metered ? streamed : head.size;
      if (sent !== head.size) {
        throw new CutoverError(
          ErrorCode.StepFailed,
          `read ${sent} of ${head.size} bytes of \`${key}\` from the ${source.label}`,
          { details: { retryable: true } },
        );
      }
      // The target's single-part ETag is the MD5 the server computed over what it stored.
      // (kept for any pair that differs: a multipart copy's ETags never match, and the pair proves
      // the content of that target version to the full comparison without reading it again)
      if (head.etag !== etag) memo.remember(key, head.etag, etag);
      else memo.forget(key);
      return head.size;
    } catch (err) {
      body.destroy();
      counted?.destroy();
      throw err;
    } finally {
      stop.removeEventListener("abort", onStop);
      bytesMoving -= streamed;
    }
  };

  /** true when the object is on the target (or needs nothing); false when it failed for good */
  const copyWithRetries = async (task: Task): Promise<boolean> => {
    const key = task.source.key;
    if (task.kind === "retry") {
      const head = await source.head(key, { signal: stop });
      if (!head) {
        result.vanished++;
        found--;
        return true;
      }
      foundBytes += head.size;
      task.source = { ...head, bytes: task.source.bytes };
    }
    const straggler = task.kind === "check" || task.kind === "retry";
    if (task.kind === "compare" || (straggler && settings.compare !== "listing")) {
      const c = await compareObject(source, target, key, {
        metadata: true,
        signal: stop,
        remembered,
        proven: (a, b) => memo.remember(key, a, b),
      });
      if (c.result === "same" || c.result === "vanished") {
        result.identical++;
        result.identicalBytes += task.source.size;
        if (straggler) {
          found--;
          foundBytes -= task.source.size;
        }
        return true;
      }
      if (!straggler) {
        // storage.verify would flag it: copy it again
        log.info({ key, difference: c.result, detail: c.detail }, "copying again what verify would flag");
        result.repaired++;
        found++;
        foundBytes += task.source.size;
      }
    } else if (straggler) {
      const head = await target.head(key, { signal: stop });
      if (head && looksIdentical(task.source, head, remembered)) {
        result.identical++;
        result.identicalBytes += task.source.size;
        found--;
        foundBytes -= task.source.size;
        return true;
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const size = await copyOnce(key);
        result.copied++;
        result.copiedBytes += size;
        return true;
      } catch (err) {
        if (stop.aborted) throw err;
        const e = err as {
          name?: string;
          $metadata?: { httpStatusCode?: number };
          details?: { awsError?: string };
        };
        if (e.details?.awsError === "NoSuchKey" || e.name === "NoSuchKey") {
          // Deleted at the source since it was listed: nothing to copy.
          result.vanished++;
          found--;
          foundBytes -= task.source.size;
          return true;
        }
        if (e.details?.awsError === "BadDigest" && !notMd5.has(key)) {
          // Either the bytes changed on the way (the retry reads them again) or the source's ETag
          // is not an MD5 (R2 multipart objects before June 2023, s3rver's): retry without it;
          // storage.verify hashes such objects.
          notMd5.add(key);
          log.info({ key }, "the source ETag is not the MD5 of the bytes read; copying without Content-MD5");
          attempt--;
          continue;
        }
        if (
          err instanceof CutoverError &&
          FATAL.has(err.code) &&
          !(err.code === ErrorCode.Unreachable && attempt <= settings.retries)
        )
          throw err;
        if (attempt > settings.retries || !isRetryableStoreError(err)) {
          const error = err instanceof Error ? err.message : String(err);
          failedCount++;
          if (failures.length < FAILED_KEPT) failures.push({ key, error });
          else ordered = false; // too many to keep: the next attempt lists everything again
          log.warn({ key, err: error }, "could not copy an object; going on with the rest");
          return false;
        }
        const wait = backoffMs(attempt, settings.retryBaseMs);
        log.warn(
          { key, attempt, waitMs: wait, err: err instanceof Error ? err.message : String(err) },
          "copy failed; retrying",
        );
        await sleep(wait, undefined, { signal: stop });
      }
    }
  };

  const worker = async () => {
    for (let task = await queue.shift(); task; task = await queue.shift()) {
      if (stop.aborted) return;
      try {
        // A failed object is recorded and passed: the resume point moves on, nothing waits on it.
        await copyWithRetries(task);
        settled++;
        finishTask(task.seq);
      } catch (err) {
        fatal ??= err;
        internal.abort(err);
        return;
      }
    }
  };

  // Progress and checkpoints, on a timer rather than per object. `done` counts every object
  // settled (copied, found identical, gone, or failed), so a pass with nothing to copy moves too.
  const pace = new RateMeter();
  pace.add(0);
  const report = () => {
    const moved = result.copiedBytes + bytesMoving;
    speed.add(moved);
    pace.add(settled);
    const objectsTotal = listingDone
      ? sourceSeen + retryKeys.length
      : ahead?.done
        ? ahead.base + ahead.count + retryKeys.length
        : undefined;
    const total = objectsTotal === undefined ? undefined : Math.max(objectsTotal, settled);
    const parts =
      listingDone && found === 0 && result.copied === 0
        ? ["nothing to copy"]
        : [
            `${count(result.copied)}${listingDone ? ` of ${count(Math.max(found, result.copied))}` : ""} copied`,
            `${formatBytes(moved)}${listingDone ? ` of ${formatBytes(foundBytes)}` : ""}`,
            `${formatBytes(speed.rate())}/s`,
          ];
    const rate = pace.rate();
    if (total !== undefined && total > settled && rate > 0)
      parts.push(`ETA ${formatDuration(((total - settled) / rate) * 1000)}`);
    parts.push(
      total !== undefined
        ? `${count(settled)} of ${objects(total)} checked`
        : `listing… ${count(examined)} listed, ${count(found)} to copy so far`,
    );
    if (result.identical > 0) parts.push(`${count(result.identical)} already identical`);
    if (failedCount > 0) parts.push(`${count(failedCount)} failed`);
    hooks.progress({
      done: settled,
      activity: moved + examined + settled,
      ...(total !== undefined ? { total } : {}),
      unit: "objects",
      message: parts.join(" · "),
    });
  };
  const save = async () => {
    const value: Checkpointed = {
      ordered,
      copied: (saved.copied ?? 0) + result.copied,
      copiedBytes: (saved.copiedBytes ?? 0) + result.copiedBytes,
    };
    const after = resumePoint();
    if (ordered && after) {
      value.after = after;
      if (failures.length > 0) value.failed = failures.map((f) => f.key);
    }
    await hooks.checkpoint.set("sync", value);
    await memo.save();
  };
  const ticker = setInterval(report, hooks.progressEveryMs ?? 1_000);
  ticker.unref();
  let saving = Promise.resolve();
  const saver = setInterval(() => {
    saving = saving.then(save).catch((err) => log.warn({ err }, "could not write the sync checkpoint"));
  }, hooks.checkpointEveryMs ?? 3_000);
  saver.unref();

  try {
    const workers = Array.from({ length: settings.concurrency }, worker);
    try {
      await produce();
    } catch (err) {
      if (!stop.aborted) {
        fatal ??= err;
        internal.abort(err);
      }
    } finally {
      queue.close();
    }
    await Promise.all(workers);
    signal.throwIfAborted();
    if (fatal) throw fatal;

    if (settings.deleteExtra) result.deleted = await deleteExtras(source, target, settings, { signal, log });
  } finally {
    clearInterval(ticker);
    clearInterval(saver);
    await saving;
    // What was done so far is kept even when the run stops here.
    await save().catch((err) => log.warn({ err }, "could not write the sync checkpoint"));
  }
  report();
  if (failedCount > 0) {
    const shown = failures
      .slice(0, 5)
      .map((f) => `\`${f.key}\` (${f.error})`)
      .join("; ");
    throw new CutoverError(
      ErrorCode.StepFailed,
      `${count(failedCount)} object${failedCount > 1 ? "s" : ""} could not be copied: ${shown}${failedCount > 5 ? "; …" : ""}; the other ${count(settled - failedCount)} were copied or already identical`,
      {
        details: {
          failed: failedCount,
          failedKeys: failures.slice(0, 20).map((f) => f.key),
          heldPeak: result.heldPeak,
        },
        hint: "Run the step again: it copies only what is still missing or different.",
      },
    );
  }
  result.seconds = (performance.now() - started) / 1000;
  result.requests = { source: source.requestCounts(), target: target.requestCounts() };
  return result;
}

/**
 * Deletes target objects the source does not have, in batches as the listing goes. Each candidate
 * is confirmed absent by a HEAD on the source first: a server that lists out of order could
 * otherwise make a key look extra, and a delete cannot be taken back.
 */
export async function deleteExtras(
  source: ObjectStore,
  target: ObjectStore,
  settings: SyncSettings,
  opts: { signal: AbortSignal; log: Logger },
): Promise<number> {
  let deleted = 0;
  let batch: string[] = [];
  const flush = async () => {
    const keys = batch;
    batch = [];
    const confirmed: string[] = [];
    for (let i = 0; i < keys.length; i += settings.concurrency) {
      const slice = keys.slice(i, i + settings.concurrency);
      const heads = await Promise.all(slice.map((k) => source.head(k, { signal: opts.signal })));
      slice.forEach((k, j) => {
        if (!heads[j]) confirmed.push(k);
      });
    }
    const { failed } = await target.deleteMany(confirmed, { signal: opts.signal });
    deleted += confirmed.length - failed.length;
    if (failed.length > 0)
      opts.log.warn({ failed: failed.slice(0, 20) }, "some extra objects could not be deleted");
  };
  for await (const item of mergeListings(source, target, {
    prefix: settings.prefix,
    window: settings.window,
    pageSize: settings.pageSize,
    signal: opts.signal,
  })) {
    if (item.kind !== "target-only" && item.kind !== "target-straggler") continue;
    batch.push(item.target.key);
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return deleted;
}
