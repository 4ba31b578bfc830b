import {
  CloudFrontClient,
  GetDistributionConfigCommand,
  ListDistributionsCommand,
} from "@aws-sdk/client-cloudfront";
import {
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetPublicAccessBlockCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isCutoverError } from "../../../src/errors.js";
import { readProvisioned } from "../../../src/jobs/provisioned.js";
import {
  createS3BucketStep,
  distributionDomainOf,
  s3OriginDomain,
} from "../../../src/jobs/steps/storage/bucket.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { bucketName, createBucket, type StorageWorld, startStorageWorld } from "./world.js";

let w: StorageWorld;
let s3: S3Client;
let cf: CloudFrontClient;
const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "x" };

beforeAll(async () => {
  w = await startStorageWorld();
  s3 = new S3Client({
    endpoint: w.aws.endpoint,
    region: "ap-southeast-1",
    forcePathStyle: true,
    credentials: creds,
  });
  cf = new CloudFrontClient({ endpoint: w.aws.endpoint, region: "us-east-1", credentials: creds });
});
afterAll(async () => {
  s3?.destroy();
  cf?.destroy();
  await w?.stop();
});

async function distributionsFor(bucket: string) {
  const list = await cf.send(new ListDistributionsCommand({}));
  const out = [];
  for (const d of list.DistributionList?.Items ?? []) {
    const c = await cf.send(new GetDistributionConfigCommand({ Id: d.Id }));
    if (
      c.DistributionConfig?.Origins?.Items?.some(
        (o) => o.DomainName === s3OriginDomain(bucket, "ap-southeast-1"),
      )
    )
      out.push({ id: d.Id!, domain: d.DomainName!, config: c.DistributionConfig! });
  }
  return out;
}

