import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { z } from "zod";
import type { ObjectHead, ObjectStore } from "../../../cloud/object-store.js";
import { newestExecution } from "../../../store/runs.js";
import { formatBytes } from "../../../text/units.js";
import { storageVerifyView } from "../../../views/storage-verify.js";
import type { StepContext, StepDefinition, StepDeps, VerifyOutcome } from "../../define-step.js";
import { type ContextOf, defineStep, stepNow } from "../../define-step.js";
import { splitOnce } from "../../shards.js";
import { checkBucket, openSource, openTarget, storageSections } from "./buckets.js";
import { BoundedQueue } from "./flow.js";
import { compareKeyStrings, isPlainMd5, type KeySplit, type ListedObject, mergeListings } from "./listing.js";
import { beforeRange, type KeyRange } from "./sync-engine.js";
import { count, objects, TARGET_ONLY_RULE } from "./wording.js";

const Input = z.strictObject({
  /** objects compared at once */
  concurrency: z.number().int().min(1).max(256).default(16),
  /** compare Content-Type, Cache-Control, Content-Disposition, Content-Encoding, Content-Language and user metadata */
  metadata: z.boolean().default(true),
  /** differences listed in the report (all are counted) */
  listDifferences: z.number().int().min(0).max(10_000).default(100),
  listWindow: z.number().int().min(0).max(100_000).default(2_000),
  /**
   * key ranges the comparison is split into, each a job any worker on any replica takes (with
   * `engine.shardWorkers` per process); 1: the whole comparison in the run's own worker
   */
  shards: z.number().int().min(1).max(1_000).default(1),
});
export type StorageVerifyInput = z.infer<typeof Input>;

export const storageVerify = defineStep({
  type: "storage.verify",
  description: "prove every object is on both sides with equal size, content and metadata",
  input: Input,
  configSections: ["source.storage", "target.s3"],
  mutating: false,
  stallWatch: true,
  freshEachRun: true,
  checkpoints: { split: z.custom<KeySplit>(), report: z.custom<StorageVerifyReport>() },
});

export type DifferenceKind = "missing" | "extra" | "size" | "content" | "metadata";
const DIFFERENCE_KINDS: DifferenceKind[] = ["missing", "extra", "size", "content", "metadata"];

export interface StorageDifference {
  key: string;
  kind: DifferenceKind;
  detail: string;
}

/** What `storage.verify` found; also what the Slack report shows (src/views/storage-verify.ts). */
export interface StorageVerifyReport {
  ok: boolean;
  source: { label: string; objects: number; bytes: number };
  target: { label: string; objects: number; bytes: number };
  /** objects present on both sides with equal size, content and (when checked) metadata */
  matched: number;
  matchedBytes: number;
  /** how the content of each object present on both sides was proven equal (or not) */
  checkedBy: { etag: number; storedChecksum: number; hashed: number };
  metadataChecked: boolean;
  differences: Record<DifferenceKind, number>;
  /** the first differences, by key */
  listed: StorageDifference[];
  /** listed at the source but gone when read: deleted meanwhile */
  vanished: number;
  /**
   * a live migration (`replication`): objects absent on the target that were uploaded to the
   * source after the last storage.sync started. Not differences: the sync after the switch
   * copies them. Absent when no such cut-off applied.
   */
  newSinceSync?: number;
  /**
   * how long the comparison took; in key ranges, from the start of the first range (in an earlier
   * attempt when the step resumed with ranges finished before) to the end of the last
   */
  seconds: number;
  /** ISO, by the step's clock; in key ranges, the first range's start (absent: an older build's) */
  startedAt?: string;
  finishedAt: string;
}

interface Digest {
  size: number;
  md5: string;
  /** base64 of the big-endian CRC32, as S3 reports x-amz-checksum-crc32 */
  crc32: string;
}

/** Streams an object and hashes it (MD5 and CRC32 in one pass). */
export async function digestObject(store: ObjectStore, key: string, signal?: AbortSignal): Promise<Digest> {
  const { body } = await store.get(key, signal ? { signal } : {});
  const md5 = createHash("md5");
  let crc = 0;
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    md5.update(chunk);
    crc = crc32(chunk, crc);
    size += chunk.length;
  }
  const c = Buffer.alloc(4);
  c.writeUInt32BE(crc >>> 0);
  return { size, md5: md5.digest("hex"), crc32: c.toString("base64") };
}

