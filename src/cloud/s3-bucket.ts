import type { BucketLocationConstraint, LifecycleRule } from "@aws-sdk/client-s3";
import { CutoverError, ErrorCode } from "../errors.js";
import { lazyAwsClient } from "./lazy-sdk.js";
import { explainStoreError } from "./object-store.js";

/** What a bucket's settings are now; absent parts are unset. */
export interface BucketState {
  exists: boolean;
  region?: string;
  publicAccessBlock?: {
    BlockPublicAcls: boolean;
    IgnorePublicAcls: boolean;
    BlockPublicPolicy: boolean;
    RestrictPublicBuckets: boolean;
  };
  /** the default encryption algorithm (AES256, aws:kms, …) */
  encryption?: string;
  versioning?: string;
  lifecycle: LifecycleRule[];
  tags: Record<string, string>;
  /** the bucket policy, parsed */
  policy?: { Version?: string; Statement?: Array<Record<string, unknown>> };
}

/**
 * The bucket-settings port for provisioning the target: create, block public access, default
 * encryption, lifecycle, tags, policy. Errors name the target bucket and never echo a secret.
 */
export interface BucketAdmin {
  readonly bucket: string;
  readonly label: string;
  state(signal?: AbortSignal): Promise<BucketState>;
  create(region: string, signal?: AbortSignal): Promise<void>;
  blockPublicAccess(signal?: AbortSignal): Promise<void>;
  encryptByDefault(signal?: AbortSignal): Promise<void>;
  setVersioning(enabled: boolean, signal?: AbortSignal): Promise<void>;
  setLifecycle(rules: LifecycleRule[], signal?: AbortSignal): Promise<void>;
  setTags(tags: Record<string, string>, signal?: AbortSignal): Promise<void>;
  setPolicy(policy: object, signal?: AbortSignal): Promise<void>;
  isEmpty(signal?: AbortSignal): Promise<boolean>;
  deleteBucket(signal?: AbortSignal): Promise<void>;
  destroy(): void;
}

export interface BucketAdminOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  credentialSource: string;
  maxAttempts?: number;
}

const ABSENT = new Set([
  "NoSuchPublicAccessBlockConfiguration",
  "ServerSideEncryptionConfigurationNotFoundError",
  "NoSuchLifecycleConfiguration",
  "NoSuchTagSet",
  "NoSuchTagSetError",
  "NoSuchBucketPolicy",
]);

