import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CutoverError, describeError } from "../../../src/errors.js";
import { createS3BucketStep } from "../../../src/jobs/steps/storage/bucket.js";
import { createStorageSyncStep } from "../../../src/jobs/steps/storage/sync.js";
import { createStorageVerifyStep } from "../../../src/jobs/steps/storage/verify.js";
import { createMotoUser, freePort, type S3Server, startMoto } from "../../../src/sandbox/s3-servers.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { bucketName, createBucket, type StorageWorld, startStorageWorld } from "./world.js";

let w: StorageWorld;
let authMoto: S3Server;
let motoKeys: { accessKeyId: string; secretAccessKey: string };
let sourceBucket: string;

beforeAll(async () => {
  // A moto of its own that checks signatures: three unauthenticated calls make a user, then it checks.
  [w, authMoto] = await Promise.all([
    startStorageWorld(),
    startMoto({ env: { INITIAL_NO_AUTH_ACTION_COUNT: "3" } }),
  ]);
  motoKeys = await createMotoUser(authMoto.endpoint);
  sourceBucket = bucketName("src");
  await createBucket(w.r2.endpoint, sourceBucket);
});
afterAll(async () => {
  await Promise.allSettled([authMoto?.stop(), w?.stop()]);
});

const AWS_TEST_KEYS = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "x" };
const SECRETS = [
  "S3RVER",
  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  "AKIAIOSFODNN7EXAMPLE",
  "AKIAWRONGWRONGWRONG1",
  "not-the-secret-at-all",
];

/** Runs fn, expects a CutoverError, and checks no key or secret reached what a person sees. */
async function failure(fn: () => Promise<unknown>, extraSecrets: string[] = []): Promise<CutoverError> {
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CutoverError);
  const e = err as CutoverError;
  const seen = `${describeError(e)}\n${JSON.stringify(e.details)}\n${String(e.cause ?? "")}`;
  for (const s of [...SECRETS, ...extraSecrets]) expect(seen).not.toContain(s);
  return e;
}

