import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStorageSyncStep } from "../../../src/jobs/steps/storage/sync.js";
import { estimateSync } from "../../../src/jobs/steps/storage/sync-engine.js";
import {
  createStorageVerifyStep,
  type StorageVerifyReport,
  verifyBuckets,
  verifySummary,
} from "../../../src/jobs/steps/storage/verify.js";
import { storageVerifyView } from "../../../src/views/storage-verify.js";
import { makeStepContext } from "../../helpers/step-context.js";
import {
  awkwardKeys,
  bucketName,
  createBucket,
  readAll,
  type StorageWorld,
  seed,
  startStorageWorld,
} from "./world.js";

const MiB = 1024 * 1024;
let w: StorageWorld;
beforeAll(async () => {
  w = await startStorageWorld();
});
afterAll(async () => {
  await w?.stop();
});

async function syncedPair() {
  const sourceBucket = bucketName("src");
  const targetBucket = bucketName("dst");
  await createBucket(w.r2.endpoint, sourceBucket);
  await createBucket(w.aws.endpoint, targetBucket, { region: "ap-southeast-1" });
  const source = w.sourceStore(sourceBucket);
  const target = w.targetStore(targetBucket);
  await seed(source, [
    ...awkwardKeys().map((key, i) => ({
      key,
      body: key.endsWith("/") ? Buffer.alloc(0) : Buffer.from(`${key} ${"x".repeat(i * 10)}`),
      meta: { contentType: "text/plain", cacheControl: "max-age=60", metadata: { n: String(i) } },
    })),
    { key: "video/large.mp4", body: Buffer.alloc(7 * MiB, 9), meta: { contentType: "video/mp4" } },
  ]);
  const deps = w.deps({ sourceBucket, targetBucket });
  const sync = createStorageSyncStep(deps);
  await sync.run(sync.parse({ multipartThresholdMb: 6, partSizeMb: 5 }), makeStepContext());
  return { deps, source, target, count: awkwardKeys().length + 1 };
}

