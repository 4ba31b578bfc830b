import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { objectUrl } from "../../../cloud/cdn.js";
import type { StepContext, StepDeps } from "../../define-step.js";
import { openTarget } from "../storage/buckets.js";
import { mbps, round } from "./format.js";
import { httpRequest } from "./http.js";

/** Where verification test objects go in the target bucket; each is deleted after its check. */
export const TEST_OBJECT_PREFIX = "cutover-verify/";

/** What one round trip of a test object measured. */
export interface RoundTrip {
  key: string;
  bytes: number;
  uploadMs: number;
  uploadMBps: number;
  downloadMs: number;
  downloadMBps: number;
  /** where it was read back from: the CDN's base URL, or "the bucket" */
  via: string;
  /** the bytes read back equal the bytes written */
  identical: boolean;
  downloadStatus?: number;
  downloadError?: string;
  /** the test object could not be deleted (the key is named so it can be removed by hand) */
  cleanupFailed?: boolean;
}

const BLOCK = 1024 * 1024;

/**
 * Writes a random object of `bytes` to the target bucket, reads it back through the CDN (or the
 * bucket when no CDN is known), compares the content, and deletes it again whatever happened.
 * Objects above 16 MiB are written as a multipart upload from a stream (memory stays small).
 */
export async function objectRoundTrip(
  deps: StepDeps,
  ctx: StepContext,
  opts: { bytes: number; cdnBase: string | undefined; timeoutMs: number },
): Promise<RoundTrip> {
  const store = openTarget(deps);
  const key = `${TEST_OBJECT_PREFIX}${ctx.run.id.slice(0, 8)}-${randomBytes(4).toString("hex")}.bin`;
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(opts.timeoutMs)]);
  const meta = {
    contentType: "application/octet-stream",
    cacheControl: "no-store",
    metadata: { "cutover-verify": "1" },
  };
  const block = randomBytes(Math.min(BLOCK, opts.bytes));
  const written = createHash("sha256");
  let uploaded = false;
  let result: RoundTrip;
  let removed = false;
  try {
    const t0 = performance.now();
    if (opts.bytes <= 16 * BLOCK) {
      const body = Buffer.alloc(opts.bytes);
      for (let at = 0; at < opts.bytes; at += block.length)
        block.copy(body, at, 0, Math.min(block.length, opts.bytes - at));
      written.update(body);
      await store.put(key, body, body.length, meta, { signal });
    } else {
      let left = opts.bytes;
      const stream = Readable.from(
        (function* () {
          while (left > 0) {
            const piece = left >= block.length ? block : block.subarray(0, left);
            left -= piece.length;
            written.update(piece);
            yield piece;
          }
        })(),
      );
      await store.upload(key, stream, meta, { signal, partSize: 8 * BLOCK, queueSize: 4 });
    }
    uploaded = true;
    const uploadMs = performance.now() - t0;
    const expected = written.digest("hex");
    let got: { ms: number; bytes: number; sha256: string; status?: number; error?: string };
    if (opts.cdnBase) {
      const a = await httpRequest(objectUrl(opts.cdnBase, key), {
        timeoutMs: opts.timeoutMs,
        signal: ctx.signal,
      });
      got = {
        ms: a.ms,
        bytes: a.bytes,
        sha256: a.sha256,
        ...(a.status ? { status: a.status } : {}),
        ...(a.error ? { error: a.error } : {}),
      };
    } else {
      const t1 = performance.now();
      const { body } = await store.get(key, { signal });
      const h = createHash("sha256");
      let n = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        n += chunk.length;
        h.update(chunk);
      }
      got = { ms: performance.now() - t1, bytes: n, sha256: h.digest("hex"), status: 200 };
    }
    result = {
      key,
      bytes: opts.bytes,
      uploadMs: round(uploadMs),
      uploadMBps: mbps(opts.bytes, uploadMs),
      downloadMs: round(got.ms),
      downloadMBps: got.status === 200 ? mbps(got.bytes, got.ms) : 0,
      via: opts.cdnBase ?? "the bucket",
      identical: got.status === 200 && got.bytes === opts.bytes && got.sha256 === expected,
      ...(got.status !== undefined ? { downloadStatus: got.status } : {}),
      ...(got.error ? { downloadError: got.error } : {}),
    };
  } finally {
    // clean up even after a failure; a cancel still deletes (the run's own signal is not used)
    removed = await store
      .deleteMany([key], { signal: AbortSignal.timeout(30_000) })
      .then((r) => r.failed.length === 0)
      .catch(() => false);
    store.destroy();
    if (!removed && uploaded) ctx.log.warn({ key }, "could not delete the verification test object");
  }
  return removed ? result : { ...result, cleanupFailed: true };
}