describe("s3.bucket", () => {
  it("previews, creates the bucket and the distribution, and a rerun changes nothing and says so", async () => {
    const targetBucket = bucketName("media");
    const deps = w.deps({ targetBucket });
    const step = createS3BucketStep(deps);
    const input = step.parse({});

    const plan = await step.plan(input, makeStepContext({ run: { dryRun: true } }));
    const byTarget = Object.fromEntries(plan.changes.map((c) => [c.target, c]));
    expect(byTarget[`bucket ${targetBucket}`]).toMatchObject({
      action: "create",
      detail: "in ap-southeast-1",
    });
    expect(byTarget["public access block"]).toMatchObject({ action: "create" });
    expect(byTarget["default encryption"]).toMatchObject({ action: "create", detail: "SSE-S3 (AES256)" });
    expect(byTarget["lifecycle rule media-to-ia-after-90-days"]).toMatchObject({
      action: "create",
      detail: "Standard → STANDARD_IA after 90 days",
    });
    expect(byTarget[`origin access control cutover-${targetBucket}`]).toMatchObject({ action: "create" });
    expect(byTarget["CloudFront distribution"]?.detail).toBe(
      `origin ${targetBucket}.s3.ap-southeast-1.amazonaws.com through the origin access control; PriceClass_200, cache policy CachingOptimized (default TTL 86400 s), compression on, redirect-to-https`,
    );
    expect(byTarget["bucket policy"]).toMatchObject({ action: "create" });
    expect(await distributionsFor(targetBucket)).toEqual([]); // the preview created nothing

    const ctx = makeStepContext();
    const done = await step.run(input, ctx);
    const domain = distributionDomainOf(done);
    expect(domain).toMatch(/^[a-z0-9]+\.cloudfront\.net$/);
    expect(done.summary).toMatch(/^create bucket .* CDN at [a-z0-9]+\.cloudfront\.net$/);
    expect(done.figures).toMatchObject({ bucket: targetBucket, region: "ap-southeast-1", changes: 7 });
    expect(ctx.checkpoints.get("distribution")).toMatchObject({ domain });
    // stored for the cutover and the front end
    expect(await readProvisioned(deps.dataDir, "test")).toMatchObject({
      "target.cloudfront.domain": domain,
      "target.cloudfront.url": `https://${domain}`,
      "target.s3.bucket": targetBucket,
    });

    // What the world holds now.
    const pab = await s3.send(new GetPublicAccessBlockCommand({ Bucket: targetBucket }));
    expect(pab.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      IgnorePublicAcls: true,
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true,
    });
    const enc = await s3.send(new GetBucketEncryptionCommand({ Bucket: targetBucket }));
    expect(
      enc.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm,
    ).toBe("AES256");
    const life = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: targetBucket }));
    expect(life.Rules).toEqual([
      expect.objectContaining({
        ID: "media-to-ia-after-90-days",
        Status: "Enabled",
        Transitions: [expect.objectContaining({ Days: 90, StorageClass: "STANDARD_IA" })],
      }),
    ]);
    const dists = await distributionsFor(targetBucket);
    expect(dists).toHaveLength(1);
    const config = dists[0]!.config;
    expect(config).toMatchObject({ Enabled: true, PriceClass: "PriceClass_200", Comment: "shop media" });
    expect(config.DefaultCacheBehavior).toMatchObject({
      CachePolicyId: "658327ea-f89d-4fab-a63d-7e88639e58f6", // CachingOptimized: default TTL 86400 s
      Compress: true,
      ViewerProtocolPolicy: "redirect-to-https",
    });
    const policy = JSON.parse((await s3.send(new GetBucketPolicyCommand({ Bucket: targetBucket }))).Policy!);
    expect(policy.Statement).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Principal: { Service: "cloudfront.amazonaws.com" },
        Action: "s3:GetObject",
        Resource: `arn:aws:s3:::${targetBucket}/*`,
        Condition: { StringEquals: { "AWS:SourceArn": done.figures?.distributionArn } },
      }),
    ]);
    expect(await step.verify(input, ctx)).toMatchObject({ ok: true });

    // Idempotent: nothing to do, and it says so.
    const again = await step.run(input, makeStepContext());
    expect(again.summary).toBe(
      `nothing to change: the bucket and the distribution already match the migration file; CDN at ${domain}`,
    );
    expect(again.figures).toMatchObject({ changes: 0, distributionDomain: domain });
    expect(await distributionsFor(targetBucket)).toHaveLength(1);
    const replan = await step.plan(input, makeStepContext({ run: { dryRun: true } }));
    expect(replan.changes.every((c) => c.action === "none")).toBe(true);

    // A changed setting in the file is previewed, then applied in place.
    const cheaper = w.deps({
      targetBucket,
      cloudfront: `  cloudfront:
    priceClass: PriceClass_100
    compress: true
    comment: shop media`,
    });
    const changed = createS3BucketStep(cheaper);
    const diff = await changed.plan(input, makeStepContext({ run: { dryRun: true } }));
    expect(diff.changes.filter((c) => c.action !== "none")).toEqual([
      expect.objectContaining({ action: "update", detail: "price class PriceClass_200 → PriceClass_100" }),
    ]);
    await changed.run(input, makeStepContext());
    expect((await distributionsFor(targetBucket))[0]?.config.PriceClass).toBe("PriceClass_100");
    expect((await changed.plan(input, makeStepContext())).summary).toMatch(/^nothing to change/);
    // seconds on a quiet machine; past 30 s once with CI beside a second test run
  }, 90_000);

  it("refuses a bucket that exists in another region", async () => {
    const targetBucket = bucketName("elsewhere");
    await createBucket(w.aws.endpoint, targetBucket, { region: "eu-west-1", credentials: creds });
    const step = createS3BucketStep(w.deps({ targetBucket }));
    const err = await step.plan(step.parse({}), makeStepContext()).catch((e) => e);
    expect(isCutoverError(err)).toBe(true);
    expect(err.code).toBe("region_mismatch");
    expect(err.message).toBe(
      `The target S3 bucket \`${targetBucket}\` at ${new URL(w.aws.endpoint).host} already exists in eu-west-1, but target.s3.region is ap-southeast-1.`,
    );
    expect(err.hint).toMatch(/Set target.s3.region to eu-west-1/);
  });

  it("takes the distribution down on undo and deletes the bucket only when it is empty", async () => {
    const targetBucket = bucketName("undo");
    const deps = w.deps({ targetBucket });
    const step = createS3BucketStep(deps);
    await step.run(step.parse({}), makeStepContext());
    expect(await distributionsFor(targetBucket)).toHaveLength(1);
    await step.undo!(step.parse({}), makeStepContext());
    expect(await distributionsFor(targetBucket)).toHaveLength(0);
    const plan = await step.plan(step.parse({}), makeStepContext());
    expect(plan.changes[0]).toMatchObject({ action: "create", target: `bucket ${targetBucket}` });
  });
});
