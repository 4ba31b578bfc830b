import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ListPage, ObjectStore } from "../../../src/cloud/object-store.js";
import { CutoverError, ErrorCode } from "../../../src/errors.js";
import type { CheckpointStore, Progress } from "../../../src/jobs/define-step.js";
import { EtagMemo } from "../../../src/jobs/steps/storage/etag-memo.js";
import { estimateSync, type SyncSettings, syncBuckets } from "../../../src/jobs/steps/storage/sync-engine.js";
import { MemoryBucket, type MemoryBucketHooks } from "../../../src/sandbox/memory-bucket.js";
import { waitUntil } from "../../helpers/wait.js";

/**
 * The sync engine driven by in-process buckets (src/sandbox/memory-bucket.ts), where a test can
 * hold a listing page until the engine has shown something, or fail one write for good. The steps
 * over real S3 stand-ins are tested in sync.test.ts, resume.test.ts and repair.test.ts.
 */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "cutover-engine-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const log = pino({ level: "silent" });

function settings(over: Partial<SyncSettings> = {}): SyncSettings {
  return {
    prefix: "",
    concurrency: 8,
    multipartThreshold: 64 * 1024 * 1024,
    partSize: 8 * 1024 * 1024,
    queueSize: 2,
    multipartMemory: 64 * 1024 * 1024,
    retries: 1,
    retryBaseMs: 1,
    window: 100,
    pageSize: 100,
    queueLength: 64,
    deleteExtra: false,
    contentMd5: true,
    compare: "listing",
    ...over,
  };
}

function memoryCheckpoints(
  map = new Map<string, unknown>(),
): CheckpointStore & { map: Map<string, unknown> } {
  return {
    map,
    async get<T>(key: string) {
      return map.has(key) ? (structuredClone(map.get(key)) as T) : undefined;
    },
    async set(key, value) {
      map.set(key, structuredClone(value));
    },
  };
}

const keyOf = (i: number) => `media/${String(i).padStart(5, "0")}.jpg`;

/** n objects on the source; `onTarget` of them already on the target, identical */
function buckets(
  n: number,
  opts: { onTarget?: (i: number) => boolean; source?: MemoryBucketHooks; target?: MemoryBucketHooks } = {},
) {
  const source = new MemoryBucket("source", "src", opts.source);
  const target = new MemoryBucket("target", "dst", opts.target);
  for (let i = 0; i < n; i++) {
    source.write(keyOf(i), `body of ${i}`, {}, 1_000);
    if (opts.onTarget?.(i)) target.write(keyOf(i), `body of ${i}`, {}, 2_000);
  }
  return { source, target };
}

async function hooks(progress: (p: Progress) => void, checkpoint = memoryCheckpoints()) {
  return {
    signal: new AbortController().signal,
    log,
    progress,
    checkpoint,
    memo: await EtagMemo.load(dir, `m${Math.random().toString(16).slice(2)}`),
    progressEveryMs: 10,
    checkpointEveryMs: 10,
  };
}