/** Builds the port over @aws-sdk/client-s3. */
export function createBucketAdmin(opts: BucketAdminOptions): BucketAdmin {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-s3"),
    (sdk) =>
      new sdk.S3Client({
        region: opts.region,
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
        forcePathStyle: Boolean(opts.endpoint),
        maxAttempts: opts.maxAttempts ?? 4,
      }),
  );
  const where = opts.endpoint ? new URL(opts.endpoint).host : `S3 in ${opts.region}`;
  const label = `target S3 bucket \`${opts.bucket}\` at ${where}`;
  const who = { label, side: "target" as const, credentialSource: opts.credentialSource, provider: "S3" };
  const Bucket = opts.bucket;
  const send = async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw explainStoreError(err, who, op);
    }
  };
  /** a read that answers "not configured" with an error of its own */
  const read = async <T>(op: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      const name = (err as { name?: string; Code?: string })?.name ?? "";
      if (ABSENT.has(name) || ABSENT.has((err as { Code?: string })?.Code ?? "")) return undefined;
      throw explainStoreError(err, who, op);
    }
  };

  return {
    bucket: opts.bucket,
    label,
    async state(signal) {
      const o = { abortSignal: signal };
      let region: string | undefined;
      try {
        const head = await client.send((sdk) => new sdk.HeadBucketCommand({ Bucket }), o);
        region = head.BucketRegion;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
        if (status === 404) return { exists: false, lifecycle: [], tags: {} };
        if (status === 403) {
          throw new CutoverError(
            ErrorCode.StorageAccessRefused,
            `The ${label} exists but Cutover may not use it (HTTP 403): another AWS account owns the name, or the credentials lack s3:ListBucket.`,
            {
              details: { side: "target", operation: "HeadBucket", status },
              hint: `Pick another bucket name (names are global), or check ${opts.credentialSource}.`,
            },
          );
        }
        throw explainStoreError(err, who, "HeadBucket");
      }
      if (!region) {
        const loc = await send("GetBucketLocation", () =>
          client.send((sdk) => new sdk.GetBucketLocationCommand({ Bucket }), o),
        );
        region = !loc.LocationConstraint
          ? "us-east-1"
          : loc.LocationConstraint === "EU"
            ? "eu-west-1"
            : loc.LocationConstraint;
      }
      const [pab, enc, ver, life, tags, policy] = await Promise.all([
        read("GetPublicAccessBlock", () =>
          client.send((sdk) => new sdk.GetPublicAccessBlockCommand({ Bucket }), o),
        ),
        read("GetBucketEncryption", () =>
          client.send((sdk) => new sdk.GetBucketEncryptionCommand({ Bucket }), o),
        ),
        read("GetBucketVersioning", () =>
          client.send((sdk) => new sdk.GetBucketVersioningCommand({ Bucket }), o),
        ),
        read("GetBucketLifecycleConfiguration", () =>
          client.send((sdk) => new sdk.GetBucketLifecycleConfigurationCommand({ Bucket }), o),
        ),
        read("GetBucketTagging", () => client.send((sdk) => new sdk.GetBucketTaggingCommand({ Bucket }), o)),
        read("GetBucketPolicy", () => client.send((sdk) => new sdk.GetBucketPolicyCommand({ Bucket }), o)),
      ]);
      const state: BucketState = {
        exists: true,
        region,
        lifecycle: life?.Rules ?? [],
        tags: Object.fromEntries((tags?.TagSet ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])),
      };
      const c = pab?.PublicAccessBlockConfiguration;
      if (c) {
        state.publicAccessBlock = {
          BlockPublicAcls: c.BlockPublicAcls === true,
          IgnorePublicAcls: c.IgnorePublicAcls === true,
          BlockPublicPolicy: c.BlockPublicPolicy === true,
          RestrictPublicBuckets: c.RestrictPublicBuckets === true,
        };
      }
      const algo =
        enc?.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm;
      if (algo) state.encryption = algo;
      if (ver?.Status) state.versioning = ver.Status;
      if (policy?.Policy) {
        try {
          state.policy = JSON.parse(policy.Policy) as BucketState["policy"];
        } catch {
          state.policy = {};
        }
      }
      return state;
    },
    async create(region, signal) {
      try {
        await client.send(
          (sdk) =>
            new sdk.CreateBucketCommand({
              Bucket,
              ...(region !== "us-east-1"
                ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }
                : {}),
            }),
          { abortSignal: signal },
        );
      } catch (err) {
        const name = (err as { name?: string })?.name;
        if (name === "BucketAlreadyOwnedByYou") return;
        if (name === "BucketAlreadyExists") {
          throw new CutoverError(
            ErrorCode.ResourceConflict,
            `The bucket name \`${Bucket}\` is taken by another AWS account (bucket names are global).`,
            { hint: "Choose another name for target.s3.bucket in the migration file." },
          );
        }
        throw explainStoreError(err, who, "CreateBucket");
      }
    },
    async blockPublicAccess(signal) {
      await send("PutPublicAccessBlock", () =>
        client.send(
          (sdk) =>
            new sdk.PutPublicAccessBlockCommand({
              Bucket,
              PublicAccessBlockConfiguration: {
                BlockPublicAcls: true,
                IgnorePublicAcls: true,
                BlockPublicPolicy: true,
                RestrictPublicBuckets: true,
              },
            }),
          { abortSignal: signal },
        ),
      );
    },
    async encryptByDefault(signal) {
      await send("PutBucketEncryption", () =>
        client.send(
          (sdk) =>
            new sdk.PutBucketEncryptionCommand({
              Bucket,
              ServerSideEncryptionConfiguration: {
                Rules: [
                  { ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" }, BucketKeyEnabled: true },
                ],
              },
            }),
          { abortSignal: signal },
        ),
      );
    },
    async setVersioning(enabled, signal) {
      await send("PutBucketVersioning", () =>
        client.send(
          (sdk) =>
            new sdk.PutBucketVersioningCommand({
              Bucket,
              VersioningConfiguration: { Status: enabled ? "Enabled" : "Suspended" },
            }),
          { abortSignal: signal },
        ),
      );
    },
    async setLifecycle(rules, signal) {
      await send("PutBucketLifecycleConfiguration", () =>
        client.send(
          (sdk) =>
            new sdk.PutBucketLifecycleConfigurationCommand({
              Bucket,
              LifecycleConfiguration: { Rules: rules },
            }),
          {
            abortSignal: signal,
          },
        ),
      );
    },
    async setTags(tags, signal) {
      await send("PutBucketTagging", () =>
        client.send(
          (sdk) =>
            new sdk.PutBucketTaggingCommand({
              Bucket,
              Tagging: { TagSet: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
            }),
          { abortSignal: signal },
        ),
      );
    },
    async setPolicy(policy, signal) {
      await send("PutBucketPolicy", () =>
        client.send((sdk) => new sdk.PutBucketPolicyCommand({ Bucket, Policy: JSON.stringify(policy) }), {
          abortSignal: signal,
        }),
      );
    },
    async isEmpty(signal) {
      const out = await send("ListObjectsV2", () =>
        client.send((sdk) => new sdk.ListObjectsV2Command({ Bucket, MaxKeys: 1 }), { abortSignal: signal }),
      );
      return (out.KeyCount ?? out.Contents?.length ?? 0) === 0;
    },
    async deleteBucket(signal) {
      await send("DeleteBucket", () =>
        client.send((sdk) => new sdk.DeleteBucketCommand({ Bucket }), { abortSignal: signal }),
      );
    },
    destroy: () => client.destroy(),
  };
}
