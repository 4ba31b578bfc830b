import { createBucket, S3RVER_CREDENTIALS, type S3Server } from "../src/sandbox/s3-servers.js";

/**
 * The buckets of the storage benchmarks (bench/storage.ts, bench/footprint.ts) on the stand-ins:
 * s3rver as R2 (the source) and moto as S3 (the targets).
 */

/** The keys moto accepts (AWS's documented example pair). */
export const MOTO_CREDENTIALS = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

/** The source bucket `media` on s3rver, and each of `targets` on moto in `region`. */
export async function createBenchBuckets(
  r2: S3Server,
  moto: S3Server,
  region: string,
  targets: string[],
): Promise<void> {
  await createBucket(r2.endpoint, "media", "us-east-1", { ...S3RVER_CREDENTIALS });
  for (const bucket of targets) await createBucket(moto.endpoint, bucket, region, MOTO_CREDENTIALS);
}
