import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createObjectStore, type ObjectStore, type ObjectSummary } from "../src/cloud/object-store.js";
import { fillBucket, type MediaSpec } from "../src/sandbox/media.js";
import { S3RVER_CREDENTIALS, type S3Server, startMoto, startS3rver } from "../src/sandbox/s3-servers.js";
import { createBenchBuckets, MOTO_CREDENTIALS, storageEnv, storageMigration } from "./_buckets.js";

/**
 * `npm run bench -- storage [--objects 5000] [--min-kb 2] [--max-kb 200] [--large 20] [--large-mb 20]
 * [--seed 42] [--concurrency 16] [--rclone-default]`
 *
 * Fills an s3rver bucket (the R2 side) with seeded media, then, in the same run and against the
 * same two servers (moto as AWS), times:
 *   (a) `storage.sync` into one moto bucket, then a second, no-change run;
 *   (b) `rclone sync` (Debian's) into another, with the same concurrency and --fast-list, then a
 *       no-change run with --checksum --fast-list (its fastest correct way; `--rclone-default` also
 *       times its default no-change run, which compares modification times with a HEAD per object).
 * Each sync runs in a process of its own: its peak RSS is its own, and the servers' CPU time is
 * read from /proc for each run. Ours is the compiled step from dist/ on plain node with no flags
 * (bench/_storage-worker.mjs), as shipped. `stepSeconds` is the step alone, as inside the running
 * bot; `seconds` counts the process start too. rclone runs with no AWS_CA_BUNDLE. Prints one JSON
 * object on stdout; progress goes to stderr.
 */

const say = (msg: string) => process.stderr.write(`[bench storage] ${msg}\n`);
const here = path.dirname(fileURLToPath(import.meta.url));
const TICKS = 100; // USER_HZ on Linux

/**
 * Refuses at the start, with what to do, when a benchmark's comparison tool is missing: found only
 * when its turn came, it crashed the run after its first sections (spawn ENOENT).
 */
export function requireRclone(skip: boolean): void {
  if (skip) return;
  const r = spawnSync("rclone", ["version"], { stdio: "ignore" });
  if (r.error || r.status !== 0)
    throw new Error(
      "rclone is not on this machine: the benchmark compares against it. Install it (`apt-get install rclone`), or pass --skip-rclone to leave the comparison out.",
    );
}

export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // fields after the command (which may hold spaces) start after the last ')'
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICKS; // utime + stime
}

export async function peakRssKb(pid: number): Promise<number | undefined> {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface Measured {
  seconds: number;
  peakRssMB: number;
  cpuSeconds: number;
  stdout: string;
}

/** Runs a process to its end, sampling its peak RSS and CPU from /proc while it runs. */
export async function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Measured> {
  const started = performance.now();
  const child: ChildProcess = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
    process.stderr.write(d);
  });
  let peak = 0;
  let cpu = 0;
  const sample = async () => {
    if (!child.pid) return;
    peak = Math.max(peak, (await peakRssKb(child.pid)) ?? 0);
    cpu = await cpuSeconds(child.pid).catch(() => cpu);
  };
  const timer = setInterval(() => void sample(), 50);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`${path.basename(cmd)} exited with ${code}: ${stderr.slice(-2000)}`);
  return { seconds, peakRssMB: Math.round(peak / 102.4) / 10, cpuSeconds: cpu, stdout };
}

async function listAll(store: ObjectStore): Promise<ObjectSummary[]> {
  const all: ObjectSummary[] = [];
  let token: string | undefined;
  do {
    const page = await store.listPage(token ? { token } : {});
    all.push(...page.objects);
    token = page.nextToken;
  } while (token);
  return all;
}

