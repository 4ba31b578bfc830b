import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { ListPage, ObjectHead, ObjectMeta, ObjectStore, StoreSide } from "../cloud/object-store.js";
import { CutoverError, ErrorCode } from "../errors.js";

/**
 * In-process buckets behind the ObjectStore port, for driving the sync engine at sizes no S3
 * stand-in reaches on one machine (10 million keys per side) and for tests that need to hold a
 * listing or fail a write at an exact point. Keys list in S3's order (UTF-8 bytes), pages and
 * `startAfter` behave as ListObjectsV2's. Not a protocol stand-in: the steps' own tests and
 * benchmarks go through moto and s3rver; this drives the engine (src/jobs/steps/storage/sync-engine.ts).
 */

/** Hooks a test or benchmark uses to steer a bucket. */
export interface MemoryBucketHooks {
  /** before each listing page is answered (may wait: a slow server, or a gate) */
  beforeList?(page: { startAfter?: string; token?: string; served: number }): Promise<void> | void;
  /** before a write; throw to fail it */
  beforeWrite?(key: string): Promise<void> | void;
  /** before a HEAD is answered */
  beforeHead?(key: string): Promise<void> | void;
}

interface Stored extends ObjectMeta {
  body: Buffer;
  etag: string;
  lastModified: number;
}

const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");
const utf8Compare = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

