import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { freePort } from "../src/sandbox/s3-servers.js";
import { cpuSeconds, measure, requireRclone } from "./storage.js";

/**
 * `npm run bench -- scale [--cli-sizes 5000,50000] [--engine-sizes 100000,1000000]
 * [--per-object-servers light,moto] [--worker-server light|moto]
 * [--fail-objects 500000] [--per-object 5000] [--skip-rclone] [--big]
 * [--workers 1,2,4] [--worker-objects 4000] [--worker-latency-ms 0,25] [--worker-latency-objects 12000] [--speedup-repeats 1]
 * [--plan-repeats 3] [--shards 8] [--sections memory,per-object,workers,engine]`
 *
 * Storage at scale, measured from outside, as users run the product:
 *  1. memory against object count through the CLI (`node bin/cutover.js run storage-sync`, its own
 *     process, a state database on the machine's PostgreSQL): moto's backend filled directly (see
 *     bench/_moto_filled.py), the target lacking 1 % of the source; the live heap (after a full
 *     collection, sampled every 2 s by bench/_heap-probe.mjs) and the peak RSS per size, and
 *     whether the live heap stays within 10 % from the smallest to the largest size;
 *  2. time per object of copy (a first copy, `compare: full` and `compare: listing`), list (a
 *     no-change pass) and verify (`cutover verify storage`), CPU of our process and of the S3
 *     stand-in, against rclone 1.60 (Debian) on the same buckets: `sync` (copy), `sync --checksum`
 *     (no change), `check` (verify); on moto and on the light stand-in (bench/_s3-stand-in.mjs),
 *     which keeps connections open as S3 does (moto closes every one);
 *     and the floor under them: the adapter's HEAD, GET and GET+PUT alone (bench/_sdk-floor.ts);
 *  4. 1, 2 and 4 workers over the same key ranges (on the light stand-in unless `--worker-server
 *     moto`) at each round trip of `--worker-latency-ms`: the stand-in answers every request that
 *     many ms after it arrived, on a timer (no CPU). At 0 ms the workers and the stand-in share this
 *     machine's 2 cores and the speed-up is CPU's (its ceiling, 2 ÷ the cores the 1-worker run kept
 *     busy, is in the JSON); at 25 ms, as R2 and S3 answer, each worker waits on its `concurrency`
 *     (16) requests in flight and more workers add requests until the cores run out, as in
 *     production. Runs at a round trip copy `--worker-latency-objects` (3 × `--worker-objects` by
 *     default: their pace per object is slower, and each must outlast its fixed costs). Shown:
 *     the cores each side kept busy, and the 10 M plan's arithmetic against rclone's; each
 *     run's copy counted on the target bucket itself (its listing after the run), beside what the
 *     step reported: copied by its last attempts, by attempts before (a range retried after a
 *     stall or a lost worker resumes from its checkpoint and counts only what it copied itself),
 *     and found already there; the plan's cost per object from 4 workers over `--worker-objects`
 *     (N) and over 3N objects at the lowest round trip: (cpu(3N) − cpu(N)) ÷ 2N, the rest of the N
 *     run's CPU a fixed cost (a second replica's start, pg-boss polling while the run lasts, the
 *     split's listing), each size's median CPU over `--plan-repeats` alternate pairs (one pair on a
 *     loaded machine moves it); and the plan's round trip: at the lowest round trip above zero,
 *     1 worker over n and over n/3 objects, (n − n/3) ÷ (t(n) − t(n/3)) objects a second per
 *     worker at the step's concurrency past its fixed costs, and the concurrency 4 workers need
 *     for 10 M objects within 1 h (2,778 a second) at that round trip, with the cores a worker
 *     would then need; each run also shows what the whole machine was busy with (/proc/stat), as
 *     other work on it takes cores from the runs;
 *  3. the engine (storage.sync's `syncBuckets`) over in-process buckets up to 10 million keys a
 *     side (bench/_scale-engine.ts): the live heap per size of a no-change pass under a stall
 *     watchdog of 5 s, and a copy of `--fail-objects` objects with one failing for good, then the
 *     rerun from its checkpoint.
 * `--big` adds 500,000 objects through the CLI and 10,000,000 through the engine (about 30 minutes
 * on two cores). Prints one JSON object on stdout; progress goes to stderr.
 */

const say = (msg: string) => process.stderr.write(`[bench scale] ${msg}\n`);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..");
const node = path.join(root, "node_modules", ".bin", "node");
const r1 = (v: number) => Math.round(v * 10) / 10;
const r3 = (v: number) => Math.round(v * 1000) / 1000;
/** The middle value of `values`, or the mean of the middle two; undefined for none. */
function median(values: number[]): number | undefined {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}
const REGION = "ap-southeast-1";
/**
 * requests in flight per worker: storage.sync's default `concurrency`, given to every worker run
 * so the round-trip arithmetic holds whatever the default becomes
 */
const STEP_CONCURRENCY = 16;
const AWS = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

interface BucketSpec {
  name: string;
  region?: string;
  count: number;
  skipEvery?: number;
}

/**
 * An S3 stand-in with its buckets filled, stopped by closing its stdin: moto (its backend filled
 * directly, bench/_moto_filled.py), or the light one (bench/_s3-stand-in.mjs: the same protocol
 * from memory with keep-alive, a fraction of moto's CPU per request, so the client's own cost
 * and its speed-up across workers show)
 */
type ServerKind = "moto" | "light";
async function filledServer(
  buckets: BucketSpec[],
  kind: ServerKind = "moto",
  /** the light stand-in answers every request this many ms after it arrived (a round trip) */
  latencyMs = 0,
): Promise<{ endpoint: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess =
    kind === "moto"
      ? spawn("python3", [path.join(here, "_moto_filled.py"), JSON.stringify({ port, buckets })], {
          stdio: ["pipe", "pipe", "pipe"],
        })
      : spawn(node, [path.join(here, "_s3-stand-in.mjs"), JSON.stringify({ port, buckets, latencyMs })], {
          stdio: ["pipe", "pipe", "pipe"],
        });
  let err = "";
  child.stderr?.on("data", (d) => {
    err += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      if (d.toString().startsWith("ready")) resolve();
    });
    child.on("exit", (code) =>
      reject(new Error(`the ${kind} stand-in exited with ${code}: ${err.slice(-2000)}`)),
    );
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.stdin?.end();
        setTimeout(() => child.kill("SIGKILL"), 5_000).unref();
      }),
  };
}
const filledMoto = (buckets: BucketSpec[]) => filledServer(buckets, "moto");

