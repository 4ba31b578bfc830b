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

/**
 * A migration file's `source` (the `media` bucket on s3rver as R2) and `target` (`bucket` on
 * S3 in `region`) sections, and a runbook of one phase running `steps` (storage.sync, …).
 */
export function storageMigration(o: {
  r2: S3Server;
  bucket: string;
  region: string;
  steps: Array<{ id: string; uses: string }>;
}): string {
  return `source:
  storage: { endpoint: "${o.r2.endpoint}", bucket: media, accessKeyIdEnv: R2_ACCESS_KEY_ID, secretAccessKeyEnv: R2_SECRET_ACCESS_KEY }
target:
  aws: { region: ${o.region} }
  s3: { bucket: ${o.bucket}, region: ${o.region} }
runbook:
  phases:
    - id: storage
      title: Storage
      steps:
${o.steps.map((s) => `        - { id: ${s.id}, uses: ${s.uses} }\n`).join("")}`;
}

/** The environment {@link storageMigration} names: the keys of both sides and moto's endpoint. */
export function storageEnv(moto: S3Server): Record<string, string> {
  return {
    R2_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    R2_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
  };
}

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
