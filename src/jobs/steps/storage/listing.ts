import type { ListPage, ObjectStore, ObjectSummary } from "../../../cloud/object-store.js";

/**
 * Listings in S3's order and a streaming merge of two of them.
 *
 * S3 (and R2) list keys in UTF-8 binary order, which is neither JavaScript's string order (UTF-16
 * code units: "😀" sorts before "！" there, after it in UTF-8) nor guaranteed by every
 * implementation: moto sorts by code point (the same as UTF-8), while s3rver walks its folders on
 * disk, so "a/b" comes before "a-" and "a". A listing therefore passes through a bounded reorder
 * window; a key that arrives after keys greater than it by more than the window is a straggler,
 * handed to the caller to resolve by a point lookup. Nothing here holds more than a window of keys.
 */

/** A listed object with its key's UTF-8 bytes, compared with {@link compareKeys}. */
export interface ListedObject extends ObjectSummary {
  bytes: Buffer;
}

/** Compares two keys in S3's order (UTF-8 bytes). */
export function compareKeys(a: ListedObject, b: ListedObject): number {
  return Buffer.compare(a.bytes, b.bytes);
}

/** Compares two key strings in S3's order. */
export function compareKeyStrings(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

class MinHeap {
  private readonly items: ListedObject[] = [];
  get size(): number {
    return this.items.length;
  }
  push(item: ListedObject): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (compareKeys(a[p]!, a[i]!) <= 0) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): ListedObject | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && compareKeys(a[l]!, a[m]!) < 0) m = l;
        if (r < a.length && compareKeys(a[r]!, a[m]!) < 0) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

export interface ListingOptions {
  prefix: string;
  /** list only keys after this one (a resume point) */
  startAfter?: string;
  signal?: AbortSignal;
  /** keys held back to repair a server's local disorder */
  window?: number;
  pageSize?: number;
  /** called with a key that arrived after the window had passed it */
  onStraggler?: (obj: ListedObject) => void;
  /** called after each page with the number of keys listed so far */
  onPage?: (listed: number) => void;
  /**
   * called when a key arrives before the key the server listed just ahead of it, even one the
   * window puts back in order: the server's order is not S3's (nor, then, its start-after)
   */
  onDisorder?: () => void;
}

/**
 * The bucket's keys in UTF-8 binary order, paging with one page read ahead. Duplicate keys (a
 * server paging badly) are dropped.
 */
