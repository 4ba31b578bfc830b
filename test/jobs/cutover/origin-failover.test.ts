import {
  CloudFrontClient,
  GetDistributionConfigCommand,
  ListDistributionsCommand,
} from "@aws-sdk/client-cloudfront";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createObjectStore, type ObjectStore } from "../../../src/cloud/object-store.js";
import { createS3BucketStep, s3OriginDomain } from "../../../src/jobs/steps/storage/bucket.js";
import { type FakeCdn, followDistribution, startFakeCdn } from "../../../src/sandbox/fake-cdn.js";
import { type S3Server, startMoto } from "../../../src/sandbox/s3-servers.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { bucketName, createBucket, type StorageWorld, startStorageWorld } from "../storage/world.js";

/*
 * Item 3d of the live cutover: the s3.bucket step puts an origin group in front of the new bucket
 * (S3 primary, the old bucket's public URL secondary on 403/404) and takes it off again; moto, through
 * the repository's launcher, accepts a behaviour that targets the group as CloudFront does; the fake
 * CDN fails over as the distribution it reads says.
 */

const OLD_HOST = "media.old-shop.example";
const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "x" };
let w: StorageWorld;
let moto: S3Server;
let cf: CloudFrontClient;
let cdn: FakeCdn;
const stores: ObjectStore[] = [];

beforeAll(async () => {
  [w, moto] = await Promise.all([startStorageWorld(), startMoto()]);
  cf = new CloudFrontClient({ endpoint: moto.endpoint, region: "us-east-1", credentials: creds });
}, 60_000);
afterAll(async () => {
  await cdn?.close();
  for (const s of stores) s.destroy();
  cf?.destroy();
  await moto?.stop();
  await w?.stop();
});

async function configOf(bucket: string) {
  const list = await cf.send(new ListDistributionsCommand({}));
  for (const d of list.DistributionList?.Items ?? []) {
    const c = await cf.send(new GetDistributionConfigCommand({ Id: d.Id }));
    if (
      c.DistributionConfig?.Origins?.Items?.some(
        (o) => o.DomainName === s3OriginDomain(bucket, "ap-southeast-1"),
      )
    )
      return c.DistributionConfig;
  }
  throw new Error(`no distribution for ${bucket}`);
}

describe("CloudFront origin failover to the old bucket", () => {
  it("s3.bucket adds the origin group, the CDN serves an upload not yet copied from the old bucket, and the group comes off", async () => {
    const sourceBucket = bucketName("old");
    const targetBucket = bucketName("new");
    await createBucket(w.r2.endpoint, sourceBucket);
    const deps = w.deps({
      sourceBucket,
      targetBucket,
      env: { AWS_ENDPOINT_URL: moto.endpoint },
      cloudfront: "  cloudfront:\n    originFailover: true\n    comment: shop media",
    });
    // the old bucket's public URL, which CloudFront reaches the old bucket at
    (deps.file.source!.storage as { publicUrl?: string }).publicUrl = `https://${OLD_HOST}/`;
    const step = createS3BucketStep(deps);

    const plan = await step.plan(step.parse({}), makeStepContext({ run: { dryRun: true } }));
    expect(plan.changes.find((c) => c.target === "CloudFront distribution")?.detail).toContain(
      `failing over to ${OLD_HOST} on 403/404`,
    );
    await step.run(step.parse({}), makeStepContext());
    const on = await configOf(targetBucket);
    expect(on.DefaultCacheBehavior?.TargetOriginId).toBe(`failover-${targetBucket}`);
    expect(on.OriginGroups?.Items?.[0]).toMatchObject({
      Id: `failover-${targetBucket}`,
      FailoverCriteria: { StatusCodes: { Quantity: 2, Items: [403, 404] } },
      Members: {
        Quantity: 2,
        Items: [{ OriginId: `s3-${targetBucket}` }, { OriginId: `old-${targetBucket}` }],
      },
    });
    expect(on.Origins?.Items?.find((o) => o.Id === `old-${targetBucket}`)).toMatchObject({
      DomainName: OLD_HOST,
      CustomOriginConfig: { OriginProtocolPolicy: "https-only" },
    });
    expect((await step.verify(step.parse({}), makeStepContext())).ok).toBe(true);

    // the CDN as the distribution says: an upload only the old bucket has is served from it
    const source = w.sourceStore(sourceBucket);
    await createBucket(moto.endpoint, targetBucket, { region: "ap-southeast-1", credentials: creds }).catch(
      () => undefined, // s3.bucket made it
    );
    const target = createObjectStore({
      side: "target",
      provider: "S3",
      bucket: targetBucket,
      region: "ap-southeast-1",
      endpoint: moto.endpoint,
      credentials: creds,
      credentialSource: "test keys",
    });
    stores.push(target);
    const body = Buffer.from("uploaded just before the switch");
    await source.put("uploads/late.jpg", body, body.length, { contentType: "image/jpeg", metadata: {} });
    cdn = await startFakeCdn(target);
    expect(followDistribution(cdn, on, { [OLD_HOST]: source })).toBe(OLD_HOST);
    const served = await fetch(`${cdn.url}/uploads/late.jpg`);
    expect(served.status).toBe(200);
    expect(served.headers.get("x-cutover-origin")).toBe("secondary");
    expect(Buffer.from(await served.arrayBuffer())).toEqual(body);

    // after the post-switch sync and verify: the group comes off, and a key the new bucket lacks is refused
    const off = await step.run(step.parse({ originFailover: false }), makeStepContext());
    expect(off.summary).toContain("update CloudFront distribution");
    const after = await configOf(targetBucket);
    expect(after.DefaultCacheBehavior?.TargetOriginId).toBe(`s3-${targetBucket}`);
    expect(after.OriginGroups?.Quantity ?? 0).toBe(0);
    expect(after.Origins?.Items?.map((o) => o.Id)).toEqual([`s3-${targetBucket}`]);
    expect((await step.verify(step.parse({ originFailover: false }), makeStepContext())).ok).toBe(true);
    expect(followDistribution(cdn, after, { [OLD_HOST]: source })).toBeUndefined();
    cdn.invalidate();
    expect((await fetch(`${cdn.url}/uploads/late.jpg`)).status).toBe(403);
  }, 120_000);

  it("refuses origin failover without the old bucket's public URL, saying what to set", async () => {
    const deps = w.deps({
      targetBucket: bucketName("new"),
      env: { AWS_ENDPOINT_URL: moto.endpoint },
      cloudfront: "  cloudfront:\n    originFailover: true",
    });
    const step = createS3BucketStep(deps);
    await expect(step.plan(step.parse({}), makeStepContext({ run: { dryRun: true } }))).rejects.toThrow(
      /source\.storage\.publicUrl is not set/,
    );
  });
});