async function readBody(body: Readable | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

abstract class BaseBucket implements ObjectStore {
  readonly label: string;
  protected readonly counts: Record<string, number> = {};
  protected served = 0;

  constructor(
    readonly side: StoreSide,
    readonly bucket: string,
    protected readonly hooks: MemoryBucketHooks = {},
  ) {
    this.label = `${side} in-process bucket \`${bucket}\``;
  }

  protected count(op: string): void {
    this.counts[op] = (this.counts[op] ?? 0) + 1;
  }

  /** keys after `after` (exclusive) under `prefix`, at most `n`, in S3's order, and whether more follow */
  protected abstract page(
    prefix: string,
    after: string,
    n: number,
  ): { objects: ListPage["objects"]; more: boolean };
  abstract head(key: string): Promise<ObjectHead | undefined>;
  protected abstract content(key: string): Buffer;
  protected abstract store(key: string, body: Buffer, meta: ObjectMeta): string;

  async listPage(opts: {
    prefix?: string;
    startAfter?: string;
    token?: string;
    maxKeys?: number;
    signal?: AbortSignal;
  }): Promise<ListPage> {
    this.count("ListObjectsV2");
    opts.signal?.throwIfAborted();
    await this.hooks.beforeList?.({
      ...(opts.startAfter ? { startAfter: opts.startAfter } : {}),
      ...(opts.token ? { token: opts.token } : {}),
      served: this.served++,
    });
    const after = opts.token ?? opts.startAfter ?? "";
    const { objects, more } = this.page(opts.prefix ?? "", after, opts.maxKeys ?? 1000);
    const page: ListPage = { objects };
    if (more && objects.length > 0) page.nextToken = objects[objects.length - 1]!.key;
    return page;
  }

  async get(key: string, opts: { signal?: AbortSignal } = {}): Promise<{ head: ObjectHead; body: Readable }> {
    this.count("GetObject");
    opts.signal?.throwIfAborted();
    const head = await this.headOf(key);
    if (!head) {
      throw new CutoverError(ErrorCode.StepFailed, `\`${key}\` is not in the ${this.label}`, {
        details: { awsError: "NoSuchKey" },
      });
    }
    return { head, body: Readable.from([this.content(key)]) };
  }

  protected headOf(key: string): Promise<ObjectHead | undefined> {
    return this.head(key);
  }

  async put(
    key: string,
    body: Readable | Buffer,
    size: number,
    meta: ObjectMeta,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ etag: string }> {
    this.count("PutObject");
    opts.signal?.throwIfAborted();
    await this.hooks.beforeWrite?.(key);
    const bytes = await readBody(body);
    if (bytes.length !== size) throw new Error(`PutObject \`${key}\`: ${bytes.length} bytes for ${size}`);
    return { etag: this.store(key, bytes, meta) };
  }

  async upload(
    key: string,
    body: Readable,
    meta: ObjectMeta,
    opts: { signal?: AbortSignal },
  ): Promise<{ etag: string }> {
    this.count("CreateMultipartUpload");
    opts.signal?.throwIfAborted();
    await this.hooks.beforeWrite?.(key);
    return { etag: `${this.store(key, await readBody(body), meta)}-1` };
  }

  async deleteMany(keys: string[]): Promise<{ failed: string[] }> {
    this.count("DeleteObjects");
    return { failed: keys };
  }

  async bucketRegion(): Promise<string | undefined> {
    return undefined;
  }

  requestCounts(): Record<string, number> {
    return { ...this.counts };
  }

  destroy(): void {}
}

/** A bucket held in a Map: what tests fill with `write` and read back with `read`. */
export class MemoryBucket extends BaseBucket {
  private readonly objects = new Map<string, Stored>();
  private sorted: string[] | undefined;

  constructor(side: StoreSide, bucket: string, hooks: MemoryBucketHooks = {}) {
    super(side, bucket, hooks);
  }

  /** writes an object directly (set-up), as a single-part PUT would store it */
  write(key: string, body: Buffer | string, meta: Partial<ObjectMeta> = {}, lastModified = Date.now()): void {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
    this.objects.set(key, { metadata: {}, ...meta, body: b, etag: md5(b), lastModified });
    this.sorted = undefined;
  }

  read(key: string): Buffer | undefined {
    return this.objects.get(key)?.body;
  }

  keys(): string[] {
    this.sorted ??= [...this.objects.keys()].sort(utf8Compare);
    return this.sorted;
  }

  protected page(prefix: string, after: string, n: number) {
    const keys = this.keys();
    // first index past `after`: binary search in UTF-8 order
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (utf8Compare(keys[mid]!, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    const objects: ListPage["objects"] = [];
    let i = lo;
    for (; i < keys.length && objects.length < n; i++) {
      const key = keys[i]!;
      if (!key.startsWith(prefix)) continue;
      const o = this.objects.get(key)!;
      objects.push({ key, size: o.body.length, etag: o.etag, lastModified: o.lastModified });
    }
    return { objects, more: i < keys.length };
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    this.count("HeadObject");
    await this.hooks.beforeHead?.(key);
    const o = this.objects.get(key);
    if (!o) return undefined;
    const { body, ...rest } = o;
    return { ...rest, key, size: body.length };
  }

  protected override headOf(key: string): Promise<ObjectHead | undefined> {
    const o = this.objects.get(key);
    if (!o) return Promise.resolve(undefined);
    const { body, ...rest } = o;
    return Promise.resolve({ ...rest, key, size: body.length });
  }

  protected content(key: string): Buffer {
    return this.objects.get(key)!.body;
  }

  protected store(key: string, body: Buffer, meta: ObjectMeta): string {
    this.write(key, body, meta);
    return this.objects.get(key)!.etag;
  }
}

/**
 * A bucket of `count` generated objects (`<prefix><i, 10 digits>`, a few hundred bytes each, a
 * real MD5 ETag), nothing held per object: a listing of ten million keys costs no memory of its
 * own, so a benchmark measures the engine's. Writes are read to the end and counted; the keys in
 * `absent` (a predicate on the index) are not listed, which makes a target that lacks them.
 */
export class GeneratedBucket extends BaseBucket {
  written = 0;
  writtenBytes = 0;
  /** one byte per index, allocated once, when `keepWrites`: written objects list from then on */
  private readonly writes: Uint8Array | undefined;

  constructor(
    side: StoreSide,
    bucket: string,
    private readonly spec: {
      count: number;
      prefix?: string;
      /** objects the bucket does not have (a target missing some) */
      absent?: (i: number) => boolean;
      /** the same listing timestamp for every object (ms) */
      lastModified?: number;
      /** absent objects that are written are listed afterwards (a target a rerun sees) */
      keepWrites?: boolean;
    },
    hooks: MemoryBucketHooks = {},
  ) {
    super(side, bucket, hooks);
    this.writes = spec.keepWrites ? new Uint8Array(spec.count) : undefined;
  }

  static keyOf(i: number, prefix = "obj/"): string {
    return `${prefix}${String(i).padStart(10, "0")}`;
  }

  private indexOf(key: string): number | undefined {
    const p = this.spec.prefix ?? "obj/";
    if (!key.startsWith(p)) return undefined;
    const i = Number(key.slice(p.length));
    return Number.isInteger(i) && i >= 0 && i < this.spec.count && this.has(i) ? i : undefined;
  }

  private body(i: number): Buffer {
    return Buffer.from(`object ${i} `.repeat(20 + (i % 17)));
  }

  private has(i: number): boolean {
    return !this.spec.absent?.(i) || this.writes?.[i] === 1;
  }

  protected page(prefix: string, after: string, n: number) {
    const p = this.spec.prefix ?? "obj/";
    const objects: ListPage["objects"] = [];
    if (!p.startsWith(prefix) && !prefix.startsWith(p)) return { objects, more: false };
    // the first index whose key sorts after `after`: a binary search, nothing held per key
    let lo = 0;
    let hi = this.spec.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (utf8Compare(GeneratedBucket.keyOf(mid, p), after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    const at = this.spec.lastModified ?? 1_700_000_000_000;
    let i = lo;
    for (; i < this.spec.count && objects.length < n; i++) {
      if (!this.has(i)) continue;
      const b = this.body(i);
      objects.push({ key: GeneratedBucket.keyOf(i, p), size: b.length, etag: md5(b), lastModified: at });
    }
    return { objects, more: i < this.spec.count };
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    this.count("HeadObject");
    await this.hooks.beforeHead?.(key);
    return this.headNow(key);
  }

  private headNow(key: string): ObjectHead | undefined {
    const i = this.indexOf(key);
    if (i === undefined) return undefined;
    const b = this.body(i);
    return {
      key,
      size: b.length,
      etag: md5(b),
      lastModified: this.spec.lastModified ?? 1_700_000_000_000,
      contentType: "application/octet-stream",
      metadata: {},
    };
  }

  protected override headOf(key: string): Promise<ObjectHead | undefined> {
    return Promise.resolve(this.headNow(key));
  }

  protected content(key: string): Buffer {
    return this.body(this.indexOf(key)!);
  }

  protected store(key: string, body: Buffer): string {
    const i = Number(key.slice((this.spec.prefix ?? "obj/").length));
    if (this.writes && Number.isInteger(i) && i >= 0 && i < this.spec.count) this.writes[i] = 1;
    this.written++;
    this.writtenBytes += body.length;
    return md5(body);
  }
}