const HEADERS: Array<[keyof ObjectHead, string]> = [
  ["contentType", "Content-Type"],
  ["cacheControl", "Cache-Control"],
  ["contentDisposition", "Content-Disposition"],
  ["contentEncoding", "Content-Encoding"],
  ["contentLanguage", "Content-Language"],
];

/** The headers and user metadata that differ, as "Cache-Control: `a` ≠ `b`" phrases. */
export function metadataDifferences(s: ObjectHead, t: ObjectHead): string[] {
  const out: string[] = [];
  const show = (v: unknown) => (v === undefined || v === "" ? "(none)" : `\`${String(v)}\``);
  for (const [field, header] of HEADERS) {
    const a = s[field] ?? "";
    const b = t[field] ?? "";
    if (a !== b) out.push(`${header}: ${show(a)} ≠ ${show(b)}`);
  }
  if ((s.expires?.getTime() ?? 0) !== (t.expires?.getTime() ?? 0)) out.push("Expires differs");
  const keys = new Set([...Object.keys(s.metadata), ...Object.keys(t.metadata)]);
  for (const k of [...keys].sort()) {
    if (s.metadata[k] !== t.metadata[k])
      out.push(`x-amz-meta-${k}: ${show(s.metadata[k])} ≠ ${show(t.metadata[k])}`);
  }
  return out;
}

/** What comparing one key on both sides found. */
export type ObjectComparison =
  | { result: "same"; size: number; by: keyof StorageVerifyReport["checkedBy"] }
  | { result: "vanished"; size: number; by?: undefined }
  | {
      result: Exclude<DifferenceKind, "extra">;
      size: number;
      detail: string;
      by?: keyof StorageVerifyReport["checkedBy"];
      /** the source object's, for a missing one */
      lastModified?: number;
    };

/**
 * Compares one key on both sides the way storage.verify does (and storage.sync before it trusts
 * a copy): a HEAD on each (size, headers, user metadata), the content by equal MD5 ETags, a pair
 * of ETags remembered from Cutover's own copy, the CRC32 S3 stored, or by hashing.
 */
export async function compareObject(
  source: ObjectStore,
  target: ObjectStore,
  key: string,
  opts: {
    metadata: boolean;
    signal?: AbortSignal;
    remembered?: (key: string) => readonly [string, string] | undefined;
    /** called with the two ETags once hashing proved the content equal */
    proven?: (sourceEtag: string, targetEtag: string) => void;
  },
): Promise<ObjectComparison> {
  const signal = opts.signal;
  const [s, t] = await Promise.all([
    source.head(key, signal ? { signal } : {}),
    target.head(key, { ...(signal ? { signal } : {}), checksums: true }),
  ]);
  if (!s) return { result: "vanished", size: 0 };
  if (!t)
    return {
      result: "missing",
      size: s.size,
      detail: `${formatBytes(s.size)} on the source, absent on the target`,
      lastModified: s.lastModified,
    };
  if (s.size !== t.size)
    return { result: "size", size: s.size, detail: `${s.size} bytes on the source, ${t.size} on the target` };
  let same: boolean;
  let by: keyof StorageVerifyReport["checkedBy"];
  const pair = opts.remembered?.(key);
  if (isPlainMd5(s.etag) && isPlainMd5(t.etag) && s.etag === t.etag) {
    by = "etag";
    same = true;
  } else if (pair && pair[0] === s.etag && pair[1] === t.etag) {
    by = "etag"; // this very source version was copied to this very target version
    same = true;
  } else {
    const sd = await digestObject(source, key, signal);
    if (sd.size !== s.size) return { result: "vanished", size: s.size }; // rewritten while read
    // A multipart object's stored CRC32 is a checksum of the parts' checksums (COMPOSITE), unless
    // S3 says FULL_OBJECT; moto reports a composite one without saying so, hence the ETag test.
    const stored = t.checksumCRC32;
    const fullObject =
      t.checksumType === "FULL_OBJECT" ||
      (t.checksumType === undefined && !t.etag.includes("-") && !stored?.includes("-"));
    if (stored && fullObject) {
      by = "storedChecksum";
      same = stored === sd.crc32;
    } else if (isPlainMd5(t.etag)) {
      by = "hashed";
      same = t.etag === sd.md5;
    } else {
      by = "hashed";
      same = (await digestObject(target, key, signal)).md5 === sd.md5;
    }
    if (same) opts.proven?.(s.etag, t.etag);
  }
  if (!same)
    return { result: "content", size: s.size, detail: `same size (${s.size} bytes), different content`, by };
  if (opts.metadata) {
    const diffs = metadataDifferences(s, t);
    if (diffs.length > 0) return { result: "metadata", size: s.size, detail: diffs.join("; "), by };
  }
  return { result: "same", size: s.size, by };
}

