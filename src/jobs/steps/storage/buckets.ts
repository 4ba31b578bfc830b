import { createHash } from "node:crypto";
import type { z } from "zod";
import type { ObjectStore } from "../../../cloud/object-store.js";
import { requireSection, type S3Config, type SourceStorageSchema } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";

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
