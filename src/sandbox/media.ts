import { createCipheriv, createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { ObjectMeta, ObjectStore } from "../cloud/object-store.js";

/**
 * Generated media for a rehearsal bucket: keys, sizes and bytes all follow from a seed, so two
 * runs (and the two sides of a benchmark) see the same data without storing it anywhere.
 */

export interface MediaSpec {
  /** how many small objects */
  count: number;
  minBytes: number;
  maxBytes: number;
  /** a few large ones on top, e.g. { count: 20, bytes: 20 MB } */
  large?: { count: number; bytes: number };
  seed: number;
  /** key prefix, e.g. "uploads/" */
  prefix?: string;
}

export interface MediaObject {
  key: string;
  size: number;
  meta: ObjectMeta;
  /** seeds the object's bytes */
  contentSeed: string;
}

/** A small seeded PRNG (mulberry32): same seed, same sequence, on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = [
  { ext: "jpg", type: "image/jpeg" },
  { ext: "png", type: "image/png" },
  { ext: "webp", type: "image/webp" },
  { ext: "mp4", type: "video/mp4" },
  { ext: "pdf", type: "application/pdf" },
] as const;

/** The objects a spec describes, in a stable order. */
export function* mediaObjects(spec: MediaSpec): Generator<MediaObject> {
  const rand = prng(spec.seed);
  const prefix = spec.prefix ?? "uploads/";
  const total = spec.count + (spec.large?.count ?? 0);
  for (let i = 0; i < total; i++) {
    const large = i >= spec.count;
    const kind = large ? KINDS[3] : KINDS[Math.floor(rand() * 3)]!;
    const size = large
      ? spec.large!.bytes
      : spec.minBytes + Math.floor(rand() * (spec.maxBytes - spec.minBytes + 1));
    const month = 1 + Math.floor(rand() * 12);
    const id = Math.floor(rand() * 0xffffffff)
      .toString(16)
      .padStart(8, "0");
    const key = `${prefix}${2024 + (i % 2)}/${String(month).padStart(2, "0")}/${id}-${i}.${kind.ext}`;
    const meta: ObjectMeta = {
      contentType: kind.type,
      cacheControl: "public, max-age=31536000, immutable",
      metadata: i % 3 === 0 ? { "uploaded-by": `user-${i % 97}` } : {},
    };
    if (kind.ext === "pdf") meta.contentDisposition = `attachment; filename="doc-${i}.pdf"`;
    yield { key, size, meta, contentSeed: `${spec.seed}:${i}` };
  }
}

/** The object's bytes: AES-CTR keystream of its seed, streamed in 1 MiB chunks. */
export function mediaBody(contentSeed: string, size: number): Readable {
  const key = createHash("sha256").update(contentSeed).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  const chunk = 1024 * 1024;
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, left);
      left -= n;
      this.push(cipher.update(Buffer.alloc(n)));
    },
  });
}

/** The whole body in memory, for small objects. */
export function mediaBuffer(contentSeed: string, size: number): Buffer {
  const key = createHash("sha256").update(contentSeed).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/**
 * Fills a bucket with the spec's objects (PutObject each, `concurrency` at a time). Returns what
 * was written.
 */
export async function fillBucket(
  store: ObjectStore,
  spec: MediaSpec,
  opts: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<{ objects: number; bytes: number }> {
  const all = mediaObjects(spec);
  const total = spec.count + (spec.large?.count ?? 0);
  let done = 0;
  let bytes = 0;
  const worker = async () => {
    for (let next = all.next(); !next.done; next = all.next()) {
      const o = next.value;
      const body =
        o.size <= 4 * 1024 * 1024 ? mediaBuffer(o.contentSeed, o.size) : mediaBody(o.contentSeed, o.size);
      await store.put(o.key, body, o.size, o.meta);
      done++;
      bytes += o.size;
      if (done % 250 === 0 || done === total) opts.onProgress?.(done, total);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, worker));
  return { objects: done, bytes };
}