function migrationYaml(
  endpoint: string,
  source: string,
  target: string,
  withSync: Record<string, unknown>,
  shardWorkers = 2,
  /**
   * 20 s: a no-change pass must show progress (the watchdog's test); the worker runs take the
   * default, 600 s, as users run it: a range whose worker stops is handed over by pg-boss only after
   * its heartbeat (10 s) and its supervisor's next pass (every 10 s, src/ports.ts), and a limit
   * shorter than those stops the whole step meanwhile and resumes every range in a second attempt
   */
  stallSeconds = 20,
): string {
  return `
version: 1
project: bench
slack: { channel: C0123456789 }
access: { operators: [U0123456789], approvers: [U0987654321], channels: [C0123456789] }
engine: { stallSeconds: ${stallSeconds}, shardWorkers: ${shardWorkers} }
source:
  storage: { endpoint: "${endpoint}", bucket: ${source}, accessKeyIdEnv: R2_ACCESS_KEY_ID, secretAccessKeyEnv: R2_SECRET_ACCESS_KEY }
target:
  aws: { region: ${REGION} }
  s3: { bucket: ${target}, region: ${REGION} }
runbook:
  phases:
    - id: storage
      title: Storage
      steps:
        - { id: storage-sync, uses: storage.sync, with: ${JSON.stringify(withSync)} }
        - { id: storage-verify, uses: storage.verify }
`;
}

interface CliRun {
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  liveHeapPeakMB: number;
  serverCpuSeconds: number;
  exitCode: number;
  output: string;
}

/**
 * `node bin/cutover.js <args>` against one pair of buckets, with the heap probe loaded where the
 * memory is measured (`probe`): its full collection every 2 s costs CPU in proportion to the wall
 * time, which a loaded machine stretches, so runs that measure CPU per object go without it
 */
async function cutoverCli(
  ctx: { work: string; databaseUrl: string; moto: { endpoint: string; pid: number } },
  pair: {
    source: string;
    target: string;
    with?: Record<string, unknown>;
    shardWorkers?: number;
    stallSeconds?: number;
  },
  args: string[],
  probe = true,
): Promise<CliRun> {
  const config = path.join(ctx.work, `migration-${pair.source}-${pair.target}.yml`);
  await writeFile(
    config,
    migrationYaml(
      ctx.moto.endpoint,
      pair.source,
      pair.target,
      pair.with ?? {},
      pair.shardWorkers,
      pair.stallSeconds,
    ),
  );
  const heapFile = path.join(ctx.work, `heap-${Date.now()}.json`);
  const env = cliEnv(ctx, config);
  const before = await cpuSeconds(ctx.moto.pid);
  const m = await measure(
    node,
    [
      ...(probe ? ["--expose-gc", "--import", path.join(here, "_heap-probe.mjs")] : []),
      path.join(root, "bin", "cutover.js"),
      ...args,
    ],
    probe ? { ...env, CUTOVER_BENCH_HEAP_FILE: heapFile } : env,
  );
  const server = (await cpuSeconds(ctx.moto.pid)) - before;
  const heap = probe
    ? (JSON.parse(await readFile(heapFile, "utf8")) as { liveHeap: number; rss: number })
    : undefined;
  return {
    seconds: m.seconds,
    cpuSeconds: m.cpuSeconds,
    peakRssMB: m.peakRssMB,
    liveHeapPeakMB: heap ? r1(heap.liveHeap / 1048576) : Number.NaN,
    serverCpuSeconds: server,
    exitCode: 0,
    output: m.stdout,
  };
}

/** what the CLI (and a worker replica) runs with */
function cliEnv(ctx: { work: string; databaseUrl: string; moto: { endpoint: string } }, config: string) {
  return {
    PATH: process.env.PATH ?? "",
    DATABASE_URL: ctx.databaseUrl,
    CUTOVER_CONFIG: config,
    CUTOVER_DATA_DIR: path.join(ctx.work, "data"),
    R2_ACCESS_KEY_ID: "bench",
    R2_SECRET_ACCESS_KEY: "bench-secret",
    AWS_ENDPOINT_URL: ctx.moto.endpoint,
    AWS_ACCESS_KEY_ID: AWS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: AWS.secretAccessKey,
  };
}

/** a second replica, as far as step parts go (src/sandbox/shard-worker.ts), with `workers` at once */
async function replica(
  ctx: { work: string; databaseUrl: string; moto: { endpoint: string } },
  config: string,
  workers: number,
): Promise<{ pid: number; stop(): Promise<void> }> {
  const env = cliEnv(ctx, config);
  const job = {
    yaml: await readFile(config, "utf8"),
    env,
    dataDir: env.CUTOVER_DATA_DIR,
    databaseUrl: ctx.databaseUrl,
    workers,
  };
  const child = spawn(
    node,
    // the compiled replica on plain node, as a deployed one runs (bench/run.ts builds dist/ first)
    [path.join(root, "dist", "sandbox", "shard-worker.js"), JSON.stringify(job)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`the worker replica exited with ${code}`)));
  });
  return {
    pid: child.pid ?? 0,
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners("exit");
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
      }),
  };
}

/** rclone 1.60 (Debian) on the same moto, both sides; no AWS_CA_BUNDLE (it would load it for http too) */
async function rclone(
  ctx: { work: string; moto: { endpoint: string; pid: number } },
  args: string[],
): Promise<{ seconds: number; cpuSeconds: number; serverCpuSeconds: number; peakRssMB: number }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "",
    HOME: ctx.work,
    RCLONE_CONFIG: path.join(ctx.work, "rclone.conf"),
    RCLONE_CONFIG_M_TYPE: "s3",
    RCLONE_CONFIG_M_PROVIDER: "Other",
    RCLONE_CONFIG_M_ENDPOINT: ctx.moto.endpoint,
    RCLONE_CONFIG_M_REGION: REGION,
    RCLONE_CONFIG_M_ACCESS_KEY_ID: AWS.accessKeyId,
    RCLONE_CONFIG_M_SECRET_ACCESS_KEY: AWS.secretAccessKey,
    RCLONE_CONFIG_M_FORCE_PATH_STYLE: "true",
  };
  const before = await cpuSeconds(ctx.moto.pid);
  const m = await measure(
    "rclone",
    [
      ...args,
      "--transfers",
      "16",
      "--checkers",
      "16",
      "--fast-list",
      // ListObjectsV2, as ours: the same listing from the same server
      "--s3-list-version",
      "2",
      "--s3-no-check-bucket",
      "--stats",
      "0",
      "-q",
    ],
    env,
  );
  return {
    seconds: m.seconds,
    cpuSeconds: m.cpuSeconds,
    serverCpuSeconds: (await cpuSeconds(ctx.moto.pid)) - before,
    peakRssMB: m.peakRssMB,
  };
}