describe("the sync engine at scale", () => {
  it("shows progress for every object it examines when there is nothing to copy (the stall watchdog sees it move)", async () => {
    const n = 3_000;
    let last: Progress | undefined;
    // Each listing page waits until the progress shows the objects two pages back examined: a sync
    // whose progress counted only copies would never get its third page.
    const { source, target } = buckets(n, {
      onTarget: () => true,
      source: {
        beforeList: ({ served }) =>
          waitUntil(
            `progress past ${(served - 2) * 100} objects`,
            () => served < 2 || (last?.activity ?? 0) >= (served - 2) * 100,
            { timeoutMs: 5_000, intervalMs: 5 },
          ),
      },
    });
    const r = await syncBuckets(source, target, settings(), await hooks((p) => (last = p)));
    expect(r).toMatchObject({ copied: 0, identical: n });
    expect(last).toMatchObject({ done: n, total: n, unit: "objects" });
    expect(last?.message).toContain(
      `${n.toLocaleString("en-US")} of ${n.toLocaleString("en-US")} objects checked`,
    );
  });

  it("shows progress for every object storage.sync's verify pass examines", async () => {
    const n = 3_000;
    let seen = 0;
    const { source, target } = buckets(n, {
      onTarget: () => true,
      source: {
        beforeList: ({ served }) =>
          waitUntil(
            `the pass to report ${(served - 2) * 100} examined`,
            () => served < 2 || seen >= (served - 2) * 100,
            {
              timeoutMs: 5_000,
              intervalMs: 5,
            },
          ),
      },
    });
    const e = await estimateSync(source, target, settings(), {
      onExamined: (examined) => {
        seen = examined;
      },
      progressEveryMs: 10,
    });
    expect(e).toMatchObject({ toCopy: 0, identical: n, sourceObjects: n });
    expect(seen).toBe(n);
  });

  it("looks stragglers up as they come in a dry run, not after the whole listing", async () => {
    // each page: 99 keys in order and one that sorts before all of them (a straggler, window 0)
    const pages = 20;
    const order: string[] = [];
    for (let p = 0; p < pages; p++) {
      for (let j = 0; j < 99; j++) order.push(`b/${String(p * 99 + j).padStart(5, "0")}`);
      order.push(`a/${String(p).padStart(5, "0")}`);
    }
    let heads = 0;
    const source = new MemoryBucket("source", "src");
    const target = new MemoryBucket("target", "dst", {
      beforeHead: () => {
        heads++;
      },
    });
    for (const k of order) {
      source.write(k, k, {}, 1_000);
      target.write(k, k, {}, 2_000);
    }
    // the source lists in `order`, page by page; its last page waits for lookups of earlier stragglers
    const disordered: ObjectStore = Object.assign(Object.create(source) as ObjectStore, {
      async listPage(o: { token?: string }): Promise<ListPage> {
        const from = o.token ? Number(o.token) : 0;
        if (from + 100 >= order.length)
          await waitUntil("stragglers looked up while the listing goes on", () => heads >= 10, {
            timeoutMs: 5_000,
            intervalMs: 5,
          });
        const objects = order
          .slice(from, from + 100)
          .map((key) => ({ key, size: key.length, etag: "", lastModified: 1_000 }));
        // the same ETags as the target: identical
        for (const obj of objects) obj.etag = (await source.head(obj.key))!.etag;
        return { objects, ...(from + 100 < order.length ? { nextToken: String(from + 100) } : {}) };
      },
    });
    heads = 0;
    const e = await estimateSync(disordered, target, settings({ window: 0 }), { concurrency: 4 });
    expect(e).toMatchObject({ toCopy: 0, identical: order.length, sourceObjects: order.length });
    expect(heads).toBe(pages);
  });

  it("records a permanent copy failure, goes on, moves the resume point past it, and the rerun copies only that object", async () => {
    const n = 2_000;
    const bad = keyOf(150);
    let failing = true;
    const { source, target } = buckets(n, {
      target: {
        beforeWrite: (key) => {
          if (failing && key === bad)
            throw new CutoverError(ErrorCode.StepFailed, "AccessDenied on this key");
        },
      },
    });
    const checkpoint = memoryCheckpoints();
    let last: Progress | undefined;
    const err = await syncBuckets(
      source,
      target,
      settings(),
      await hooks((p) => (last = p), checkpoint),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CutoverError);
    expect((err as CutoverError).message).toBe(
      `1 object could not be copied: \`${bad}\` (AccessDenied on this key); the other 1,999 were copied or already identical`,
    );
    expect(last?.message).toContain("1 failed");
    expect(target.keys()).toHaveLength(n - 1);
    // the resume point is past the failed key (the last key), which is kept to be tried first
    expect(checkpoint.map.get("sync")).toMatchObject({ after: keyOf(n - 1), failed: [bad], copied: n - 1 });

    // nothing is held per object after the failed one: at most the queue and the workers' objects
    const heldPeak = (err as CutoverError).details.heldPeak as number;
    expect(heldPeak).toBeGreaterThan(0);
    expect(heldPeak).toBeLessThanOrEqual(64 + 8 + 2);

    failing = false;
    const listedBefore = source.requestCounts().ListObjectsV2 ?? 0;
    const r = await syncBuckets(source, target, settings(), await hooks(() => undefined, checkpoint));
    expect(r).toMatchObject({ copied: 1, resumedAfter: keyOf(n - 1) });
    expect(target.read(bad)?.toString()).toBe("body of 150");
    // nothing was listed again but the (empty) rest after the resume point
    expect((source.requestCounts().ListObjectsV2 ?? 0) - listedBefore).toBe(1);
    expect(checkpoint.map.get("sync")).not.toHaveProperty("failed");
  });

  it("counts what is left ahead of the copies from one more listing of the source only", async () => {
    const n = 2_000;
    const { source } = buckets(n);
    const reports: Progress[] = [];
    // a queue of 4 and a slow write: the listing waits on the copies, and the count runs ahead
    let writes = 0;
    const slowTarget = new MemoryBucket("target", "dst", {
      beforeWrite: async () => {
        if (++writes % 50 === 0) await new Promise((r) => setImmediate(r));
      },
    });
    const r = await syncBuckets(
      source,
      slowTarget,
      settings({ queueLength: 4, concurrency: 2 }),
      await hooks((p) => reports.push(p)),
    );
    expect(r.copied).toBe(n);
    expect(reports.some((p) => p.total === n && p.done < n)).toBe(true);
    // the target was listed once; the source once for the copies and once by the count
    expect(slowTarget.requestCounts().ListObjectsV2).toBe(1);
    expect(source.requestCounts().ListObjectsV2).toBeLessThanOrEqual(2 * (n / 100 + 1));
  });
});

describe("the ETag memo", () => {
  it("appends what changed at each save instead of rewriting every pair, and reads its log back", async () => {
    const memo = await EtagMemo.load(dir, "append");
    for (let i = 0; i < 1_000; i++) memo.remember(`k${i}`, `s${i}`, `t${i}`);
    await memo.save();
    const file = path.join(dir, "storage", "etag-pairs-append.jsonl");
    const before = await readFile(file, "utf8");
    memo.remember("new", "a", "b");
    memo.forget("k7");
    await memo.save();
    const after = await readFile(file, "utf8");
    // the earlier bytes stay as they were: only the two changes were written
    expect(after.startsWith(before)).toBe(true);
    expect(after.length - before.length).toBeLessThan(40);
    // a kill mid-append leaves a torn line: it is skipped, the rest is kept
    await writeFile(file, `${after}["torn","x`);
    const again = await EtagMemo.load(dir, "append");
    expect(again.size).toBe(1_000);
    expect(again.get("new")).toEqual(["a", "b"]);
    expect(again.get("k7")).toBeUndefined();
    expect(again.get("k8")).toEqual(["s8", "t8"]);
  });

  it("reads the whole-JSON file of earlier versions and replaces it by the log", async () => {
    const legacy = path.join(dir, "storage", "etag-pairs-legacy.json");
    await writeFile(legacy, JSON.stringify({ a: ["1", "2"] }));
    const memo = await EtagMemo.load(dir, "legacy");
    expect(memo.get("a")).toEqual(["1", "2"]);
    await memo.save();
    await expect(readFile(legacy)).rejects.toThrow(/ENOENT/);
    expect((await EtagMemo.load(dir, "legacy")).get("a")).toEqual(["1", "2"]);
  });
});