/** Same keys, sizes and (where both are plain MD5s) ETags. */
async function sameListing(a: ObjectStore, b: ObjectStore): Promise<boolean> {
  const [x, y] = await Promise.all([listAll(a), listAll(b)]);
  if (x.length !== y.length) return false;
  const byKey = new Map(y.map((o) => [o.key, o]));
  return x.every((o) => {
    const t = byKey.get(o.key);
    if (!t || t.size !== o.size) return false;
    const plain = /^[0-9a-f]{32}$/;
    return !(plain.test(o.etag) && plain.test(t.etag)) || o.etag === t.etag;
  });
}

const r1 = (v: number) => Math.round(v * 10) / 10;
const r2 = (v: number) => Math.round(v * 100) / 100;
const r3 = (v: number) => Math.round(v * 1000) / 1000;

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      objects: { type: "string", default: "5000" },
      "min-kb": { type: "string", default: "2" },
      "max-kb": { type: "string", default: "200" },
      large: { type: "string", default: "20" },
      "large-mb": { type: "string", default: "20" },
      seed: { type: "string", default: "42" },
      concurrency: { type: "string", default: "16" },
      "rclone-default": { type: "boolean", default: false },
      "skip-rclone": { type: "boolean", default: false },
    },
  });
  requireRclone(values["skip-rclone"]);
  const spec: MediaSpec = {
    count: Number(values.objects),
    minBytes: Number(values["min-kb"]) * 1000,
    maxBytes: Number(values["max-kb"]) * 1000,
    large: { count: Number(values.large), bytes: Number(values["large-mb"]) * 1000 * 1000 },
    seed: Number(values.seed),
  };
  const concurrency = Number(values.concurrency);
  const region = "ap-southeast-1";
  const work = await mkdtemp(path.join(tmpdir(), "cutover-bench-storage-"));
  const servers: S3Server[] = [];
  const stores: ObjectStore[] = [];
  try {
    say("starting s3rver (as R2) and moto (as AWS)…");
    const [r2srv, moto] = await Promise.all([
      startS3rver({ directory: path.join(work, "s3rver") }),
      startMoto(),
    ]);
    servers.push(r2srv, moto);
    const mk = (
      endpoint: string,
      bucket: string,
      side: "source" | "target",
      reg: string,
      creds: { accessKeyId: string; secretAccessKey: string },
    ) => {
      const s = createObjectStore({
        side,
        provider: side === "source" ? "R2" : "S3",
        bucket,
        region: reg,
        endpoint,
        credentials: creds,
        credentialSource: "bench",
        writeChecksums: false,
        maxSockets: 32,
      });
      stores.push(s);
      return s;
    };
    const awsCreds = MOTO_CREDENTIALS;
    await createBenchBuckets(r2srv, moto, region, ["media-cutover", "media-rclone"]);
    const source = mk(r2srv.endpoint, "media", "source", "us-east-1", { ...S3RVER_CREDENTIALS });

    say(
      `filling s3rver: ${spec.count} objects of ${values["min-kb"]}–${values["max-kb"]} KB + ${spec.large?.count} of ${values["large-mb"]} MB (seed ${spec.seed})…`,
    );
    const filled = await fillBucket(source, spec, {
      concurrency: 8,
      onProgress: (done, total) => {
        if (done % 1000 === 0 || done === total) say(`  filled ${done}/${total}`);
      },
    });
    const objects = filled.objects;
    const mb = filled.bytes / 1e6;

    const yaml = (bucket: string) => `
version: 1
project: bench
slack: { channel: C0123456789 }
access: { operators: [U0123456789], approvers: [U0987654321], channels: [C0123456789] }
${storageMigration({ r2: r2srv, bucket, region, steps: [{ id: "storage-sync", uses: "storage.sync" }] })}`;
    const env = { PATH: process.env.PATH ?? "", ...storageEnv(moto) };
    const serverCpu = async () => ({ s3rver: await cpuSeconds(r2srv.pid), moto: await cpuSeconds(moto.pid) });

    const runOurs = async (label: string) => {
      say(`${label}…`);
      const job = {
        yaml: yaml("media-cutover"),
        env,
        dataDir: path.join(work, "data"),
        input: { concurrency },
      };
      const before = await serverCpu();
      const m = await measure(
        process.execPath,
        [path.join(here, "_storage-worker.mjs"), JSON.stringify(job)],
        {
          ...process.env,
        },
      );
      const after = await serverCpu();
      const out = JSON.parse(m.stdout.trim().split("\n").at(-1) ?? "{}") as {
        seconds: number;
        figures: Record<string, number | string>;
        maxRssKb: number;
        memoryPeaksMB: Record<string, number>;
      };
      say(`${label}: ${r2(m.seconds)} s, ${out.figures.copied} copied`);
      return {
        /** the whole process: Node starting, modules loading, the sync */
        seconds: r2(m.seconds),
        /** the step alone, as it runs inside the long-lived bot */
        stepSeconds: r2(out.seconds),
        runtime: "node on the compiled step (dist/), no flags",
        peakRssMB: r1(Math.max(m.peakRssMB, out.maxRssKb / 1024)),
        cpuSeconds: r2(m.cpuSeconds),
        serverCpuSeconds: { s3rver: r2(after.s3rver - before.s3rver), moto: r2(after.moto - before.moto) },
        copied: Number(out.figures.copied),
        memoryPeaksMB: out.memoryPeaksMB,
        requests: {
          source: out.figures.sourceRequestsByOperation,
          target: out.figures.targetRequestsByOperation,
        },
      };
    };

    const rcloneEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "",
      HOME: work,
      RCLONE_CONFIG: path.join(work, "rclone.conf"), // empty: everything comes from the variables below
      RCLONE_CONFIG_SRC_TYPE: "s3",
      RCLONE_CONFIG_SRC_PROVIDER: "Other",
      RCLONE_CONFIG_SRC_ENDPOINT: r2srv.endpoint,
      RCLONE_CONFIG_SRC_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      RCLONE_CONFIG_SRC_FORCE_PATH_STYLE: "true",
      RCLONE_CONFIG_DST_TYPE: "s3",
      RCLONE_CONFIG_DST_PROVIDER: "Other", // "AWS" would force virtual-host addressing, which 127.0.0.1 cannot resolve
      RCLONE_CONFIG_DST_ENDPOINT: moto.endpoint,
      RCLONE_CONFIG_DST_REGION: region,
      RCLONE_CONFIG_DST_ACCESS_KEY_ID: awsCreds.accessKeyId,
      RCLONE_CONFIG_DST_SECRET_ACCESS_KEY: awsCreds.secretAccessKey,
      RCLONE_CONFIG_DST_FORCE_PATH_STYLE: "true",
      // AWS_CA_BUNDLE deliberately absent: rclone would try to load it for plain-http endpoints too
    };
    const runRclone = async (label: string, extra: string[]) => {
      say(`${label}…`);
      const before = await serverCpu();
      const m = await measure(
        "rclone",
        [
          "sync",
          "src:media",
          "dst:media-rclone",
          "--transfers",
          String(concurrency),
          "--checkers",
          String(concurrency),
          "--fast-list",
          "--s3-no-check-bucket",
          "--stats",
          "0",
          "-q",
          ...extra,
        ],
        rcloneEnv,
      );
      const after = await serverCpu();
      say(`${label}: ${r2(m.seconds)} s`);
      return {
        seconds: r2(m.seconds),
        peakRssMB: m.peakRssMB,
        cpuSeconds: r2(m.cpuSeconds),
        serverCpuSeconds: { s3rver: r2(after.s3rver - before.s3rver), moto: r2(after.moto - before.moto) },
        flags: ["--transfers", concurrency, "--checkers", concurrency, "--fast-list", ...extra].join(" "),
      };
    };

    const oursFirst = await runOurs("cutover storage.sync, first run");
    const oursIdentical = await sameListing(
      source,
      mk(moto.endpoint, "media-cutover", "target", region, awsCreds),
    );
    const oursAgain = await runOurs("cutover storage.sync, no-change run");

    let rclone: Record<string, unknown> | undefined;
    let ratios:
      | {
          firstRunThroughput: number;
          noChangeSpeed: number;
          noChangeSpeedWithProcessStart: number;
          firstRunServerCpuPerObject: number;
          noChangeServerCpuPerObject: number;
          firstRunPeakRss: number;
        }
      | undefined;
    if (!values["skip-rclone"]) {
      const rcFirst = await runRclone("rclone sync, first run", []);
      const rcIdentical = await sameListing(
        source,
        mk(moto.endpoint, "media-rclone", "target", region, awsCreds),
      );
      const rcAgain = await runRclone("rclone sync, no-change run (--checksum)", ["--checksum"]);
      const rcDefault = values["rclone-default"]
        ? await runRclone("rclone sync, no-change run (default: modtime)", [])
        : undefined;
      const perObject = (r: { serverCpuSeconds: { s3rver: number; moto: number } }) =>
        ((r.serverCpuSeconds.s3rver + r.serverCpuSeconds.moto) / objects) * 1000;
      rclone = {
        version: "1.60 (Debian)",
        firstRun: {
          ...rcFirst,
          objectsPerSecond: r1(objects / rcFirst.seconds),
          MBps: r1(mb / rcFirst.seconds),
          serverCpuMsPerObject: r3(perObject(rcFirst)),
          identical: rcIdentical,
        },
        noChangeRun: { ...rcAgain, serverCpuMsPerObject: r3(perObject(rcAgain)) },
        ...(rcDefault ? { noChangeRunDefault: rcDefault } : {}),
      };
      ratios = {
        /** ≥ 1: at least rclone's throughput (whole processes; ours counts its start too) */
        firstRunThroughput: r2(rcFirst.seconds / oursFirst.seconds),
        /** ≥ 1: no slower than rclone's fastest no-change run (our step as it runs in the bot vs rclone's process) */
        noChangeSpeed: r2(rcAgain.seconds / oursAgain.stepSeconds),
        /** the same with our process start (Node and the SDK) counted in */
        noChangeSpeedWithProcessStart: r2(rcAgain.seconds / oursAgain.seconds),
        /** ≤ 1: the servers work no harder per object than under rclone */
        firstRunServerCpuPerObject: r2(perObject(oursFirst) / perObject(rcFirst)),
        noChangeServerCpuPerObject: r2(perObject(oursAgain) / Math.max(perObject(rcAgain), 1e-9)),
        firstRunPeakRss: r2(oursFirst.peakRssMB / rcFirst.peakRssMB),
      };
    }
    const perObject = (r: { serverCpuSeconds: { s3rver: number; moto: number } }) =>
      r3(((r.serverCpuSeconds.s3rver + r.serverCpuSeconds.moto) / objects) * 1000);
    const result = {
      benchmark: "storage",
      data: { objects, MB: r1(mb), spec: { ...spec }, concurrency },
      cutover: {
        firstRun: {
          ...oursFirst,
          objectsPerSecond: r1(objects / oursFirst.seconds),
          MBps: r1(mb / oursFirst.seconds),
          serverCpuMsPerObject: perObject(oursFirst),
          identical: oursIdentical,
        },
        noChangeRun: { ...oursAgain, serverCpuMsPerObject: perObject(oursAgain) },
      },
      ...(rclone ? { rclone } : {}),
      ...(ratios ? { ratios } : {}),
      targets: {
        firstRunAtLeastRclone: ratios ? ratios.firstRunThroughput >= 1 : null,
        noChangeNoSlowerThanRcloneFastest: ratios ? ratios.noChangeSpeed >= 1 : null,
        peakRssUnder200MB: oursFirst.peakRssMB < 200 && oursAgain.peakRssMB < 200,
        serverCpuPerObjectNoHigher: ratios ? ratios.firstRunServerCpuPerObject <= 1 : null,
      },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const s of stores) s.destroy();
    await Promise.allSettled(servers.map((s) => s.stop()));
    await rm(work, { recursive: true, force: true });
  }
}
