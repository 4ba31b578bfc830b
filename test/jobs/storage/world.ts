import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { createObjectStore, type ObjectMeta, type ObjectStore } from "../../../src/cloud/object-store.js";
import { parseMigrationFile } from "../../../src/config/load.js";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import { createPorts } from "../../../src/ports.js";
import { S3RVER_CREDENTIALS, type S3Server, startS3rver } from "../../../src/sandbox/s3-servers.js";
import { type MotoHandle, useMoto } from "../../helpers/moto.js";

/** s3rver as R2, moto as AWS, and migration files pointing at both. */
export interface StorageWorld {
  r2: S3Server;
  aws: MotoHandle;
  dataDir: string;
  deps(opts?: WorldOptions): StepDeps;
  /** the migration file's text and the environment `deps` builds on */
  config(opts?: WorldOptions): { yaml: string; env: Record<string, string> };
  /** a client on the source side (s3rver), with write access for seeding */
  sourceStore(bucket: string): ObjectStore;
  /** a client on the target side (moto) */
  targetStore(bucket: string, region?: string): ObjectStore;
  stop(): Promise<void>;
}

export interface WorldOptions {
  sourceBucket?: string;
  targetBucket?: string;
  targetRegion?: string;
  sourceEndpoint?: string;
  prefix?: string;
  cloudfront?: string;
  env?: Record<string, string | undefined>;
  dataDir?: string;
}

/** A bucket name nobody else on a shared moto uses. */
export function bucketName(label: string): string {
  return `${label}-${randomBytes(4).toString("hex")}`;
}

export function migrationYaml(
  o: Required<Pick<WorldOptions, "sourceBucket" | "targetBucket" | "targetRegion">> &
    WorldOptions & { sourceEndpoint: string },
): string {
  return `
version: 1
project: shop
slack: { channel: C0123456789 }
access:
  operators: [U0123456789]
  approvers: [U0987654321]
  channels: [C0123456789]
source:
  storage:
    provider: Cloudflare R2
    endpoint: ${o.sourceEndpoint}
    bucket: ${o.sourceBucket}
    region: auto
    accessKeyIdEnv: R2_ACCESS_KEY_ID
    secretAccessKeyEnv: R2_SECRET_ACCESS_KEY
    prefix: "${o.prefix ?? ""}"
target:
  aws:
    region: ${o.targetRegion}
  s3:
    bucket: ${o.targetBucket}
    region: ${o.targetRegion}
    blockPublicAccess: true
    lifecycle:
      - id: media-to-ia-after-90-days
        transitions:
          - afterDays: 90
            storageClass: STANDARD_IA
${
  o.cloudfront ??
  `  cloudfront:
    priceClass: PriceClass_200
    defaultTtlSeconds: 86400
    compress: true
    cachePolicy: CachingOptimized
    originAccessControl: true
    comment: shop media`
}
runbook:
  phases:
    - id: storage
      title: Storage
      steps:
        - { id: provision-s3, uses: s3.bucket }
        - { id: storage-sync, uses: storage.sync }
        - { id: storage-verify, uses: storage.verify }
        - { id: cdn-check, uses: cdn.check }
`;
}

