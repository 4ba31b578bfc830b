import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStorageSyncStep } from "../../../src/jobs/steps/storage/sync.js";
import { createStorageVerifyStep } from "../../../src/jobs/steps/storage/verify.js";
import { formatBytes } from "../../../src/text/units.js";
import { makeStepContext as stepContext } from "../../helpers/step-context.js";
import {
  bucketName,
  createBucket,
  readAll,
  type SeedObject,
  type StorageWorld,
  seed,
  startStorageWorld,
} from "./world.js";

/**
 * storage.sync repairs whatever storage.verify would flag (a metadata-only difference, a damaged
 * copy of a multipart object), copies again what `recopy` names, and both steps apply one rule
 * to an object only on the target and say it.
 */

const MiB = 1024 * 1024;
let w: StorageWorld;

beforeAll(async () => {
  w = await startStorageWorld();
});
afterAll(async () => {
  await w?.stop();
});

function body(label: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++)
    b[i] = (i * 31 + label.length * 7 + label.charCodeAt(i % label.length)) & 255;
  return b;
}

async function setUp(objects: SeedObject[]) {
  const sourceBucket = bucketName("src");
  const targetBucket = bucketName("dst");
  await createBucket(w.r2.endpoint, sourceBucket);
  await createBucket(w.aws.endpoint, targetBucket, { region: "ap-southeast-1" });
  const source = w.sourceStore(sourceBucket);
  const target = w.targetStore(targetBucket);
  await seed(source, objects);
  const deps = w.deps({ sourceBucket, targetBucket });
  return { source, target, sync: createStorageSyncStep(deps), verify: createStorageVerifyStep(deps) };
}

const OBJECTS: SeedObject[] = [
  { key: "docs/a.txt", body: Buffer.from("alpha\n"), meta: { contentType: "text/plain" } },
  {
    key: "docs/b.txt",
    body: Buffer.from("bravo\n"),
    meta: { contentType: "text/plain", metadata: { owner: "x" } },
  },
  { key: "video/big.mp4", body: body("big", 11 * MiB), meta: { contentType: "video/mp4" } },
];

async function verifyOk(verify: ReturnType<typeof createStorageVerifyStep>) {
  const input = verify.parse({});
  const ctx = stepContext();
  await verify.run(input, ctx);
  return verify.verify(input, ctx);
}

describe("storage.sync repairs what storage.verify would flag", () => {
  it("copies again an object whose headers or user metadata differ, though its bytes are equal", async () => {
    const { source, target, sync, verify } = await setUp(OBJECTS);
    const input = sync.parse({ multipartThresholdMb: 6, partSizeMb: 5 });
    await sync.run(input, stepContext());
    // the same bytes on the target, with another Content-Type; and on the source, new user metadata
    await target.put("docs/a.txt", Buffer.from("alpha\n"), 6, {
      contentType: "application/octet-stream",
      metadata: {},
    });
    await source.put("docs/b.txt", Buffer.from("bravo\n"), 6, {
      contentType: "text/plain",
      metadata: { owner: "y" },
    });
    expect((await verifyOk(verify)).ok).toBe(false);

    const dry = await sync.plan(input, stepContext({ run: { dryRun: true } }));
    expect(dry.summary).toMatch(/^would copy 2 of 3 objects/);
    const r = await sync.run(input, stepContext());
    expect(r.figures).toMatchObject({ copied: 2, repaired: 2, identical: 1 });
    expect(r.summary).toContain(
      "2 objects copied again that looked identical but differed as storage.verify compares",
    );
    expect((await target.head("docs/a.txt"))!.contentType).toBe("text/plain");
    expect((await target.head("docs/b.txt"))!.metadata).toEqual({ owner: "y" });
    expect(await sync.verify(input, stepContext())).toMatchObject({ ok: true });
    expect((await verifyOk(verify)).ok).toBe(true);
  });

  it("copies again a damaged copy of a multipart object, though the target's copy is newer", async () => {
    const { source, target, sync, verify } = await setUp(OBJECTS);
    const input = sync.parse({ multipartThresholdMb: 6, partSizeMb: 5 });
    await sync.run(input, stepContext());
    // one byte changed, same size, written later, in parts: the listings cannot tell
    const damaged = Buffer.from(await readAll(source, "video/big.mp4"));
    damaged[5 * MiB + 17] = (damaged[5 * MiB + 17]! + 1) & 255;
    await target.upload(
      "video/big.mp4",
      Readable.from(damaged),
      { contentType: "video/mp4", metadata: {} },
      { partSize: 5 * MiB, queueSize: 2 },
    );
    expect((await verifyOk(verify)).ok).toBe(false);

    const r = await sync.run(input, stepContext());
    expect(r.figures).toMatchObject({ copied: 1, repaired: 1 });
    const [a, b] = await Promise.all([readAll(source, "video/big.mp4"), readAll(target, "video/big.mp4")]);
    expect(b.equals(a)).toBe(true);
    expect((await verifyOk(verify)).ok).toBe(true);
  });

  it("copies again the keys and prefixes `recopy` names, whatever the comparison says", async () => {
    const { target, sync } = await setUp(OBJECTS);
    await sync.run(sync.parse({ multipartThresholdMb: 6, partSizeMb: 5 }), stepContext());
    const before = (await target.head("docs/a.txt"))!.lastModified;
    const input = sync.parse({ multipartThresholdMb: 6, partSizeMb: 5, recopy: ["docs/a.txt", "video/"] });
    const dry = await sync.plan(input, stepContext({ run: { dryRun: true } }));
    expect(dry.summary).toMatch(/^would copy 2 of 3 objects/);
    const r = await sync.run(input, stepContext());
    expect(r.figures).toMatchObject({ copied: 2, forced: 2, identical: 1 });
    expect(r.summary).toContain("2 objects copied again as `recopy` asks");
    expect((await target.head("docs/a.txt"))!.lastModified).toBeGreaterThanOrEqual(before);
    expect(() => sync.parse({ recopy: [""] })).toThrow(/recopy/);
  });

  it("applies one rule to an object only on the target, and both outputs state it", async () => {
    const { target, sync, verify } = await setUp(OBJECTS.slice(0, 2));
    const input = sync.parse({});
    const first = await sync.run(input, stepContext());
    // one object: said in the singular, and a rate rounded to whole bytes
    await target.put("stray.txt", Buffer.from("x"), 1, { metadata: {} });
    expect(first.summary).toMatch(/^copied 2 objects \(12 B\) in \d+ m?s \((\d+ B|[\d.]+ KB)\/s\)/);
    const r = await sync.run(input, stepContext());
    const rule =
      "1 object only on the target: kept, and not a difference for storage.sync or storage.verify; only storage.sync with --delete removes them";
    expect(r.summary).toContain(rule);
    const synced = await sync.verify(input, stepContext());
    expect(synced.ok).toBe(true);
    expect(synced.summary).toContain(rule);
    const vctx = stepContext();
    const vinput = verify.parse({});
    const v = await verify.run(vinput, vctx);
    expect(v.summary).toContain(rule);
    expect((await verify.verify(vinput, vctx)).ok).toBe(true);
  });

  it("says 1 object, not 1 objects, and rounds bytes per second", () => {
    expect(formatBytes(7.289265316916815)).toBe("7 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
  });
});