type Job = { kind: "compare"; source: ListedObject } | { kind: "extra"; target: ListedObject };

/**
 * Proves the target holds every source object: a merged listing of both sides, then per key a HEAD
 * on each side (sizes, headers, user metadata) and the content compared by MD5 ETags where both
 * are plain, otherwise by hashing the source and comparing with the target's stored CRC32 or MD5
 * ETag, or by hashing both. A key one listing lacks is looked up on the other side before it is
 * reported, so a server that lists out of order cannot cause a false difference.
 */
export async function verifyBuckets(
  source: ObjectStore,
  target: ObjectStore,
  opts: {
    prefix: string;
    concurrency: number;
    metadata: boolean;
    listDifferences: number;
    window: number;
    signal: AbortSignal;
    onProgress?: (checked: number, listed: number) => void;
    /** only this part of the key space (one part of a comparison split into key ranges) */
    range?: KeyRange;
    /**
     * epoch ms (a live migration: when the last storage.sync started): a source object missing on
     * the target that was uploaded at or after it is counted in `newSinceSync`, not as a
     * difference. Compared by the second (S3 keeps Last-Modified to the second).
     */
    newSince?: number;
    /** the calendar `startedAt` and `finishedAt` are read from (the step's clock); the machine's by default */
    now?: () => Date;
  },
): Promise<StorageVerifyReport> {
  const started = performance.now();
  const clock = opts.now ?? (() => new Date());
  const report: StorageVerifyReport = {
    ok: false,
    source: { label: source.label, objects: 0, bytes: 0 },
    target: { label: target.label, objects: 0, bytes: 0 },
    matched: 0,
    matchedBytes: 0,
    checkedBy: { etag: 0, storedChecksum: 0, hashed: 0 },
    metadataChecked: opts.metadata,
    differences: { missing: 0, extra: 0, size: 0, content: 0, metadata: 0 },
    listed: [],
    vanished: 0,
    ...(opts.newSince !== undefined ? { newSinceSync: 0 } : {}),
    seconds: 0,
    startedAt: clock().toISOString(),
    finishedAt: "",
  };
  const cutOff = opts.newSince !== undefined ? Math.floor(opts.newSince / 1000) * 1000 : undefined;
  const differ = (key: string, kind: DifferenceKind, detail: string) => {
    report.differences[kind]++;
    if (report.listed.length < opts.listDifferences) report.listed.push({ key, kind, detail });
  };
  const { signal } = opts;
  let checked = 0;

  const compare = async (listed: ListedObject) => {
    const c = await compareObject(source, target, listed.key, { metadata: opts.metadata, signal });
    if (c.result === "vanished") {
      report.vanished++;
      return;
    }
    if (c.by) report.checkedBy[c.by]++;
    if (c.result === "missing" && cutOff !== undefined && (c.lastModified ?? 0) >= cutOff) {
      report.newSinceSync = (report.newSinceSync ?? 0) + 1;
      return;
    }
    if (c.result !== "same") return differ(listed.key, c.result, c.detail);
    report.matched++;
    report.matchedBytes += c.size;
  };

  const extra = async (listed: ListedObject) => {
    // Only truly extra when the source does not have it either (a straggler may just be late).
    if (await source.head(listed.key, { signal })) return;
    differ(listed.key, "extra", `${formatBytes(listed.size)} on the target only`);
  };

  const queue = new BoundedQueue<Job>(opts.concurrency * 8);
  let failure: unknown;
  const internal = new AbortController();
  const stop = AbortSignal.any([signal, internal.signal]);
  const worker = async () => {
    for (let job = await queue.shift(); job; job = await queue.shift()) {
      if (failure) continue;
      try {
        if (job.kind === "compare") await compare(job.source);
        else await extra(job.target);
        checked++;
      } catch (err) {
        failure ??= err;
        internal.abort(err);
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency }, worker);
  let listedCount = 0;
  const ticker = setInterval(() => opts.onProgress?.(checked, listedCount), 1_000);
  ticker.unref();
  try {
    const until = opts.range?.until;
    for await (const item of mergeListings(source, target, {
      prefix: opts.prefix,
      window: opts.window,
      signal: stop,
      // over a server that listed out of order (`whole`) each part lists the whole bucket, as
      // storage.sync's parts do: its start-after and its order cannot place a range's keys
      ...(opts.range?.after && !opts.range.whole ? { startAfter: opts.range.after } : {}),
    })) {
      const key = "source" in item ? item.source.key : item.target.key;
      if (beforeRange(opts.range, key)) continue; // an earlier part's
      if (until !== undefined && compareKeyStrings(key, until) > 0) {
        // a later part's; a straggler of this one may still come unless the server lists in order
        if (item.kind === "source-straggler" || item.kind === "target-straggler" || opts.range?.whole)
          continue;
        break;
      }
      if ("source" in item) {
        report.source.objects++;
        report.source.bytes += item.source.size;
        listedCount++;
        await queue.push({ kind: "compare", source: item.source }, stop);
      }
      if ("target" in item) {
        report.target.objects++;
        report.target.bytes += item.target.size;
        if (item.kind !== "both") {
          listedCount++; // checked counts these jobs too: "345 of 344" otherwise
          await queue.push({ kind: "extra", target: item.target }, stop);
        }
      }
    }
  } catch (err) {
    failure ??= err;
  } finally {
    queue.close();
    await Promise.all(workers);
    clearInterval(ticker);
  }
  signal.throwIfAborted();
  if (failure) throw failure;
  opts.onProgress?.(checked, listedCount);
  report.listed.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
  // one rule with storage.sync: an object only on the target is listed, not a failure
  report.ok = (Object.keys(report.differences) as DifferenceKind[]).every(
    (k) => k === "extra" || report.differences[k] === 0,
  );
  report.seconds = Math.round((performance.now() - started) / 100) / 10;
  report.finishedAt = clock().toISOString();
  return report;
}

/** One line for the run's thread: counts, bytes and what differs. */
export function verifySummary(r: StorageVerifyReport): string {
  const d = r.differences;
  const head = `${count(r.matched)} of ${objects(r.source.objects)} (${formatBytes(r.matchedBytes)}) identical on both sides`;
  const fresh = r.newSinceSync
    ? `; ${objects(r.newSinceSync)} uploaded to the source since the last storage.sync started, not on the target yet (the sync after the switch copies them)`
    : "";
  const extra = `${fresh}${d.extra > 0 ? `; ${objects(d.extra)} only on the target: ${TARGET_ONLY_RULE}` : ""}`;
  if (r.ok) {
    const how = [
      r.checkedBy.etag ? `${count(r.checkedBy.etag)} by MD5 ETag` : "",
      r.checkedBy.storedChecksum ? `${count(r.checkedBy.storedChecksum)} by stored CRC32` : "",
      r.checkedBy.hashed ? `${count(r.checkedBy.hashed)} by hashing` : "",
    ].filter(Boolean);
    return `${head}${r.metadataChecked ? ", metadata kept" : ""}${how.length ? ` (content: ${how.join(", ")})` : ""}${extra}`;
  }
  const parts = DIFFERENCE_KINDS.filter((k) => d[k] > 0 && k !== "extra").map((k) => `${count(d[k])} ${k}`);
  return `${head}; differences: ${parts.join(", ")}${extra}`;
}

/**
 * The comparison split into key ranges from one sampled pass over the source listing (kept in the
 * checkpoint), each range a job for any worker; the parts' reports add up into one.
 */
async function shardedCheck(
  source: ObjectStore,
  prefix: string,
  input: StorageVerifyInput,
  ctx: ContextOf<typeof storageVerify>,
  shards: NonNullable<StepContext["shards"]>,
  now: () => Date,
): Promise<StorageVerifyReport> {
  const began = now().getTime();
  const split = await splitOnce(source, input.shards, { prefix, window: input.listWindow }, ctx);
  const ranges = split.ranges;
  const reports = await shards.run<StorageVerifyReport>(
    ranges.map(({ after, until }) => ({
      after,
      ...(until === undefined ? {} : { until }),
      ...(split.ordered === false ? { whole: true } : {}),
    })),
    (each, finished) => {
      let done = 0;
      let total = 0;
      let activity = finished;
      each.forEach((p, i) => {
        done += p?.done ?? 0;
        total += Math.max(p?.total ?? 0, ranges[i]!.objects);
        activity += p?.activity ?? p?.done ?? 0;
      });
      return {
        done,
        total: Math.max(total, done),
        activity,
        unit: "objects",
        message: `comparing in ${count(ranges.length)} key ranges, ${count(finished)} done: ${count(done)} of about ${count(Math.max(total, done))} compared`,
      };
    },
  );
  const out = reports.reduce((a, b) => {
    const sum = (x: number, y: number) => x + y;
    return {
      ...a,
      source: {
        ...a.source,
        objects: sum(a.source.objects, b.source.objects),
        bytes: sum(a.source.bytes, b.source.bytes),
      },
      target: {
        ...a.target,
        objects: sum(a.target.objects, b.target.objects),
        bytes: sum(a.target.bytes, b.target.bytes),
      },
      matched: a.matched + b.matched,
      matchedBytes: a.matchedBytes + b.matchedBytes,
      checkedBy: {
        etag: a.checkedBy.etag + b.checkedBy.etag,
        storedChecksum: a.checkedBy.storedChecksum + b.checkedBy.storedChecksum,
        hashed: a.checkedBy.hashed + b.checkedBy.hashed,
      },
      // in the order a single report has (a part's report comes back from jsonb with its keys sorted)
      differences: Object.fromEntries(
        DIFFERENCE_KINDS.map((k) => [k, a.differences[k] + b.differences[k]]),
      ) as StorageVerifyReport["differences"],
      listed: [...a.listed, ...b.listed].slice(0, input.listDifferences),
      vanished: a.vanished + b.vanished,
    };
  });
  out.ok = (Object.keys(out.differences) as DifferenceKind[]).every(
    (k) => k === "extra" || out.differences[k] === 0,
  );
  // from the first range's start: a resumed attempt does not wait for the ranges finished before
  // it, and its own time alone read "checked in 2 s" under ten million objects (a range's report
  // from an older build has no start, and the attempt's own start stands for it)
  const from = Math.min(began, ...reports.map((r) => Date.parse(r.startedAt ?? "")).filter(Number.isFinite));
  const end = now();
  out.seconds = Math.round(Math.max(0, end.getTime() - from) / 100) / 10;
  out.startedAt = new Date(from).toISOString();
  out.finishedAt = end.toISOString();
  return out;
}

async function saveReport(deps: StepDeps, ctx: StepContext, report: StorageVerifyReport): Promise<string> {
  const dir = path.join(deps.dataDir, "reports");
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `storage-verify-${ctx.run.id}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/**
 * A live migration's cut-off: customers keep uploading to the source, so an object uploaded after
 * the last successful storage.sync started cannot be on the target yet and is not a difference
 * (the runbook's sync after the switch copies it). Without `replication`, or before any sync, none.
 */
async function liveCutOff(deps: StepDeps): Promise<{ newSince?: number }> {
  if (!deps.file.replication || !deps.db) return {};
  const ids = deps.file.runbook.phases.flatMap((p) =>
    p.steps.filter((s) => s.uses === "storage.sync").map((s) => s.id),
  );
  if (!ids.length) return {};
  const last = await newestExecution(deps.db, deps.file.environment, ids, {
    statuses: ["succeeded"],
    newestBy: "startedAt",
  });
  return last?.startedAt ? { newSince: last.startedAt.getTime() } : {};
}

/**
 * `storage.verify`: every key on both sides, equal size and content, metadata kept. Read-only;
 * runnable alone (`/migrate verify storage`). The full report is kept in the data directory
 * (`reports/storage-verify-<run>.json`) and rendered for Slack by src/views/storage-verify.ts.
 */
export function createStorageVerifyStep(deps: StepDeps): StepDefinition<StorageVerifyInput> {
  const now = stepNow(deps);
  const check = async (
    input: StorageVerifyInput,
    ctx: StepContext,
    range?: KeyRange,
  ): Promise<StorageVerifyReport> => {
    const { source: srcCfg, target: s3 } = storageSections(deps);
    const sockets = input.concurrency * 3 + 8;
    const source = openSource(deps, { maxSockets: sockets });
    const target = openTarget(deps, { maxSockets: sockets });
    try {
      await checkBucket(source, srcCfg.region, ctx.signal, { listingFollows: true });
      await checkBucket(target, s3.region, ctx.signal);
      if (!range && input.shards > 1 && ctx.shards)
        return await shardedCheck(source, srcCfg.prefix, input, ctx, ctx.shards, now);
      return await verifyBuckets(source, target, {
        ...(range ? { range } : {}),
        prefix: srcCfg.prefix,
        concurrency: input.concurrency,
        metadata: input.metadata,
        listDifferences: input.listDifferences,
        window: input.listWindow,
        signal: ctx.signal,
        now,
        ...(await liveCutOff(deps)),
        onProgress: (done, listed) =>
          ctx.progress({
            done,
            total: listed,
            unit: "objects",
            message: `comparing: ${count(done)} of ${count(listed)} listed so far`,
          }),
      });
    } finally {
      source.destroy();
      target.destroy();
    }
  };
  const outcome = (r: StorageVerifyReport, file?: string): VerifyOutcome => ({
    ok: r.ok,
    summary: verifySummary(r),
    // a difference is what the comparison found, not an error: the runner does not retry it
    final: !r.ok,
    figures: {
      sourceObjects: r.source.objects,
      sourceBytes: r.source.bytes,
      targetObjects: r.target.objects,
      targetBytes: r.target.bytes,
      matched: r.matched,
      missing: r.differences.missing,
      extra: r.differences.extra,
      sizeDiffers: r.differences.size,
      contentDiffers: r.differences.content,
      metadataDiffers: r.differences.metadata,
      byEtag: r.checkedBy.etag,
      byStoredChecksum: r.checkedBy.storedChecksum,
      byHashing: r.checkedBy.hashed,
      ...(r.newSinceSync !== undefined ? { newSinceSync: r.newSinceSync } : {}),
      seconds: r.seconds,
      ...(file ? { reportFile: file } : {}),
    },
  });
  return storageVerify.implement({
    async plan(input, ctx) {
      const { source: srcCfg, target: s3 } = storageSections(deps);
      const source = openSource(deps);
      const target = openTarget(deps);
      try {
        // One after the other, so the error names the first side that fails, every time.
        await checkBucket(source, srcCfg.region, ctx.signal);
        await checkBucket(target, s3.region, ctx.signal);
      } finally {
        source.destroy();
        target.destroy();
      }
      return {
        summary: `would compare every object of ${srcCfg.bucket} with ${s3.bucket}: keys, sizes, content${input.metadata ? " and metadata" : ""}`,
        changes: [
          {
            action: "check",
            target: `${srcCfg.bucket}${srcCfg.prefix ? `/${srcCfg.prefix}` : ""} → ${s3.bucket}`,
            detail: "read-only",
          },
        ],
      };
    },
    async shard(input, part, ctx) {
      return check(input, ctx, part as KeyRange);
    },
    async run(input, ctx) {
      const report = await check(input, ctx);
      const file = await saveReport(deps, ctx, report);
      await ctx.checkpoint.set("report", report);
      ctx.report?.(storageVerifyView(report));
      const o = outcome(report, file);
      return { summary: o.summary, ...(o.figures ? { figures: o.figures } : {}) };
    },
    async verify(input, ctx) {
      // The report `run` just made is the verification; a standalone call compares afresh.
      const kept = await ctx.checkpoint.get("report");
      return outcome(kept ?? (await check(input, ctx)));
    },
  });
}