export async function startStorageWorld(): Promise<StorageWorld> {
  const [r2, aws, dataDir] = await Promise.all([
    startS3rver(),
    useMoto(),
    mkdtemp(path.join(tmpdir(), "cutover-storage-")),
  ]);
  const log = pino({ level: "silent" });
  const stores: ObjectStore[] = [];
  const world: StorageWorld = {
    r2,
    aws,
    dataDir,
    config(opts = {}) {
      const yaml = migrationYaml({
        sourceBucket: opts.sourceBucket ?? "media",
        targetBucket: opts.targetBucket ?? "media-target",
        targetRegion: opts.targetRegion ?? "ap-southeast-1",
        sourceEndpoint: opts.sourceEndpoint ?? r2.endpoint,
        ...opts,
      });
      const env: Record<string, string> = {
        R2_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        R2_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        AWS_ENDPOINT_URL: aws.endpoint,
        AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        AWS_MAX_ATTEMPTS: "2",
      };
      for (const [k, v] of Object.entries(opts.env ?? {})) {
        if (v === undefined) delete env[k];
        else env[k] = v;
      }
      return { yaml, env };
    },
    deps(opts = {}) {
      const { yaml, env } = world.config(opts);
      const file = parseMigrationFile(yaml, { checkEnv: false });
      return { env, ports: createPorts({ env }, file), file, dataDir: opts.dataDir ?? dataDir, log };
    },
    sourceStore(bucket) {
      const s = createObjectStore({
        side: "source",
        provider: "R2",
        bucket,
        region: "us-east-1",
        endpoint: r2.endpoint,
        credentials: { ...S3RVER_CREDENTIALS },
        credentialSource: "S3RVER",
        writeChecksums: false,
      });
      stores.push(s);
      return s;
    },
    targetStore(bucket, region = "ap-southeast-1") {
      const s = createObjectStore({
        side: "target",
        provider: "S3",
        bucket,
        region,
        endpoint: aws.endpoint,
        credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "x" },
        credentialSource: "test keys",
      });
      stores.push(s);
      return s;
    },
    async stop() {
      for (const s of stores) s.destroy();
      await Promise.allSettled([r2.stop(), aws.stop(), rm(dataDir, { recursive: true, force: true })]);
    },
  };
  return world;
}

/** Creates a bucket directly (test set-up; the product creates target buckets with `s3.bucket`). */
export async function createBucket(
  endpoint: string,
  bucket: string,
  opts: { region?: string; credentials?: { accessKeyId: string; secretAccessKey: string } } = {},
): Promise<void> {
  const { S3Client, CreateBucketCommand } = await import("@aws-sdk/client-s3");
  const region = opts.region ?? "us-east-1";
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: opts.credentials ?? { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  try {
    await client.send(
      new CreateBucketCommand({
        Bucket: bucket,
        ...(region !== "us-east-1"
          ? { CreateBucketConfiguration: { LocationConstraint: region as "eu-west-1" } }
          : {}),
      }),
    );
  } finally {
    client.destroy();
  }
}

/** Keys that break naive code: spaces, +, %, CJK, emoji, a ~1 KB key, folders, prefix neighbours. */
export function awkwardKeys(): string[] {
  // s3rver stores each key segment as a file name (≤ 255 bytes), so the long key has short segments.
  let long = "long/";
  while (Buffer.byteLength(long) < 1000) long += `${"長い名前".repeat(12)}/`.slice(0, 49);
  long = long.replace(/\/$/, "");
  while (Buffer.byteLength(long) > 1020) long = long.slice(0, -1);
  long += ".txt";
  return [
    "plain.txt",
    "with space/file name.txt",
    "a+b=c.txt",
    "100%/percent%20literal.txt",
    "中文目录/图片 一.jpg",
    "日本語/ファイル名.png",
    long,
    "empty.bin",
    "folder/",
    "folder/inner.txt",
    "folder/sub/deep.txt",
    "a",
    "a-",
    "a.txt",
    "a/b",
    "😀 emoji.png",
    "！full-width.txt",
  ];
}

export interface SeedObject {
  key: string;
  body: Buffer;
  meta?: Partial<ObjectMeta>;
}

/** Puts objects on a store, a few at a time. */
export async function seed(store: ObjectStore, objects: SeedObject[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < objects.length) {
      const o = objects[next++]!;
      await store.put(o.key, o.body, o.body.length, { metadata: {}, ...o.meta });
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
}

/** The bytes of an object. */
export async function readAll(store: ObjectStore, key: string): Promise<Buffer> {
  const { body } = await store.get(key);
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Every key of a bucket, in listing order. */
export async function listKeys(store: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.listPage(token ? { token } : {});
    keys.push(...page.objects.map((o) => o.key));
    token = page.nextToken;
  } while (token);
  return keys;
}