async function engine(job: Record<string, unknown>): Promise<Record<string, unknown>> {
  const m = await measure(
    node,
    ["--expose-gc", "--import", "tsx", path.join(here, "_scale-engine.ts"), JSON.stringify(job)],
    { ...process.env },
  );
  return {
    ...(JSON.parse(m.stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, unknown>),
    peakRssMB: m.peakRssMB,
  };
}

/**
 * What the step's summary says it copied: by the last attempt of each range, by the attempts
 * before (a range retried resumes from its checkpoint), and what it found already there (copied by
 * an attempt after its last checkpoint).
 */
function reportedCopies(output: string): { copied: number; copiedBefore: number; identical: number } {
  const figure = (re: RegExp) => Number(re.exec(output)?.[1]?.replace(/,/g, "") ?? 0);
  return {
    copied: figure(/copied ([\d,]+) object/),
    copiedBefore: figure(/([\d,]+) copied by the interrupted attempt before/),
    identical: figure(/([\d,]+) already identical/),
  };
}

/** CPU seconds every process on the machine has used since boot: /proc/stat less idle and iowait */
async function machineCpuSeconds(): Promise<number> {
  const f = ((await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "").trim().split(/\s+/).map(Number);
  // cpu user nice system idle iowait irq softirq steal, in USER_HZ (100 on Linux)
  return ((f[1] ?? 0) + (f[2] ?? 0) + (f[3] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0) + (f[8] ?? 0)) / 100;
}

/** The objects in a bucket of the stand-in (path-style ListObjectsV2, page by page). */
async function countObjects(endpoint: string, bucket: string): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const q = new URLSearchParams({ "list-type": "2", "max-keys": "1000" });
    if (token) q.set("continuation-token", token);
    const res = await fetch(`${endpoint}/${bucket}?${q}`);
    const xml = await res.text();
    if (!res.ok) throw new Error(`listing ${bucket}: ${res.status} ${xml.slice(0, 200)}`);
    n += xml.match(/<Key>/g)?.length ?? 0;
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
      ? /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1]
      : undefined;
  } while (token);
  return n;
}

const sizes = (s: string) =>
  s
    .split(",")
    .map((v) => Number(v.trim()))
    .filter((n) => n > 0);

