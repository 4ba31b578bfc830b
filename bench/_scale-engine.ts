/**
 * The scale bench's engine half, in a process of its own started with `--expose-gc`: the product's
 * sync engine (`syncBuckets`, as storage.sync runs it) over in-process buckets of generated keys
 * (src/sandbox/memory-bucket.ts), which hold nothing per object, so the live heap measured is the
 * engine's. argv[2]: JSON {scenario, objects, …}. Prints one JSON line.
 *
 * Scenarios:
 *   no-change  both sides hold the same objects; the stall watchdog (src/jobs/watchdog.ts) watches
 *              the progress with a tight limit, as the runner does with `engine.stallSeconds`
 *   copy       the target lacks every object; `failAt` makes one write fail for good, and a rerun
 *              from the checkpoint follows, which must copy only that object
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { CutoverError, ErrorCode } from "../src/errors.js";
import type { Progress } from "../src/jobs/define-step.js";
import { EtagMemo } from "../src/jobs/steps/storage/etag-memo.js";
import { type SyncResult, type SyncSettings, syncBuckets } from "../src/jobs/steps/storage/sync-engine.js";
import { StepWatchdog } from "../src/jobs/watchdog.js";
import { GeneratedBucket } from "../src/sandbox/memory-bucket.js";

const job = JSON.parse(process.argv[2] ?? "{}") as {
  scenario: "no-change" | "copy";
  objects: number;
  stallSeconds?: number;
  failAt?: number;
  concurrency?: number;
};
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

// The live heap: what is left after a full collection, sampled while the sync runs.
let liveHeapPeak = 0;
let rssPeak = 0;
const sample = () => {
  gc();
  const m = process.memoryUsage();
  liveHeapPeak = Math.max(liveHeapPeak, m.heapUsed);
  rssPeak = Math.max(rssPeak, m.rss);
};
const sampler = setInterval(sample, 1_000);
sampler.unref();

const log = pino({ level: "silent" });
const dir = await mkdtemp(path.join(tmpdir(), "cutover-scale-engine-"));
const settings: SyncSettings = {
  prefix: "",
  concurrency: job.concurrency ?? 16,
  multipartThreshold: 64 * 1024 * 1024,
  partSize: 8 * 1024 * 1024,
  queueSize: 4,
  multipartMemory: 96 * 1024 * 1024,
  retries: 0,
  retryBaseMs: 1,
  window: 2_000,
  pageSize: 1_000,
  queueLength: 256,
  deleteExtra: false,
  contentMd5: true,
  compare: "listing",
};
const checkpoints = new Map<string, unknown>();
const checkpoint = {
  async get<T>(key: string) {
    return checkpoints.get(key) as T | undefined;
  },
  async set(key: string, value: unknown) {
    checkpoints.set(key, structuredClone(value));
  },
};

async function run(
  source: GeneratedBucket,
  target: GeneratedBucket,
  watchdog?: StepWatchdog,
): Promise<{
  result?: SyncResult;
  error?: CutoverError;
  seconds: number;
  cpuSeconds: number;
  last?: Progress;
}> {
  let last: Progress | undefined;
  const controller = new AbortController();
  const signal = watchdog ? watchdog.beginAttempt(controller.signal) : controller.signal;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const work = syncBuckets(source, target, settings, {
    signal,
    log,
    progress: (p) => {
      last = p;
      watchdog?.progress(p);
    },
    checkpoint,
    memo: await EtagMemo.load(dir, "scale"),
  });
  try {
    const result = await (watchdog ? watchdog.guard(work) : work);
    return { result, ...timing(), ...(last ? { last } : {}) };
  } catch (err) {
    if (!(err instanceof CutoverError) || err.code !== ErrorCode.StepFailed) throw err;
    return { error: err, ...timing(), ...(last ? { last } : {}) };
  }
  function timing() {
    const c = process.cpuUsage(cpu0);
    return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (c.user + c.system) / 1e6 };
  }
}

sample();
const baseline = liveHeapPeak;
let out: Record<string, unknown>;
if (job.scenario === "no-change") {
  const source = new GeneratedBucket("source", "src", { count: job.objects });
  const target = new GeneratedBucket("target", "dst", { count: job.objects });
  const watchdog = new StepWatchdog({ limitSeconds: undefined, stallSeconds: job.stallSeconds ?? 5 });
  const r = await run(source, target, watchdog).catch((err: unknown) => ({ thrown: err }));
  watchdog.stop();
  if ("thrown" in r) {
    out = {
      stoppedByWatchdog: watchdog.tripped !== undefined,
      error: watchdog.describe("storage.sync", String(r.thrown)),
    };
  } else {
    out = {
      stoppedByWatchdog: false,
      identical: r.result?.identical,
      seconds: r.seconds,
      cpuSeconds: r.cpuSeconds,
      lastProgress: r.last?.message,
    };
  }
} else {
  const failAt = job.failAt;
  let failing = failAt !== undefined;
  const source = new GeneratedBucket("source", "src", { count: job.objects });
  const target = new GeneratedBucket(
    "target",
    "dst",
    { count: job.objects, absent: () => true, keepWrites: true },
    {
      beforeWrite: (key) => {
        if (failing && key === GeneratedBucket.keyOf(failAt!))
          throw new CutoverError(ErrorCode.StepFailed, "AccessDenied (the bench's one permanent failure)");
      },
    },
  );
  const first = await run(source, target);
  const firstHeap = liveHeapPeak;
  const written = target.written;
  const listed = source.requestCounts().ListObjectsV2 ?? 0;
  failing = false;
  const rerun = failAt !== undefined ? await run(source, target) : undefined;
  out = {
    copied: first.result?.copied ?? written,
    failed: first.error ? (first.error.details.failed as number) : 0,
    failureMessage: first.error?.message,
    heldPeak: first.result?.heldPeak ?? first.error?.details.heldPeak,
    seconds: first.seconds,
    cpuSeconds: first.cpuSeconds,
    firstRunLiveHeapPeakMB: Math.round((firstHeap / 1048576) * 10) / 10,
    ...(rerun
      ? {
          rerun: {
            copied: rerun.result?.copied,
            resumedAfter: rerun.result?.resumedAfter,
            sourceListRequests: (rerun.result?.requests.source.ListObjectsV2 ?? 0) - listed,
            seconds: rerun.seconds,
          },
        }
      : {}),
  };
}
sample();
await rm(dir, { recursive: true, force: true });
process.stdout.write(
  `${JSON.stringify({
    ...out,
    objects: job.objects,
    liveHeapPeakMB: Math.round((liveHeapPeak / 1048576) * 10) / 10,
    liveHeapAtStartMB: Math.round((baseline / 1048576) * 10) / 10,
    rssPeakMB: Math.round((rssPeak / 1048576) * 10) / 10,
  })}\n`,
);