export async function* sortedListing(store: ObjectStore, opts: ListingOptions): AsyncGenerator<ListedObject> {
  const window = opts.window ?? 2_000;
  const heap = new MinHeap();
  let last: ListedObject | undefined;
  let arrived: ListedObject | undefined;
  let listed = 0;
  const fetchPage = (token?: string): Promise<ListPage> =>
    store.listPage({
      prefix: opts.prefix,
      ...(token ? { token } : opts.startAfter ? { startAfter: opts.startAfter } : {}),
      maxKeys: opts.pageSize ?? 1000,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  let pending: Promise<ListPage> | undefined = fetchPage();
  while (pending) {
    const page: ListPage = await pending;
    pending = page.nextToken ? fetchPage(page.nextToken) : undefined;
    // A read-ahead that fails while we are still busy must not be reported as unhandled.
    pending?.catch(() => undefined);
    listed += page.objects.length;
    opts.onPage?.(listed);
    for (const o of page.objects) {
      const obj: ListedObject = { ...o, bytes: Buffer.from(o.key, "utf8") };
      if (opts.onDisorder && arrived && compareKeys(obj, arrived) < 0) opts.onDisorder();
      arrived = obj;
      if (last && compareKeys(obj, last) <= 0) {
        if (compareKeys(obj, last) < 0) opts.onStraggler?.(obj);
        continue;
      }
      heap.push(obj);
      while (heap.size > window) {
        const next = heap.pop()!;
        if (last && compareKeys(next, last) === 0) continue;
        last = next;
        yield next;
      }
    }
  }
  for (let next = heap.pop(); next; next = heap.pop()) {
    if (last && compareKeys(next, last) === 0) continue;
    last = next;
    yield next;
  }
}

/** One step of a merge of the source and the target listings. */
export type MergeItem =
  | { kind: "both"; source: ListedObject; target: ListedObject }
  | { kind: "source-only"; source: ListedObject }
  | { kind: "target-only"; target: ListedObject }
  /** listed out of order by the server: its partner on the other side must be looked up */
  | { kind: "source-straggler"; source: ListedObject }
  | { kind: "target-straggler"; target: ListedObject };

/**
 * Merges two sorted listings key by key: both sides are listed at the same time, page by page, so
 * memory stays at a window per side whatever the bucket's size.
 */
export async function* mergeListings(
  source: ObjectStore,
  target: ObjectStore,
  opts: {
    prefix: string;
    startAfter?: string;
    signal?: AbortSignal;
    window?: number;
    pageSize?: number;
    onListed?: (side: "source" | "target", listed: number) => void;
  },
): AsyncGenerator<MergeItem> {
  // Stragglers met while a page is read, handed out before the next merged key; swapped out whole
  // (a burst of them is not drained with shift(), which moves the rest each time).
  let late: MergeItem[] = [];
  const common = {
    prefix: opts.prefix,
    ...(opts.startAfter ? { startAfter: opts.startAfter } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.window !== undefined ? { window: opts.window } : {}),
    ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
  };
  const src = sortedListing(source, {
    ...common,
    onStraggler: (o) => late.push({ kind: "source-straggler", source: o }),
    onPage: (n) => opts.onListed?.("source", n),
  });
  const dst = sortedListing(target, {
    ...common,
    onStraggler: (o) => late.push({ kind: "target-straggler", target: o }),
    onPage: (n) => opts.onListed?.("target", n),
  });
  try {
    // Both first pages at once.
    let [a, b] = await Promise.all([src.next(), dst.next()]);
    const drainLate = function* () {
      while (late.length > 0) {
        const batch = late;
        late = [];
        yield* batch;
      }
    };
    while (!a.done || !b.done) {
      yield* drainLate();
      if (b.done || (!a.done && compareKeys(a.value, b.value) < 0)) {
        yield { kind: "source-only", source: a.value as ListedObject };
        a = await src.next();
      } else if (a.done || compareKeys(a.value, b.value) > 0) {
        yield { kind: "target-only", target: b.value };
        b = await dst.next();
      } else {
        yield { kind: "both", source: a.value, target: b.value };
        [a, b] = await Promise.all([src.next(), dst.next()]);
      }
    }
    yield* drainLate();
  } finally {
    await Promise.allSettled([src.return(undefined), dst.return(undefined)]);
  }
}

const MD5_HEX = /^[0-9a-f]{32}$/i;

/** Whether an ETag is a plain MD5 (single-part upload) rather than a multipart or opaque one. */
export function isPlainMd5(etag: string): boolean {
  return MD5_HEX.test(etag);
}

/**
 * Whether a target object already holds the source object, judged from listings alone:
 * - sizes differ: no;
 * - both ETags plain MD5s: equal, or a pair remembered from an earlier copy (some servers give
 *   single-looking ETags that are not MD5s: R2 multipart uploads before June 2023, s3rver's);
 * - otherwise (multipart on either side, not comparable): the target was written at or after the
 *   source's last change. `storage.verify` proves the content by hashing.
 */
export function looksIdentical(
  source: ObjectSummary,
  target: ObjectSummary,
  remembered?: (key: string) => readonly [string, string] | undefined,
): boolean {
  if (source.size !== target.size) return false;
  if (isPlainMd5(source.etag) && isPlainMd5(target.etag)) {
    if (source.etag.toLowerCase() === target.etag.toLowerCase()) return true;
    const pair = remembered?.(source.key);
    return pair !== undefined && pair[0] === source.etag && pair[1] === target.etag;
  }
  // Listings give whole seconds on some servers: compare at that resolution.
  return Math.floor(target.lastModified / 1000) >= Math.floor(source.lastModified / 1000);
}

/** Key ranges of about equal object counts, and what the listing counted. */
export interface KeySplit {
  /** in key order; the first starts at "", the last has no `until` */
  ranges: Array<{ after: string; until?: string; objects: number }>;
  objects: number;
  bytes: number;
  /**
   * false when the server listed keys out of order during the split (s3rver walks its folders:
   * "a/…" before "a"; a server comparing UTF-16 puts "😀" before "！"): its order and its
   * start-after cannot place a range's keys, so each part lists the whole bucket (a cost in
   * listing only such servers pay; S3 and R2 list in UTF-8 byte order)
   */
  ordered?: boolean;
}

/**
 * Splits a bucket's key space into `parts` ranges of about equal object counts from one pass
 * over its listing that keeps a bounded sample: every `stride`-th key, the stride doubling (and
 * every other sampled key dropped) whenever the sample grows past 64 keys a part. Memory is that
 * sample, whatever the bucket's size; the boundaries fall within a stride of the exact quantiles.
 */
export async function splitKeySpace(
  store: ObjectStore,
  parts: number,
  opts: ListingOptions & { onListed?: (listed: number) => void },
): Promise<KeySplit> {
  const cap = Math.max(256, parts * 64);
  let stride = 1;
  let sample: string[] = [];
  let objects = 0;
  let bytes = 0;
  let ordered = true;
  for await (const o of sortedListing(store, {
    ...opts,
    onDisorder: () => {
      ordered = false;
    },
    ...(opts.onListed ? { onPage: opts.onListed } : {}),
  })) {
    if (objects % stride === 0) {
      sample.push(o.key);
      if (sample.length > cap) {
        sample = sample.filter((_, i) => i % 2 === 0);
        stride *= 2;
      }
    }
    objects++;
    bytes += o.size;
  }
  const n = Math.max(1, Math.min(parts, objects));
  const bounds: string[] = [];
  for (let j = 1; j < n; j++) {
    const key = sample[Math.floor((j * objects) / n / stride)];
    if (key !== undefined && key !== bounds.at(-1)) bounds.push(key);
  }
  const ranges: KeySplit["ranges"] = [];
  let after = opts.startAfter ?? "";
  for (const until of bounds) {
    ranges.push({ after, until, objects: 0 });
    after = until;
  }
  ranges.push({ after, objects: 0 });
  for (const r of ranges) r.objects = Math.round(objects / ranges.length);
  return { ranges, objects, bytes, ordered };
}