/** max/min − 1 of a series, and whether it is within 10 % */
function flatness(values: number[]): { spread: number; within10Percent: boolean } {
  const spread = Math.max(...values) / Math.min(...values) - 1;
  return { spread: r3(spread), within10Percent: spread <= 0.1 };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      "cli-sizes": { type: "string" },
      "engine-sizes": { type: "string" },
      "fail-objects": { type: "string", default: "500000" },
      "per-object": { type: "string", default: "5000" },
      "per-object-servers": { type: "string", default: "light,moto" },
      "worker-server": { type: "string", default: "light" },
      "skip-rclone": { type: "boolean", default: false },
      big: { type: "boolean", default: false },
      workers: { type: "string", default: "1,2,4" },
      "worker-objects": { type: "string", default: "4000" },
      "worker-latency-ms": { type: "string", default: "0,25" },
      "worker-latency-objects": { type: "string" },
      "speedup-repeats": { type: "string", default: "1" },
      "plan-repeats": { type: "string", default: "3" },
      shards: { type: "string", default: "8" },
      sections: { type: "string", default: "memory,per-object,workers,engine" },
    },
  });
  const sections = new Set(values.sections.split(",").map((v) => v.trim()));
  for (const name of sections)
    if (!["memory", "per-object", "workers", "engine"].includes(name))
      throw new Error(
        `--sections: "${name}" is not one; give some of memory, per-object, workers, engine (comma-separated)`,
      );
  // the plan's N and 3N runs of 4 workers, alternately, each into buckets of its own: the plan
  // takes the median of each size's CPU (one pair on a loaded machine moved the cost per object by ±50 %)
  const planRepeats = Number(values["plan-repeats"]);
  if (!Number.isInteger(planRepeats) || planRepeats < 1)
    throw new Error(
      `--plan-repeats: "${values["plan-repeats"]}" is not a whole number of 1 or more; give how many N and 3N pairs to run (3 by default)`,
    );
  // the workers' round trips, each on a stand-in of its own: 0 (CPU-bound here) and one as R2's and S3's
  const workerLatencies = [
    ...new Set(
      values["worker-latency-ms"]
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "")
        .map(Number),
    ),
  ].sort((a, b) => a - b);
  if (workerLatencies.length === 0 || workerLatencies.some((v) => !Number.isInteger(v) || v < 0))
    throw new Error(
      `--worker-latency-ms: "${values["worker-latency-ms"]}" is not a list of whole ms of 0 or more; give the round trips to run the workers at, comma-separated ("0,25" by default)`,
    );
  if (sections.has("workers") && values["worker-server"] === "moto" && workerLatencies.some((v) => v > 0))
    throw new Error(
      `--worker-latency-ms: moto answers at its own pace, with no round trip added; give --worker-latency-ms 0 with --worker-server moto`,
    );
  // the 1-, 2- and 4-worker runs, alternately, this many times at each round trip: each speed-up is
  // the median of the repeats' (one pair on a loaded machine moved it from 1.29× to 1.86×)
  const speedupRepeats = Number(values["speedup-repeats"]);
  if (!Number.isInteger(speedupRepeats) || speedupRepeats < 1)
    throw new Error(
      `--speedup-repeats: "${values["speedup-repeats"]}" is not a whole number of 1 or more; give how many times to run the 1, 2 and 4 workers in turn (1 by default)`,
    );
  if (sections.has("per-object")) requireRclone(values["skip-rclone"]);
  const latencyObjects = values["worker-latency-objects"];
  if (
    latencyObjects !== undefined &&
    !(Number.isInteger(Number(latencyObjects)) && Number(latencyObjects) > 0)
  )
    throw new Error(
      `--worker-latency-objects: "${latencyObjects}" is not a whole number above 0; give how many objects the runs at a round trip copy (3 × --worker-objects by default)`,
    );
  const cliSizes = sizes(values["cli-sizes"] ?? (values.big ? "5000,50000,500000" : "5000,50000"));
  const engineSizes = sizes(
    values["engine-sizes"] ?? (values.big ? "100000,1000000,10000000" : "100000,1000000"),
  );
  const perObject = Number(values["per-object"]);
  const work = await mkdtemp(path.join(tmpdir(), "cutover-bench-scale-"));
  const dbName = `cutover_bench_scale_${process.pid}`;
  const admin = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/postgres" });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const databaseUrl = `postgres://postgres@127.0.0.1:5432/${dbName}`;
  try {
    // 1. memory against object count, through the CLI
    const memory: Array<Record<string, unknown>> = [];
    for (const n of sections.has("memory") ? cliSizes : []) {
      say(`filling moto with ${n.toLocaleString("en-US")} objects a side…`);
      const moto = await filledMoto([
        { name: "src", count: n },
        { name: "dst", region: REGION, count: n, skipEvery: 100 },
      ]);
      try {
        const ctx = { work, databaseUrl, moto };
        const pair = { source: "src", target: "dst", with: { compare: "listing" } };
        say(`cutover run storage-sync over ${n.toLocaleString("en-US")} objects (1 % to copy)…`);
        const first = await cutoverCli(ctx, pair, ["run", "storage-sync"]);
        say(`  ${r1(first.seconds)} s, live heap ${first.liveHeapPeakMB} MB, RSS ${first.peakRssMB} MB`);
        memory.push({
          objects: n,
          /** as the CLI printed it */
          copied: Number(/copied ([\d,]+) object/.exec(first.output)?.[1]?.replace(/,/g, "") ?? Number.NaN),
          seconds: r1(first.seconds),
          cpuSeconds: r1(first.cpuSeconds),
          liveHeapPeakMB: first.liveHeapPeakMB,
          peakRssMB: first.peakRssMB,
        });
      } finally {
        await moto.stop();
      }
    }

    // 2. time per object: copy and verify (and the baseline process cost, subtracted), on each
    // stand-in: moto (every request a new connection: werkzeug closes each) and the light one
    // (keep-alive, as S3 and R2 answer), ours and rclone's on the same objects
    const ms = (cpu: number, n: number) => r3((cpu * 1000) / n);
    const perObjectOn = async (kind: ServerKind): Promise<Record<string, unknown>> => {
      say(
        `per object on the ${kind} stand-in: copy and verify of ${perObject.toLocaleString("en-US")} objects…`,
      );
      const server = await filledServer(
        [
          { name: "src", count: perObject },
          { name: "dst", region: REGION, count: 0 },
          { name: "dst-listing", region: REGION, count: 0 },
          { name: "rclone-dst", region: REGION, count: 0 },
          { name: "empty-src", count: 0 },
          { name: "empty-dst", region: REGION, count: 0 },
        ],
        kind,
      );
      try {
        const ctx = { work, databaseUrl, moto: server };
        const base = await cutoverCli(
          ctx,
          { source: "empty-src", target: "empty-dst" },
          ["run", "storage-sync"],
          false,
        );
        // `compare: full` (the default): the copy, then the step's check HEADs both sides per object
        const copy = await cutoverCli(ctx, { source: "src", target: "dst" }, ["run", "storage-sync"], false);
        // `compare: listing`: the copy, then a check from the two listings
        const copyListing = await cutoverCli(
          ctx,
          { source: "src", target: "dst-listing", with: { compare: "listing" } },
          ["run", "storage-sync"],
          false,
        );
        // a no-change pass from the listings (what a rerun over an unchanged bucket costs)
        const list = await cutoverCli(
          ctx,
          { source: "src", target: "dst-listing", with: { compare: "listing" } },
          ["run", "storage-sync"],
          false,
        );
        const verify = await cutoverCli(ctx, { source: "src", target: "dst" }, ["verify", "storage"], false);
        const rc = values["skip-rclone"]
          ? undefined
          : {
              copy: await rclone(ctx, ["sync", "m:src", "m:rclone-dst"]),
              list: await rclone(ctx, ["sync", "m:src", "m:rclone-dst", "--checksum"]),
              check: await rclone(ctx, ["check", "m:src", "m:rclone-dst"]),
            };
        const net = (r: CliRun) => ms(r.cpuSeconds - base.cpuSeconds, perObject);
        const ours = {
          copyMs: net(copy),
          copyListingMs: net(copyListing),
          listMs: net(list),
          verifyMs: net(verify),
        };
        const serverMs = {
          copyMs: ms(copy.serverCpuSeconds, perObject),
          copyListingMs: ms(copyListing.serverCpuSeconds, perObject),
          listMs: ms(list.serverCpuSeconds, perObject),
          verifyMs: ms(verify.serverCpuSeconds, perObject),
        };
        const anchor = rc
          ? {
              copyMs: ms(rc.copy.cpuSeconds, perObject),
              listMs: ms(rc.list.cpuSeconds, perObject),
              verifyMs: ms(rc.check.cpuSeconds, perObject),
              serverCopyMs: ms(rc.copy.serverCpuSeconds, perObject),
              serverListMs: ms(rc.list.serverCpuSeconds, perObject),
              serverVerifyMs: ms(rc.check.serverCpuSeconds, perObject),
              wallSeconds: {
                copy: r1(rc.copy.seconds),
                list: r1(rc.list.seconds),
                check: r1(rc.check.seconds),
              },
            }
          : undefined;
        return {
          server: kind,
          objects: perObject,
          /** our CPU per object (ms), the process start (an empty sync) subtracted */
          cutoverCpuMs: ours,
          processBaselineCpuSeconds: r1(base.cpuSeconds),
          /** the S3 stand-in's CPU per object under our requests (ms) */
          serverCpuMs: serverMs,
          wallSeconds: {
            copy: r1(copy.seconds),
            copyListing: r1(copyListing.seconds),
            list: r1(list.seconds),
            verify: r1(verify.seconds),
          },
          ...(anchor
            ? {
                rclone: anchor,
                /** ours ÷ rclone's CPU per object: below 1 is cheaper than rclone */
                ratios: {
                  copyFull: r3(ours.copyMs / anchor.copyMs),
                  copyListing: r3(ours.copyListingMs / anchor.copyMs),
                  list: r3(ours.listMs / anchor.listMs),
                  verify: r3(ours.verifyMs / anchor.verifyMs),
                },
                note: "rclone sync is a GET and a PUT per object; our `compare: full` copy adds the step's check, a HEAD on each side per object (`compare: listing` checks from the listings, as rclone does); rclone check compares sizes and MD5 ETags from the two listings, cutover verify also HEADs both sides for headers and user metadata",
              }
            : {}),
        };
      } finally {
        await server.stop();
      }
    };
    const perObjectFigures: Record<string, unknown> = {};
    for (const kind of sections.has("per-object")
      ? (values["per-object-servers"].split(",") as ServerKind[])
      : [])
      perObjectFigures[kind] = await perObjectOn(kind);
    const measuredBaseline = (perObjectFigures.light ?? perObjectFigures.moto) as
      | { processBaselineCpuSeconds: number }
      | undefined;
    if (sections.has("per-object")) {
      // the floor: the adapter's requests alone, with nothing of the engine around them
      say("per object: the SDK requests alone on the light stand-in…");
      const floor = await measure(
        node,
        ["--import", "tsx", path.join(here, "_sdk-floor.ts"), JSON.stringify({ objects: perObject })],
        { ...process.env },
      );
      perObjectFigures.sdkFloor = JSON.parse(floor.stdout.trim().split("\n").at(-1) ?? "{}") as unknown;
    }

    // 4. workers: the same key ranges taken by 1, 2 and 4 workers; 2 and 4 in two processes (the
    // CLI's own and a second replica), as separate replicas would be; at each `--worker-latency-ms`
    // on a stand-in of its own that answers every request after that round trip; then, at the
    // lowest latency, 4 workers again over 3 times as many objects, for the plan's cost per object
    // (see plan10M)
    const workerCounts = sections.has("workers") ? sizes(values.workers) : [];
    const wN = Number(values["worker-objects"]);
    // at a round trip the runs last longer per object, and a run must outlast its fixed costs (the
    // CLI's start, pg-boss handing the ranges out) by far for its speed-up to be the copy's
    const latencyN = values["worker-latency-objects"] ? Number(values["worker-latency-objects"]) : 3 * wN;
    const objectsAt = (latencyMs: number) => (latencyMs === 0 ? wN : latencyN);
    const shardCount = Number(values.shards);
    const planWorkers = 4;
    const planAt3N = workerCounts.includes(planWorkers);
    const workerServer = values["worker-server"] as ServerKind;
    /** each round trip's runs of 1, 2 and 4 workers, the lowest first */
    const byLatency: Array<{
      latencyMs: number;
      objects: number;
      runs: Array<Record<string, unknown>>;
      /** 1 worker over a third of the objects, at the lowest round trip above zero (the plan's pace) */
      thirdRun?: Record<string, unknown>;
    }> = [];
    /** the plan's runs of 4 workers at the lowest latency: over N (the first is the comparison's) and over 3N */
    const planRunsN: Array<Record<string, unknown>> = [];
    const planRuns3N: Array<Record<string, unknown>> = [];
    const loadAtStart = loadavg().map(r1);
    // the CLI's own start (an empty sync), subtracted from each run's CPU
    let baselineCpu = measuredBaseline?.processBaselineCpuSeconds;
    for (const latencyMs of workerCounts.length > 0 ? workerLatencies : []) {
      const n = objectsAt(latencyMs);
      const withPlan = planAt3N && latencyMs === workerLatencies[0];
      // the plan's pace per worker at a round trip: 1 worker over n and over n/3, the difference
      // free of what does not grow with the objects (the CLI's start, the split, handing out ranges)
      const withPace = latencyMs > 0 && latencyMs === workerLatencies.find((v) => v > 0);
      const third = Math.floor(n / 3);
      say(
        `workers at a round trip of ${latencyMs} ms: ${n.toLocaleString("en-US")} objects in ${shardCount} key ranges by ${workerCounts.join(", ")} workers${withPlan ? `, then ${(3 * n).toLocaleString("en-US")} by ${planWorkers}` : ""}…`,
      );
      const wMoto = await filledServer(
        [
          { name: "wsrc", count: n },
          ...Array.from({ length: speedupRepeats }, (_, rep) =>
            workerCounts.map((k) => ({
              name: `wdst-${k}${rep ? `-r${rep}` : ""}`,
              region: REGION,
              count: 0,
            })),
          ).flat(),
          ...(withPlan
            ? [
                { name: "wsrc-3n", count: 3 * n },
                ...Array.from({ length: planRepeats }, (_, i) => [
                  { name: `wdst-${planWorkers}-3n-${i}`, region: REGION, count: 0 },
                  ...(i > 0 ? [{ name: `wdst-${planWorkers}-n-${i}`, region: REGION, count: 0 }] : []),
                ]).flat(),
              ]
            : []),
          ...(withPace
            ? [
                { name: "wsrc-third", count: third },
                { name: "wdst-1-third", region: REGION, count: 0 },
              ]
            : []),
          { name: "wempty-src", count: 0 },
          { name: "wempty-dst", region: REGION, count: 0 },
        ],
        workerServer,
        latencyMs,
      );
      const runs: Array<Record<string, unknown>> = [];
      let thirdRun: Record<string, unknown> | undefined;
      try {
        const ctx = { work, databaseUrl, moto: wMoto };
        baselineCpu ??= (
          await cutoverCli(
            ctx,
            { source: "wempty-src", target: "wempty-dst" },
            ["run", "storage-sync"],
            false,
          )
        ).cpuSeconds;
        const baseCpu = baselineCpu;
        /** `k` workers copy `n` objects from `source` to `target` */
        const workersRun = async (
          k: number,
          n: number,
          source: string,
          target: string,
        ): Promise<Record<string, unknown>> => {
          const inCli = k === 1 ? 1 : Math.ceil(k / 2);
          const elsewhere = k - inCli;
          const pair = {
            source,
            target,
            with: { shards: shardCount, compare: "listing", concurrency: STEP_CONCURRENCY },
            shardWorkers: inCli,
            stallSeconds: 600,
          };
          const config = path.join(work, `migration-${pair.source}-${pair.target}.yml`);
          await writeFile(
            config,
            migrationYaml(wMoto.endpoint, pair.source, pair.target, pair.with, inCli, pair.stallSeconds),
          );
          const other = elsewhere > 0 ? await replica(ctx, config, elsewhere) : undefined;
          const otherCpu0 = other ? await cpuSeconds(other.pid) : 0;
          try {
            const machine0 = await machineCpuSeconds();
            const r = await cutoverCli(ctx, pair, ["run", "storage-sync"], false);
            const machine = (await machineCpuSeconds()) - machine0;
            const otherCpu = other ? (await cpuSeconds(other.pid)) - otherCpu0 : 0;
            const reported = reportedCopies(r.output);
            // what is on the target, whatever the step's figures say
            const onTarget = await countObjects(wMoto.endpoint, pair.target);
            // our CPU for the work: both processes, the CLI's start (an empty sync) subtracted
            const ourCpu = r.cpuSeconds - baseCpu + otherCpu;
            say(
              `  ${k} worker${k > 1 ? "s" : ""}, ${n} objects, ${latencyMs} ms round trip: ${r1(r.seconds)} s, ${onTarget} of ${n} on the target; the step reported ${JSON.stringify(reported)}`,
            );
            if (onTarget !== n)
              throw new Error(
                `${k} workers: ${onTarget} of ${n} objects on the target after a run that succeeded`,
              );
            return {
              workers: k,
              objects: n,
              latencyMs,
              processes: other ? 2 : 1,
              workersPerProcess: other ? [inCli, elsewhere] : [inCli],
              /** objects on the target bucket after the run (its listing) */
              onTarget,
              /** the step's own figures: copied by the last attempt of each range, before, already there */
              reported,
              seconds: r1(r.seconds),
              /** our CPU (both processes, the CLI's start subtracted), in seconds */
              cutoverCpuSeconds: r3(ourCpu),
              cutoverCpuMsPerObject: r3((ourCpu * 1000) / n),
              serverCpuMsPerObject: r3((r.serverCpuSeconds * 1000) / n),
              /** cores busy on average: ours, the stand-in's, together (the machine has 2) */
              cutoverCores: r3(ourCpu / r.seconds),
              serverCores: r3(r.serverCpuSeconds / r.seconds),
              busyCores: r3((ourCpu + r.serverCpuSeconds) / r.seconds),
              /**
               * every process on the machine (/proc/stat) meanwhile, and what of it was neither ours
               * nor the stand-in's (other work on the machine, the CLI's start): cores this run could not have
               */
              machineBusyCores: r3(machine / r.seconds),
              othersCores: r3(Math.max(0, machine - ourCpu - r.serverCpuSeconds) / r.seconds),
            };
          } finally {
            await other?.stop();
          }
        };
        for (let rep = 0; rep < speedupRepeats; rep++)
          for (const k of workerCounts) {
            const r = await workersRun(k, n, "wsrc", `wdst-${k}${rep ? `-r${rep}` : ""}`);
            r.repeat = rep;
            runs.push(r);
          }
        for (let i = 0; withPlan && i < planRepeats; i++) {
          planRunsN.push(
            i === 0
              ? (runs.find((r) => r.workers === planWorkers) as Record<string, unknown>)
              : await workersRun(planWorkers, n, "wsrc", `wdst-${planWorkers}-n-${i}`),
          );
          planRuns3N.push(await workersRun(planWorkers, 3 * n, "wsrc-3n", `wdst-${planWorkers}-3n-${i}`));
        }
        if (withPace && workerCounts.includes(1))
          thirdRun = await workersRun(1, third, "wsrc-third", "wdst-1-third");
      } finally {
        await wMoto.stop();
      }
      // each run against the 1-worker run of its own repeat
      for (const r of runs) {
        const t1 = runs.find((o) => o.workers === 1 && o.repeat === r.repeat)?.seconds as number | undefined;
        if (t1) r.speedUp = r3(t1 / (r.seconds as number));
      }
      byLatency.push({ latencyMs, objects: n, runs, ...(thirdRun ? { thirdRun } : {}) });
    }
    /**
     * the most any number of workers could gain at one round trip: its 1-worker run kept
     * `busyCores` of the machine's 2 busy, the stand-in's included
     */
    const ceilingOf = (runs: Array<Record<string, unknown>>) => {
      const one = runs.find((r) => r.workers === 1);
      return one ? r3(2 / (one.busyCores as number)) : null;
    };
    const othersIn = (runs: Array<Record<string, unknown>>) =>
      (runs.find((r) => r.workers === 1)?.othersCores as number | undefined) ?? 0;
    /** the median of the repeats' speed-ups of `k` workers */
    const speedUpOf = (at: (typeof byLatency)[number] | undefined, k: number) => {
      const m = median(
        (at?.runs ?? [])
          .filter((r) => r.workers === k && typeof r.speedUp === "number")
          .map((r) => r.speedUp as number),
      );
      return m === undefined ? undefined : r3(m);
    };
    // the CPU-bound comparison and the plan's CPU: the lowest round trip (0 ms by default)
    const atLowest = byLatency[0];
    const loadAtEnd = loadavg().map(r1);
    const planN = atLowest?.objects ?? wN;
    const four = atLowest?.runs.find((r) => r.workers === planWorkers);
    // the production-like comparison: the lowest round trip above zero
    const atRoundTrip = byLatency.find((l) => l.latencyMs > 0);
    const rcloneLight = (perObjectFigures[workerServer] as { rclone?: { copyMs: number } } | undefined)
      ?.rclone;
    const hours = (msPerObject: number, workers: number) => r3((msPerObject * 1e7) / workers / 3_600_000);
    /**
     * The plan from the cost of one more object: a run of N objects pays, besides its objects, costs
     * that do not grow with them (the second replica's start, pg-boss polling in two processes while
     * it runs, the split's listing); the 3N run less the N run is 2N objects' worth and nothing else
     */
    const marginal =
      four && planRuns3N.length > 0
        ? (() => {
            // each list holds planRepeats ≥ 1 runs
            const of = (runs: Array<Record<string, unknown>>, field: string) =>
              median(runs.map((r) => r[field] as number)) as number;
            const cpuN = of(planRunsN, "cutoverCpuSeconds");
            const cpu3N = of(planRuns3N, "cutoverCpuSeconds");
            const secondsN = of(planRunsN, "seconds");
            const seconds3N = of(planRuns3N, "seconds");
            const msPerObject = ((cpu3N - cpuN) * 1000) / (2 * planN);
            const fixedCpuSeconds = cpuN - (msPerObject * planN) / 1000;
            const wallMsPerObject = ((seconds3N - secondsN) * 1000) / (2 * planN);
            const fixedWallSeconds = secondsN - (wallMsPerObject * planN) / 1000;
            return {
              /** each size's median over the repeats (our CPU in s, wall time in s) */
              medians: { cpuN: r3(cpuN), cpu3N: r3(cpu3N), secondsN: r1(secondsN), seconds3N: r1(seconds3N) },
              /** our CPU per object, (cpu(3N) − cpu(N)) ÷ 2N, in ms */
              cutoverCpuMsPerObject: r3(msPerObject),
              /** our CPU that does not grow with the objects, cpu(N) − N × the above, in seconds */
              fixedCpuSeconds: r3(fixedCpuSeconds),
              arithmetic: `(${r1(fixedCpuSeconds)} s + 10,000,000 objects × ${r3(msPerObject)} ms ÷ 1,000 ÷ ${planWorkers} workers) ÷ 3,600 s/h`,
              /** each worker with a core of its own and servers that keep up (S3 and R2 scale out) */
              hours: r3((fixedCpuSeconds + (msPerObject * 1e7) / 1000 / planWorkers) / 3600),
              /** the same from the wall time of the two runs on this 2-core machine */
              wallMsPerObject: r3(wallMsPerObject),
              fixedWallSeconds: r1(fixedWallSeconds),
              hoursAtThisMachinesPace: r3((fixedWallSeconds + (wallMsPerObject * 1e7) / 1000) / 3600),
              ...(fixedCpuSeconds < 0
                ? {
                    note: "the fixed cost came out below zero: the 3N run's CPU per object was lower than the N run's by more than the fixed cost (the machine's load moved between the runs); run again on a quieter machine, or with a larger --worker-objects",
                  }
                : {}),
            };
          })()
        : undefined;
    /**
     * The plan from the round trip: a worker keeps `concurrency` requests in flight, each object a
     * GET from the source and a PUT to the target, so at a round trip it copies about concurrency ÷
     * (its time per object in a slot) objects a second until its CPU runs out. The pace per worker
     * at the lowest round trip above zero from 1 worker over n and over n/3 objects: (n − n/3) ÷
     * (t(n) − t(n/3)), free of the CLI's start, the split and the ranges' hand-out, which a 10 M
     * copy pays once; beside it the n run's whole pace, those included
     */
    const roundTrip = (() => {
      const one = atRoundTrip?.runs.find((r) => r.workers === 1);
      if (!atRoundTrip || !one) return undefined;
      const L = atRoundTrip.latencyMs;
      const n = (v: number, digits = 1) => v.toLocaleString("en-US", { maximumFractionDigits: digits });
      const tN = one.seconds as number;
      const wholePace = atRoundTrip.objects / tN;
      const third = atRoundTrip.thirdRun;
      const tThird = third?.seconds as number | undefined;
      const thirdN = third?.objects as number | undefined;
      // a loaded machine can stretch the smaller run past the larger; then only the whole pace holds
      const steady = tThird !== undefined && thirdN !== undefined && tN > tThird;
      const perWorker = steady ? (atRoundTrip.objects - thirdN) / (tN - tThird) : wholePace;
      const paceArithmetic = steady
        ? `(${n(atRoundTrip.objects)} − ${n(thirdN)}) objects ÷ (${r1(tN)} − ${r1(tThird)}) s = ${n(perWorker)} objects/s`
        : `${n(atRoundTrip.objects)} objects ÷ ${r1(tN)} s = ${n(perWorker)} objects/s`;
      const slotMs = (STEP_CONCURRENCY * 1000) / perWorker;
      const needed = 1e7 / 3600;
      const neededPerWorker = needed / planWorkers;
      const concurrencyNeeded = Math.ceil((neededPerWorker * slotMs) / 1000);
      // our CPU per object: the plan's marginal cost where it ran, else this run's average
      const cpuMs = marginal?.cutoverCpuMsPerObject ?? (one.cutoverCpuMsPerObject as number);
      const coresPerWorker = (neededPerWorker * cpuMs) / 1000;
      // the CPU side of the same target: a worker has one core at most (its process's event loop)
      const cpuBudgetMs = (planWorkers * 3600 * 1000) / 1e7;
      const workersAtOneCore = Math.ceil((1e7 * cpuMs) / 1000 / 3600);
      return {
        latencyMs: L,
        /** requests in flight per worker (the step's `concurrency`, given to every run) */
        concurrency: STEP_CONCURRENCY,
        /** the 1-worker runs the pace comes from: objects, wall s */
        runs: [
          ...(third ? [{ objects: thirdN, seconds: tThird }] : []),
          { objects: atRoundTrip.objects, seconds: tN },
        ],
        /** objects a second one worker copies at this round trip, past its fixed costs */
        objectsPerSecondPerWorker: r1(perWorker),
        paceArithmetic,
        ...(steady
          ? {}
          : {
              note: "the pace is the whole run's, its fixed costs included (the run over a third of the objects took as long or did not run): it understates the pace and overstates the concurrency needed",
            }),
        /** the n run's whole pace, its fixed costs included */
        wholeRunObjectsPerSecondPerWorker: r1(wholePace),
        /** how long each object held one of the worker's slots, in ms */
        msPerObjectInASlot: r1(slotMs),
        /** of which the round trips: a GET from the source and a PUT to the target */
        roundTripMsPerObject: 2 * L,
        slotArithmetic: `${STEP_CONCURRENCY} in flight ÷ ${n(perWorker)} objects/s × 1,000 = ${n(slotMs)} ms per object in a slot (2 round trips of ${L} ms; the rest our CPU, the wait for a core, the listing and checkpoints)`,
        /** 10 M objects by 4 workers at this pace, at the step's concurrency */
        hoursAtStepConcurrency: r3(1e7 / (perWorker * planWorkers) / 3600),
        hoursArithmetic: `10,000,000 objects ÷ (${n(perWorker)} objects/s × ${planWorkers} workers) ÷ 3,600 s/h`,
        /** for 10 M objects within 1 h */
        objectsPerSecondNeeded: r1(needed),
        objectsPerSecondNeededPerWorker: r1(neededPerWorker),
        /** in-flight requests per worker that 4 workers need for 10 M objects within 1 h at this round trip */
        concurrencyNeeded,
        arithmetic: `10,000,000 objects ÷ 3,600 s = ${n(needed)} objects/s ÷ ${planWorkers} workers = ${n(neededPerWorker)} objects/s per worker × ${n(slotMs)} ms per object in a slot ÷ 1,000 = ${n((neededPerWorker * slotMs) / 1000)}, so ${concurrencyNeeded} in flight per worker`,
        /**
         * the CPU that pace takes: a process's JavaScript runs on one event loop, shared by the
         * workers in it, so one core at most per process
         */
        cutoverCpuMsPerObject: cpuMs,
        coresPerWorkerAtThatPace: r3(coresPerWorker),
        coresArithmetic: `${n(neededPerWorker)} objects/s × ${cpuMs} ms of our CPU per object ÷ 1,000 = ${n(coresPerWorker, 3)} cores per worker`,
        /** our CPU per object that 4 workers of one core each can afford for 10 M objects in 1 h */
        cpuBudgetMsPerObject: r3(cpuBudgetMs),
        cpuBudgetArithmetic: `${planWorkers} workers × 1 core × 3,600 s × 1,000 ÷ 10,000,000 objects = ${r3(cpuBudgetMs)} ms`,
        /** workers of one core each that 10 M objects in 1 h take at our CPU per object */
        workersNeededAtOneCoreEach: workersAtOneCore,
        workersArithmetic: `10,000,000 objects × ${cpuMs} ms ÷ 1,000 ÷ 3,600 s = ${n((1e7 * cpuMs) / 1000 / 3600, 2)} cores, so ${workersAtOneCore} workers`,
        ...(coresPerWorker > 1
          ? {
              cpuNote:
                "at that pace a worker needs more than the one core its process's event loop can give: its CPU, not the round trip, sets the pace, and more in flight does not help; more workers, each a replica of its own, do",
            }
          : {}),
      };
    })();
    const plan10M = four
      ? {
          objects: 1e7,
          workers: planWorkers,
          /** the round trip the CPU arithmetic's runs had (the lowest listed) */
          latencyMs: atLowest?.latencyMs,
          ...(marginal
            ? {
                /** the runs the cost per object comes from: 4 workers over N and over 3N objects */
                sizes: [planN, 3 * planN],
                repeats: planRepeats,
                /** the pairs, alternately N then 3N: objects, wall s, our CPU s */
                pairs: planRuns3N.map((r3n, i) =>
                  [planRunsN[i], r3n].map((r) => ({
                    objects: r?.objects,
                    seconds: r?.seconds,
                    cutoverCpuSeconds: r?.cutoverCpuSeconds,
                  })),
                ),
                run3N: planRuns3N[0],
                ...marginal,
              }
            : {}),
          /**
           * the plan before (issue 24): the N run's CPU per object, its fixed costs spread over its N
           * objects, times 10 M; it overstates by those fixed costs
           */
          fromAverageCpuAtN: {
            objects: planN,
            cutoverCpuMsPerObject: four.cutoverCpuMsPerObject,
            arithmetic: `10,000,000 objects × ${four.cutoverCpuMsPerObject} ms ÷ ${planWorkers} workers ÷ 3,600,000 ms/h`,
            hours: hours(four.cutoverCpuMsPerObject as number, planWorkers),
            /** 10 M objects at the wall time per object 4 workers took over N on this 2-core machine */
            hoursAtThisMachinesPace: r3((((four.seconds as number) / planN) * 1e7) / 3600),
          },
          ...(rcloneLight
            ? {
                anchor: {
                  what: `rclone sync, one process, on the same ${workerServer} stand-in (CPU per object)`,
                  cpuMsPerObject: rcloneLight.copyMs,
                  arithmetic: `10,000,000 objects × ${rcloneLight.copyMs} ms ÷ 3,600,000 ms/h`,
                  hours: hours(rcloneLight.copyMs, 1),
                },
              }
            : {}),
          ...(roundTrip ? { roundTrip } : {}),
          /** the target: under 1 h of wall time with 4 workers */
          targetHours: 1,
        }
      : undefined;

    // 3. the engine, in-process buckets
    const engineRuns: Array<Record<string, unknown>> = [];
    for (const n of sections.has("engine") ? engineSizes : []) {
      say(`engine: a no-change pass over ${n.toLocaleString("en-US")} objects a side, stall watchdog 5 s…`);
      const r = await engine({ scenario: "no-change", objects: n, stallSeconds: 5 });
      say(`  ${JSON.stringify(r)}`);
      engineRuns.push(r);
    }
    const failN = Number(values["fail-objects"]);
    let failing: Record<string, unknown> = {};
    let clean: Record<string, unknown> = {};
    if (sections.has("engine")) {
      say(`engine: ${failN.toLocaleString("en-US")} copies with one failing for good, then the rerun…`);
      failing = await engine({ scenario: "copy", objects: failN, failAt: Math.floor(failN / 3) });
      clean = await engine({ scenario: "copy", objects: Math.max(1, Math.floor(failN / 10)) });
      say(`  ${JSON.stringify(failing)}`);
    }

    const cliHeaps = memory.map((m) => m.liveHeapPeakMB as number);
    const engineHeaps = engineRuns.map((m) => m.liveHeapPeakMB as number);
    const result = {
      benchmark: "scale",
      cli: { runs: memory, liveHeap: flatness(cliHeaps) },
      workers: {
        keyRanges: shardCount,
        /** requests in flight per worker (the step's `concurrency`) */
        concurrency: STEP_CONCURRENCY,
        server: workerServer,
        /** at each round trip (`--worker-latency-ms`), the lowest first: 1, 2 and 4 workers */
        byLatency: byLatency.map((l) => ({
          latencyMs: l.latencyMs,
          objects: l.objects,
          /** the median over the repeats (`--speedup-repeats`), each against its own 1-worker run */
          speedUps: Object.fromEntries(
            [...new Set(l.runs.map((r) => r.workers as number))].map((k) => [`${k}`, speedUpOf(l, k)]),
          ),
          /** each repeat's, in the order they ran */
          speedUpsByRepeat: Object.fromEntries(
            [...new Set(l.runs.map((r) => r.workers as number))].map((k) => [
              `${k}`,
              l.runs.filter((r) => r.workers === k).map((r) => r.speedUp),
            ]),
          ),
          speedUpCeilingOnThisMachine: ceilingOf(l.runs),
          ...(othersIn(l.runs) > 0.25
            ? {
                loadNote: `other work on the machine kept ${othersIn(l.runs)} of its 2 cores busy during the 1-worker run (othersCores): the ceiling assumes both cores were the runs' own and overstates what they could reach`,
              }
            : {}),
          runs: l.runs,
          ...(l.thirdRun ? { thirdRun: l.thirdRun } : {}),
        })),
        ...(plan10M ? { plan10M } : {}),
        /** the machine's load average (1, 5, 15 min) when the workers' runs began and ended */
        loadAverage: { start: loadAtStart, end: loadAtEnd },
        note: "two cores shared by every process here, the stand-in's included: no speed-up can pass its round trip's speedUpCeilingOnThisMachine (2 ÷ the cores its 1-worker run kept busy); at 0 ms the workers are bound by CPU, at a round trip (R2 and S3 answer in tens of ms) each worker waits on its requests in flight and more workers add requests until the cores run out; cutoverCores and serverCores show the CPU each side put to work",
      },
      perObject: perObjectFigures,
      engine: {
        noChange: engineRuns,
        liveHeap: flatness(engineHeaps),
        permanentFailure: {
          ...failing,
          /** the live heap of a clean copy of a tenth as many objects, for comparison */
          cleanCopyOfATenth: clean,
          liveHeapAgainstCleanTenth: r3(
            (failing.firstRunLiveHeapPeakMB as number) / (clean.firstRunLiveHeapPeakMB as number),
          ),
        },
      },
      // null where `--sections` left the measurement out
      targets: {
        cliLiveHeapFlatWithin10Percent: memory.length ? flatness(cliHeaps).within10Percent : null,
        engineLiveHeapFlatWithin10Percent: engineRuns.length ? flatness(engineHeaps).within10Percent : null,
        noChangePassesNotStoppedByWatchdog: engineRuns.length
          ? engineRuns.every((r) => r.stoppedByWatchdog === false)
          : null,
        failureMemoryFlat: sections.has("engine")
          ? (failing.firstRunLiveHeapPeakMB as number) <= 1.1 * (clean.firstRunLiveHeapPeakMB as number)
          : null,
        // at the lowest round trip (0 ms by default: CPU-bound on this machine, under its ceiling)
        twoWorkersSpeedUp:
          speedUpOf(atLowest, 2) !== undefined && atLowest
            ? {
                latencyMs: atLowest.latencyMs,
                objects: atLowest.objects,
                speedUp: speedUpOf(atLowest, 2),
                speedUpCeilingOnThisMachine: ceilingOf(atLowest.runs),
                atLeast1_7: (speedUpOf(atLowest, 2) as number) >= 1.7,
              }
            : null,
        // at the lowest round trip above zero: the servers are not the bottleneck, as in production
        twoWorkersSpeedUpWithRoundTrip:
          speedUpOf(atRoundTrip, 2) !== undefined && atRoundTrip
            ? {
                latencyMs: atRoundTrip.latencyMs,
                objects: atRoundTrip.objects,
                speedUp: speedUpOf(atRoundTrip, 2),
                speedUpCeilingOnThisMachine: ceilingOf(atRoundTrip.runs),
                atLeast1_7: (speedUpOf(atRoundTrip, 2) as number) >= 1.7,
              }
            : null,
        // from the cost per object (the 3N run less the N run) where both ran; else the old figure
        plan10MUnder1hWith4Workers: plan10M
          ? (marginal?.hours ?? plan10M.fromAverageCpuAtN.hours) < plan10M.targetHours
          : null,
        rerunCopiesOnlyTheFailedObject: sections.has("engine")
          ? (failing.rerun as { copied?: number } | undefined)?.copied === 1
          : null,
      },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await rm(work, { recursive: true, force: true });
  }
}
