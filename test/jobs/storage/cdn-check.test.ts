import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isCacheHit, measureCdnHitRatio, objectUrl } from "../../../src/cloud/cdn.js";
import { createS3BucketStep } from "../../../src/jobs/steps/storage/bucket.js";
import { createCdnCheckStep } from "../../../src/jobs/steps/storage/cdn-check.js";
import { type FakeCdn, startFakeCdn } from "../../../src/sandbox/fake-cdn.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { bucketName, type StorageWorld, seed, startStorageWorld } from "./world.js";

let w: StorageWorld;
let cdn: FakeCdn;
let targetBucket: string;
const keys = Array.from({ length: 40 }, (_, i) => `cdn/${i % 2 ? "图片" : "photo"} ${i}+x.jpg`);

beforeAll(async () => {
  w = await startStorageWorld();
  targetBucket = bucketName("cdn");
  // The bucket and distribution as provisioning leaves them, then objects, then a CDN stand-in.
  const provision = createS3BucketStep(w.deps({ targetBucket }));
  await provision.run(provision.parse({}), makeStepContext());
  const target = w.targetStore(targetBucket);
  await seed(
    target,
    keys.map((key, i) => ({ key, body: Buffer.alloc(1000 + i, i), meta: { contentType: "image/jpeg" } })),
  );
  cdn = await startFakeCdn(target);
});
afterAll(async () => {
  await cdn?.close();
  await w?.stop();
});

describe("cdn.check", () => {
  it("reads CloudFront's X-Cache header and encodes keys in URLs", () => {
    expect(isCacheHit("Hit from cloudfront")).toBe(true);
    expect(isCacheHit("RefreshHit from cloudfront")).toBe(true);
    expect(isCacheHit("Miss from cloudfront")).toBe(false);
    expect(isCacheHit("")).toBe(false);
    expect(objectUrl("https://d1.cloudfront.net/", "a b/c+d%e/图.jpg")).toBe(
      "https://d1.cloudfront.net/a%20b/c%2Bd%25e/%E5%9B%BE.jpg",
    );
  });

  it("fetches a sample twice through the CDN and reports the hit ratio of each round", async () => {
    cdn.invalidate();
    const step = createCdnCheckStep(w.deps({ targetBucket }));
    const input = step.parse({ baseUrl: cdn.url, sampleObjects: 20 });
    const ctx = makeStepContext();
    const outcome = await step.run(input, ctx);
    expect(outcome.figures).toMatchObject({
      samples: 20,
      firstRoundHitRatioPercent: 0,
      hitRatioPercent: 100,
      overallHitRatioPercent: 50,
      errors: 0,
      sizeMismatches: 0,
    });
    expect(outcome.summary).toMatch(
      /^cache hit ratio 100% on the warm round \(want ≥ 80%\), round 1: 0%, round 2: 100%; 20 objects through/,
    );
    expect(cdn.stats()).toMatchObject({ hits: 20, misses: 20, errors: 0 });
    expect(await step.verify(input, ctx)).toMatchObject({ ok: true });
  });

  it("fails verification when the warm round misses the target, and on fetch errors", async () => {
    cdn.invalidate();
    const step = createCdnCheckStep(w.deps({ targetBucket }));
    const cold = await step.verify(
      step.parse({ baseUrl: cdn.url, rounds: 1, sampleObjects: 5 }),
      makeStepContext(),
    );
    expect(cold).toMatchObject({ ok: false, figures: { hitRatioPercent: 0 } });

    const probe = await measureCdnHitRatio({
      baseUrl: cdn.url,
      objects: [{ key: "cdn/not there.jpg", size: 1 }],
    });
    expect(probe).toMatchObject({ errors: 2, hitRatio: 0 });
  });

  it("finds the distribution provisioning recorded when no base URL is given", async () => {
    const step = createCdnCheckStep(w.deps({ targetBucket }));
    const plan = await step.plan(step.parse({}), makeStepContext({ run: { dryRun: true } }));
    expect(plan.summary).toMatch(
      /^would fetch 50 sample objects 2 times through https:\/\/[a-z0-9]+\.cloudfront\.net and want a warm hit ratio of ≥ 80%$/,
    );
  });
});