describe("storage steps on bad input", () => {
  it("names the source when R2 rejects the key, without echoing it", async () => {
    const targetBucket = bucketName("dst");
    await createBucket(w.aws.endpoint, targetBucket, {
      region: "ap-southeast-1",
      credentials: AWS_TEST_KEYS,
    });
    const deps = w.deps({ sourceBucket, targetBucket, env: { R2_ACCESS_KEY_ID: "AKIAWRONGWRONGWRONG1" } });
    const step = createStorageSyncStep(deps);
    const e = await failure(() => step.run(step.parse({}), makeStepContext()));
    expect(e.code).toBe("storage_access_refused");
    expect(e.message).toBe(
      `The source R2 bucket \`${sourceBucket}\` at ${new URL(w.r2.endpoint).host} rejected the credentials (InvalidAccessKeyId) on ListObjectsV2.`,
    );
    expect(e.hint).toMatch(/^Check R2_ACCESS_KEY_ID \/ R2_SECRET_ACCESS_KEY/);
  });

  it("names the target when S3 rejects the secret, without echoing it", async () => {
    const targetBucket = bucketName("dst");
    await createBucket(authMoto.endpoint, targetBucket, { region: "ap-southeast-1", credentials: motoKeys });
    const good = w.deps({
      sourceBucket,
      targetBucket,
      env: {
        AWS_ENDPOINT_URL: authMoto.endpoint,
        AWS_ACCESS_KEY_ID: motoKeys.accessKeyId,
        AWS_SECRET_ACCESS_KEY: motoKeys.secretAccessKey,
      },
    });
    const sync = createStorageSyncStep(good);
    expect((await sync.run(sync.parse({}), makeStepContext())).figures).toMatchObject({ copied: 0 });

    const bad = w.deps({
      sourceBucket,
      targetBucket,
      env: {
        AWS_ENDPOINT_URL: authMoto.endpoint,
        AWS_ACCESS_KEY_ID: motoKeys.accessKeyId,
        AWS_SECRET_ACCESS_KEY: "not-the-secret-at-all",
      },
    });
    const ctx = makeStepContext();
    const step = createStorageVerifyStep(bad);
    const e = await failure(
      () => step.run(step.parse({}), ctx),
      [motoKeys.accessKeyId, motoKeys.secretAccessKey],
    );
    expect(e.code).toBe("storage_access_refused");
    expect(e.message).toBe(
      `The target S3 bucket \`${targetBucket}\` at ${new URL(authMoto.endpoint).host} rejected the credentials (SignatureDoesNotMatch) on ListObjectsV2.`,
    );
    expect(e.hint).toMatch(/^Check AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY/);
    for (const line of ctx.logs) expect(line).not.toContain(motoKeys.secretAccessKey);
  });

  it("says which bucket is missing", async () => {
    const missingSource = createStorageSyncStep(w.deps({ sourceBucket: "no-such-source" }));
    const e1 = await failure(() => missingSource.plan(missingSource.parse({}), makeStepContext()));
    expect(e1.code).toBe("bucket_missing");
    expect(e1.message).toBe(
      `The source R2 bucket \`no-such-source\` at ${new URL(w.r2.endpoint).host} does not exist.`,
    );

    const missingTarget = createStorageSyncStep(w.deps({ sourceBucket, targetBucket: bucketName("absent") }));
    const e2 = await failure(() => missingTarget.run(missingTarget.parse({}), makeStepContext()));
    expect(e2.code).toBe("bucket_missing");
    expect(e2.message).toMatch(/^The target S3 bucket `absent-[0-9a-f]+` at .* does not exist\.$/);
    expect(e2.hint).toMatch(/provisioning step \(`s3.bucket`\)/);
    // a dry run of the sync still works: it says the bucket is to be created and counts everything
    const plan = await missingTarget.plan(missingTarget.parse({}), makeStepContext());
    expect(plan.changes[0]).toMatchObject({
      action: "check",
      detail: "does not exist yet: `s3.bucket` creates it",
    });
  });

  it("says which endpoint cannot be reached", async () => {
    const port = await freePort();
    const targetBucket = bucketName("dst");
    await createBucket(w.aws.endpoint, targetBucket, {
      region: "ap-southeast-1",
      credentials: AWS_TEST_KEYS,
    });
    const step = createStorageSyncStep(
      w.deps({ sourceBucket, targetBucket, sourceEndpoint: `http://127.0.0.1:${port}` }),
    );
    const e = await failure(() => step.run(step.parse({}), makeStepContext()));
    expect(e.code).toBe("unreachable");
    expect(e.message).toBe(
      `Could not reach the source R2 bucket \`${sourceBucket}\` at 127.0.0.1:${port} (ECONNREFUSED).`,
    );
    expect(e.hint).toBe("Check source.storage.endpoint and that this host can reach it.");

    const target = createS3BucketStep(w.deps({ env: { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` } }));
    const e2 = await failure(() => target.plan(target.parse({}), makeStepContext()));
    expect(e2.code).toBe("unreachable");
    expect(e2.message).toMatch(/^Could not reach the target S3 bucket/);
  });

  it("refuses a target bucket in another region than the file says", async () => {
    const targetBucket = bucketName("eu");
    await createBucket(w.aws.endpoint, targetBucket, {
      region: "eu-west-1",
      credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "x" },
    });
    const step = createStorageSyncStep(w.deps({ sourceBucket, targetBucket }));
    const e = await failure(() => step.run(step.parse({}), makeStepContext()));
    expect(e.code).toBe("region_mismatch");
    expect(e.message).toBe(
      `The target S3 bucket \`${targetBucket}\` at ${new URL(w.aws.endpoint).host} is in eu-west-1, but the migration file says ap-southeast-1.`,
    );
  });

  it("says which variable is missing for the source keys", async () => {
    const step = createStorageSyncStep(w.deps({ sourceBucket, env: { R2_SECRET_ACCESS_KEY: undefined } }));
    const e = await failure(() => step.run(step.parse({}), makeStepContext()));
    expect(e.code).toBe("settings_missing");
    expect(e.message).toMatch(/^R2_SECRET_ACCESS_KEY is not set/);
  });

  it("rejects a bad `with:` block with the field's name", () => {
    const step = createStorageSyncStep(w.deps({ sourceBucket }));
    expect(() => step.parse({ concurrency: 0, partSizeMb: 1 })).toThrow(
      /^storage.sync: concurrency: .*; partSizeMb: /,
    );
    expect(() => step.parse({ concurency: 4 })).toThrow(/concurency/);
  });
});
