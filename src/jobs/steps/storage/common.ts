import { createHash } from "node:crypto";
import { appendFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import type { ObjectStore } from "../../../cloud/object-store.js";
import { requireSection, type S3Config, type SourceStorageSchema } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepDeps } from "../../index.js";

type SourceStorage = z.infer<typeof SourceStorageSchema>;

/** The source and target sections a storage step reads, with a clear error when one is missing. */
export function storageSections(deps: StepDeps): { source: SourceStorage; target: S3Config } {
  return {
    source: requireSection(deps.file, "source.storage"),
    target: requireSection(deps.file, "target.s3"),
  };
}

/** The source bucket (R2), read-only use, from the ports; the caller destroys it. */
export function openSource(deps: StepDeps, opts: { maxSockets?: number } = {}): ObjectStore {
  return deps.ports.s3.source(opts);
}

/** The target bucket (S3), from the ports; the caller destroys it. */
export function openTarget(
  deps: StepDeps,
  opts: { maxSockets?: number; writeChecksums?: boolean } = {},
): ObjectStore {
  return deps.ports.s3.target(opts);
}

/**
 * Checks a bucket is there, readable with the keys given, and in the region the file says. A
 * HEAD's 403 has no body, so a listing of one key is asked for to say why.
 */
export async function checkBucket(
  store: ObjectStore,
  expectedRegion: string | undefined,
  signal?: AbortSignal,
  opts: { listingFollows?: boolean } = {},
): Promise<void> {
  if (expectedRegion === "auto") {
    // R2 has no regions to compare. A listing that follows is the check itself (its first page
    // fails the same way); otherwise one key is listed. No HEAD: s3rver answers HeadBucket with a
    // whole listing page, and it would only repeat what the listing is about to find out.
    if (!opts.listingFollows) await store.listPage({ maxKeys: 1, ...(signal ? { signal } : {}) });
    return;
  }
  let region: string | undefined;
  try {
    region = await store.bucketRegion(signal ? { signal } : {});
  } catch (err) {
    if (err instanceof CutoverError && err.code === ErrorCode.StorageAccessRefused) {
      await store.listPage({ maxKeys: 1, ...(signal ? { signal } : {}) });
    }
    throw err;
  }
  if (expectedRegion && expectedRegion !== "auto" && region && region !== expectedRegion) {
    throw new CutoverError(
      ErrorCode.RegionMismatch,
      `The ${store.label} is in ${region}, but the migration file says ${expectedRegion}.`,
      {
        details: { side: store.side, bucket: store.bucket, actualRegion: region, expectedRegion },
        hint:
          store.side === "target"
            ? `Set target.s3.region to ${region} if this is the right bucket, or choose another bucket name.`
            : `Set source.storage.region to ${region}.`,
      },
    );
  }
}

/** A stable id for a source/target pair, for files under the data directory. */
export function pairId(deps: StepDeps): string {
  const { source, target } = storageSections(deps);
  return createHash("sha256")
    .update(`${source.endpoint}\n${source.bucket}\n${source.prefix}\n${target.bucket}`)
    .digest("hex")
    .slice(0, 16);
}

/**
 * ETag pairs remembered from copies where the source's single-looking ETag was not the MD5 of
 * its content (the target's was): R2 multipart objects from before June 2023 and s3rver's
 * multipart objects. Without it every sync would copy those objects again. Kept in the data
 * directory, bounded; losing it only costs a copy.
 *
 * The file is a log, one JSON line per change (`["key","sourceEtag","targetEtag"]`, or `["key"]`
 * when forgotten): a checkpoint appends what changed since the last one instead of rewriting
 * every pair, and the log is compacted when it has grown well past what it holds. A torn last
 * line (a kill mid-append) is skipped.
 */
export class EtagMemo {
  private readonly pairs = new Map<string, [string, string]>();
  /** what changed since the last save: a pair, or null for forgotten */
  private readonly changes = new Map<string, [string, string] | null>();
  /** lines in the log file, for deciding when to compact it */
  private lines = 0;
  private legacy = false;
  static readonly LIMIT = 200_000;

  private constructor(
    private readonly file: string,
    private readonly legacyFile: string,
  ) {}

  static async load(dataDir: string, id: string): Promise<EtagMemo> {
    const base = path.join(dataDir, "storage", `etag-pairs-${id}`);
    const memo = new EtagMemo(`${base}.jsonl`, `${base}.json`);
    try {
      // the whole-JSON file of earlier versions: read once, replaced by the log at the next save
      const raw = JSON.parse(await readFile(memo.legacyFile, "utf8")) as Record<string, [string, string]>;
      for (const [k, v] of Object.entries(raw)) if (Array.isArray(v) && v.length === 2) memo.pairs.set(k, v);
      memo.legacy = true;
    } catch {
      // absent or unreadable
    }
    let text = "";
    try {
      text = await readFile(memo.file, "utf8");
    } catch {
      // absent: start empty
    }
    for (const line of text.split("\n")) {
      if (!line) continue;
      memo.lines++;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // a torn last line
      }
      if (!Array.isArray(entry) || typeof entry[0] !== "string") continue;
      if (entry.length === 3) memo.pairs.set(entry[0], [String(entry[1]), String(entry[2])]);
      else memo.pairs.delete(entry[0]);
    }
    return memo;
  }

  get size(): number {
    return this.pairs.size;
  }

  get(key: string): readonly [string, string] | undefined {
    return this.pairs.get(key);
  }

  remember(key: string, sourceEtag: string, targetEtag: string): void {
    if (this.pairs.size >= EtagMemo.LIMIT && !this.pairs.has(key)) return;
    const had = this.pairs.get(key);
    if (had && had[0] === sourceEtag && had[1] === targetEtag) return;
    this.pairs.set(key, [sourceEtag, targetEtag]);
    this.changes.set(key, [sourceEtag, targetEtag]);
  }

  forget(key: string): void {
    if (this.pairs.delete(key)) this.changes.set(key, null);
  }

  /** Appends what changed since the last save (compacting the log when it has grown too long). */
  async save(): Promise<void> {
    if (this.changes.size === 0 && !this.legacy) return;
    await mkdir(path.dirname(this.file), { recursive: true });
    if (this.legacy || this.lines + this.changes.size > 2 * this.pairs.size + 1_000) {
      this.changes.clear();
      const tmp = `${this.file}.${process.pid}.tmp`;
      const out: string[] = [];
      for (const [k, v] of this.pairs) out.push(JSON.stringify([k, v[0], v[1]]));
      await writeFile(tmp, out.length ? `${out.join("\n")}\n` : "");
      await rename(tmp, this.file);
      this.lines = out.length;
      if (this.legacy) await rm(this.legacyFile, { force: true });
      this.legacy = false;
      return;
    }
    const out: string[] = [];
    for (const [k, v] of this.changes) out.push(JSON.stringify(v ? [k, v[0], v[1]] : [k]));
    this.changes.clear();
    await appendFile(this.file, `${out.join("\n")}\n`);
    this.lines += out.length;
  }
}

/** 1 → "1 object", 1500 → "1,500 objects". */
export const objects = (n: number) => `${count(n)} object${n === 1 ? "" : "s"}`;

/**
 * The one rule for an object only on the target, used by storage.sync and storage.verify alike
 * and stated in both outputs: it is listed and kept, and it does not fail either check.
 */
export const TARGET_ONLY_RULE =
  "kept, and not a difference for storage.sync or storage.verify; only storage.sync with --delete removes them";

export const count = (n: number) => n.toLocaleString("en-US");