describe("storage.verify", () => {
  it("in a live migration counts an upload made after the last sync began as new, not missing; an older one stays missing", async () => {
    const sourceBucket = bucketName("live-src");
    const targetBucket = bucketName("live-dst");
    await createBucket(w.r2.endpoint, sourceBucket);
    await createBucket(w.aws.endpoint, targetBucket, { region: "ap-southeast-1" });
    const source = w.sourceStore(sourceBucket);
    const target = w.targetStore(targetBucket);
    await seed(source, [
      { key: "media/a.jpg", body: Buffer.from("a") },
      { key: "media/b.jpg", body: Buffer.from("bb") },
    ]);
    await seed(target, [{ key: "media/a.jpg", body: Buffer.from("a") }]);
    const b = (await source.head("media/b.jpg"))!;
    const opts = {
      prefix: "",
      concurrency: 4,
      metadata: false,
      listDifferences: 10,
      window: 100,
      signal: AbortSignal.timeout(30_000),
    };
    // b arrived when the sync began: the sync after the switch copies it
    const live = await verifyBuckets(source, target, { ...opts, newSince: b.lastModified });
    expect(live).toMatchObject({ ok: true, matched: 1, newSinceSync: 1 });
    expect(live.differences.missing).toBe(0);
    expect(verifySummary(live)).toContain(
      "1 object uploaded to the source since the last storage.sync started",
    );
    // b was there a second before the sync began: the sync should have copied it
    const older = await verifyBuckets(source, target, { ...opts, newSince: b.lastModified + 1000 });
    expect(older.ok).toBe(false);
    expect(older.differences.missing).toBe(1);
    const snapshot = await verifyBuckets(source, target, opts);
    expect(snapshot.differences.missing).toBe(1);
    expect(snapshot.newSinceSync).toBeUndefined();
    // storage.sync's own check after copying, the same rule
    const listing = { prefix: "", window: 100, pageSize: 1000, compare: "listing" as const };
    expect(await estimateSync(source, target, listing, { newSince: b.lastModified })).toMatchObject({
      toCopy: 0,
      newSince: 1,
    });
    expect(await estimateSync(source, target, listing, { newSince: b.lastModified + 1000 })).toMatchObject({
      toCopy: 1,
      missing: 1,
    });
  });

  it("proves every object identical, by ETag where comparable and by hashing the multipart one", async () => {
    const { deps, count } = await syncedPair();
    const step = createStorageVerifyStep(deps);
    const input = step.parse({});
    const ctx = makeStepContext({ run: { id: "run-verify-ok" } });
    const outcome = await step.run(input, ctx);
    expect(outcome.figures).toMatchObject({
      sourceObjects: count,
      targetObjects: count,
      matched: count,
      missing: 0,
      extra: 0,
      contentDiffers: 0,
      metadataDiffers: 0,
    });
    // the multipart copy's ETag (…-2) is not an MD5: its bytes were hashed on both sides or checked by CRC32
    expect(Number(outcome.figures?.byHashing) + Number(outcome.figures?.byStoredChecksum)).toBe(1);
    expect(outcome.figures?.byEtag).toBe(count - 1);
    expect(outcome.summary).toMatch(
      new RegExp(`^${count} of ${count} objects \\(.*\\) identical on both sides, metadata kept`),
    );
    expect(await step.verify(input, ctx)).toMatchObject({ ok: true });
    const file = String(outcome.figures?.reportFile);
    expect(existsSync(file)).toBe(true);
    const report = JSON.parse(readFileSync(file, "utf8")) as StorageVerifyReport;
    const view = storageVerifyView(report);
    expect(view.text).toMatch(new RegExp(`^✅ Storage verified: ${count} of ${count} objects identical`));
    expect(JSON.stringify(view.blocks)).toContain("Content proven");
    // the same report went into the run's thread
    expect(ctx.posted.map((p) => p.text)).toEqual([view.text]);
  });

  it("lists each kind of difference by key, and the report says what differs", async () => {
    const { deps, source, target, count } = await syncedPair();
    // same size, other bytes
    const plain = await readAll(source, "plain.txt");
    await target.put("plain.txt", Buffer.alloc(plain.length, 65), plain.length, {
      contentType: "text/plain",
      cacheControl: "max-age=60",
      metadata: { n: "0" },
    });
    // same bytes, a header and the user metadata changed
    const spaced = await readAll(source, "with space/file name.txt");
    await target.put("with space/file name.txt", spaced, spaced.length, {
      contentType: "text/plain",
      cacheControl: "no-store",
      metadata: { n: "changed" },
    });
    await target.deleteMany(["中文目录/图片 一.jpg"]);
    await target.put("a+b=c.txt", Buffer.from("short"), 5, { metadata: {} });
    await target.put("only/on the target.txt", Buffer.from("x"), 1, { metadata: {} });

    const step = createStorageVerifyStep(deps);
    const input = step.parse({ listWindow: 0 }); // no reorder window: s3rver's disorder must not cause false reports
    const ctx = makeStepContext({ run: { id: "run-verify-diff" } });
    const outcome = await step.run(input, ctx);
    expect(outcome.figures).toMatchObject({
      sourceObjects: count,
      targetObjects: count,
      matched: count - 4,
      missing: 1,
      extra: 1,
      sizeDiffers: 1,
      contentDiffers: 1,
      metadataDiffers: 1,
    });
    expect(outcome.summary).toMatch(
      /differences: 1 missing, 1 size, 1 content, 1 metadata; 1 object only on the target: kept, and not a difference for storage.sync or storage.verify/,
    );
    expect(await step.verify(input, ctx)).toMatchObject({ ok: false });
    const report = JSON.parse(
      readFileSync(String(outcome.figures?.reportFile), "utf8"),
    ) as StorageVerifyReport;
    expect(report.listed).toEqual([
      {
        key: "a+b=c.txt",
        kind: "size",
        detail: expect.stringMatching(/^\d+ bytes on the source, 5 on the target$/),
      },
      { key: "only/on the target.txt", kind: "extra", detail: "1 B on the target only" },
      {
        key: "plain.txt",
        kind: "content",
        detail: expect.stringMatching(/^same size \(\d+ bytes\), different content$/),
      },
      {
        key: "with space/file name.txt",
        kind: "metadata",
        detail: "Cache-Control: `max-age=60` ≠ `no-store`; x-amz-meta-n: `1` ≠ `changed`",
      },
      {
        key: "中文目录/图片 一.jpg",
        kind: "missing",
        detail: expect.stringMatching(/on the source, absent on the target$/),
      },
    ]);
    const view = storageVerifyView(report);
    expect(view.text).toBe(
      `❌ Storage differs: 4 differences between ${count} objects on the source and ${count} objects on the target`,
    );
    const text = JSON.stringify(view.blocks);
    for (const key of ["plain.txt", "only/on the target.txt", "中文目录/图片 一.jpg"])
      expect(text).toContain(key);
    expect(text).toContain("1 different headers or metadata");
    // the object only on the target is listed with the rule, not counted as a difference
    expect(text).toContain(
      "*Only on the target* 1 object: kept, and not a difference for storage.sync or storage.verify",
    );
  });
});
