import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createObjectStore } from "../src/cloud/object-store.js";
import { DEFAULT_SIZE_MB } from "../src/rehearsal/args.js";
import { botEnv, PEOPLE, CHANNEL as REHEARSAL_CHANNEL, rehearsalConfig } from "../src/rehearsal/config.js";
import { mediaSpecFor } from "../src/rehearsal/rehearse.js";
import { startWorld } from "../src/rehearsal/world.js";
import { spawnServer } from "../src/sandbox/child-bot.js";
import { FakeSlack } from "../src/sandbox/FakeSlack.js";
import { fillBucket } from "../src/sandbox/media.js";
import { S3RVER_CREDENTIALS, type S3Server, startMoto, startS3rver } from "../src/sandbox/s3-servers.js";
import { generateShopDatabase } from "../src/sandbox/shop-data.js";
import { sendSlashCommand } from "../src/sandbox/slack-sender.js";
import { CLUSTER_LOCATION_FILE } from "../src/store/database.js";
import { createBenchBuckets, storageEnv, storageMigration } from "./_buckets.js";
import { benchMigrationFile } from "./_runbooks.js";
import { SHIPPED_BOT, startShippedBot as startBot, stopShippedBot as stop } from "./_shipped-bot.js";

/**
 * `npm run bench -- footprint [--idle-seconds 30] [--commands 200] [--objects 5000] [--data-mb 3]
 *   [--skip-storage] [--skip-data]`
 *
 * The bot as a team deploys it: `node dist/app.js` (what `npm start`, the systemd unit and the
 * Supervisor program run) on the embedded default (no DATABASE_URL, a fresh data directory),
 * and beside it, in the same run and on the same node, a bare Bolt app (bench/_anchor.mjs).
 * - start: spawn → the first 200 from GET /healthz, with a cold data directory (initdb included)
 *   and again with the existing one (the median of three restarts);
 * - idle RSS after `--idle-seconds` for both, summed over each process tree: the bot's node
 *   process(es), and the embedded PostgreSQL apart (its RSS sum, and its PSS: its backends share
 *   their buffers, so the RSS sum counts them several times);
 * - RSS after `--commands` signed `/migrate status` commands to each (the bot's replies awaited
 *   at the fake Slack's response_url);
 * - the data phase at the rehearsal's size (`--data-mb`, default the rehearsal's): the bot as shipped
 *   against the rehearsal's local world, `/migrate run prepare` then `/migrate run data` (pg_dump,
 *   pg_restore, logical replication, storage sync and verify); its RSS after and its peak;
 * - `npx cutover verify storage` of `--objects` objects (s3rver as R2, moto as S3, filled and then
 *   copied by `npx cutover run storage-sync`): the peak RSS of the command's node process.
 * Targets (the issue's): idle RSS ≤ 1.5 × the bare Bolt app; healthy within 2 s with an existing
 * data directory; the storage verify of 5,000 objects under 200 MB. One JSON object on stdout.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const say = (msg: string) => process.stderr.write(`[bench footprint] ${msg}\n`);
const OPERATOR = "U0OPERATOR";
const CHANNEL = "C0MIGRATE";
const r1 = (v: number) => Math.round(v * 10) / 10;
const r2 = (v: number) => Math.round(v * 100) / 100;

const TARGETS = { idleRssRatio: 1.5, warmStartSeconds: 2, storageVerifyPeakMB: 200 };

// ---- processes and their memory, from /proc ----------------------------------------------------

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
}

async function allProcesses(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    if (!stat) continue;
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    out.push({ pid: Number(name), ppid, comm });
  }
  return out;
}

/** The process and all its descendants. */
async function tree(root: number): Promise<ProcInfo[]> {
  const procs = await allProcesses();
  const found: ProcInfo[] = [];
  const walk = (pid: number) => {
    for (const p of procs) {
      if (p.pid === pid) found.push(p);
      if (p.ppid === pid) walk(p.pid);
    }
  };
  walk(root);
  return [...new Map(found.map((p) => [p.pid, p])).values()];
}

async function statusKb(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0);
}

async function pssKb(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0);
}

interface TreeMemory {
  /** RSS of the node process(es) of the tree (the bot itself; npm and sh when started by npm) */
  nodeRssMB: number;
  /** the embedded PostgreSQL's processes: how many, their RSS sum and PSS sum */
  postgres: { processes: number; rssMB: number; pssMB: number };
  /** everything in the tree, RSS summed */
  totalRssMB: number;
}

async function treeMemory(root: number): Promise<TreeMemory> {
  let node = 0;
  let pgRss = 0;
  let pgPss = 0;
  let pgCount = 0;
  let total = 0;
  for (const p of await tree(root)) {
    const rss = await statusKb(p.pid, "VmRSS");
    total += rss;
    if (p.comm === "postgres") {
      pgCount++;
      pgRss += rss;
      pgPss += await pssKb(p.pid);
    } else node += rss;
  }
  return {
    nodeRssMB: r1(node / 1024),
    postgres: { processes: pgCount, rssMB: r1(pgRss / 1024), pssMB: r1(pgPss / 1024) },
    totalRssMB: r1(total / 1024),
  };
}

// ---- the bot and the anchor --------------------------------------------------------------------

function migrationFile(): string {
  return benchMigrationFile({ project: "footprint", environment: "footprint" });
}

async function sendCommands(
  fake: FakeSlack,
  url: string,
  signingSecret: string,
  n: number,
  label: string,
  awaitReplies: boolean,
): Promise<{ acked: number; replies: number }> {
  const ids: string[] = [];
  let acked = 0;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const id = `${label}-${next++}`;
      const responseUrl = awaitReplies
        ? fake.responseUrl(id, { channel: CHANNEL, user: OPERATOR })
        : undefined;
      const res = await sendSlashCommand({
        url,
        signingSecret,
        command: "/migrate",
        text: "status",
        userId: OPERATOR,
        channelId: CHANNEL,
        ...(responseUrl ? { responseUrl } : {}),
        timeoutMs: 10_000,
      }).catch(() => undefined);
      if (res?.status === 200) {
        acked++;
        ids.push(id);
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  if (!awaitReplies) return { acked, replies: 0 };
  const replied = () =>
    new Set(
      fake
        .calls("response_url")
        .map((c) => String(c.args.response_url_id))
        .filter((id) => id.startsWith(`${label}-`)),
    ).size;
  const deadline = Date.now() + 60_000;
  while (replied() < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return { acked, replies: replied() };
}

// ---- npx cutover verify storage -----------------------------------------------------------------

interface Measured {
  code: number | null;
  seconds: number;
  /** the node process's own peak (VmHWM), sampled until it exits, and getrusage's */
  peakRssMB: number;
  out: string;
}

/** Runs `node bin/cutover.js …` (what `npx cutover …` runs) and samples its node process's peak RSS. */
async function cutoverCli(args: string[], env: NodeJS.ProcessEnv): Promise<Measured> {
  const started = performance.now();
  const child = spawn(process.execPath, ["bin/cutover.js", ...args], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out = (out + d).slice(-20_000);
  });
  child.stderr?.on("data", (d) => {
    out = (out + d).slice(-20_000);
  });
  let peak = 0;
  const timer = setInterval(() => {
    if (child.pid) void statusKb(child.pid, "VmHWM").then((kb) => (peak = Math.max(peak, kb)));
  }, 50);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  clearInterval(timer);
  return { code, seconds: r2((performance.now() - started) / 1000), peakRssMB: r1(peak / 1024), out };
}

async function storageVerify(objects: number, work: string) {
  const region = "ap-southeast-1";
  const servers: S3Server[] = [];
  try {
    say("storage: starting s3rver (as R2) and moto (as S3)…");
    const [r2srv, moto] = await Promise.all([
      startS3rver({ directory: path.join(work, "s3rver") }),
      startMoto(),
    ]);
    servers.push(r2srv, moto);
    const bucket = `footprint-${randomBytes(4).toString("hex")}`;
    await createBenchBuckets(r2srv, moto, region, [bucket]);
    const source = createObjectStore({
      side: "source",
      provider: "R2",
      bucket: "media",
      region: "us-east-1",
      endpoint: r2srv.endpoint,
      credentials: { ...S3RVER_CREDENTIALS },
      credentialSource: "bench",
      writeChecksums: false,
    });
    say(`storage: filling s3rver with ${objects} objects of 2–200 KB…`);
    const filled = await fillBucket(
      source,
      { count: objects, minBytes: 2_000, maxBytes: 200_000, seed: 42 },
      { concurrency: 8 },
    );
    source.destroy();
    const dir = path.join(work, "cli");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(dir, "migration.yml"),
      `version: 1
project: footprint
slack: { channel: ${CHANNEL} }
access: { operators: [${OPERATOR}], approvers: [U0APPROVER], channels: [${CHANNEL}], localOperator: bench-terminal }
digest: { enabled: false }
${storageMigration({
  r2: r2srv,
  bucket,
  region,
  steps: [
    { id: "storage-sync", uses: "storage.sync" },
    { id: "storage-verify", uses: "storage.verify" },
  ],
})}`,
    );
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? dir,
      ...storageEnv(moto),
      CUTOVER_CONFIG: path.join(dir, "migration.yml"),
      CUTOVER_DATA_DIR: dir, // the embedded default here too
    };
    say("storage: npx cutover run storage-sync…");
    const sync = await cutoverCli(["run", "storage-sync"], env);
    if (sync.code !== 0) throw new Error(`npx cutover run storage-sync exited ${sync.code}:\n${sync.out}`);
    say(`storage: copied in ${sync.seconds} s (peak ${sync.peakRssMB} MB); npx cutover verify storage…`);
    const verify = await cutoverCli(["verify", "storage"], env);
    if (verify.code !== 0)
      throw new Error(`npx cutover verify storage exited ${verify.code}:\n${verify.out}`);
    say(`storage: verified in ${verify.seconds} s, peak ${verify.peakRssMB} MB`);
    return {
      objects: filled.objects,
      MB: r1(filled.bytes / 1e6),
      command: "node bin/cutover.js verify storage (npx cutover verify storage), embedded state database",
      verify: { seconds: verify.seconds, peakRssMB: verify.peakRssMB, exitCode: verify.code },
      syncBefore: { seconds: sync.seconds, peakRssMB: sync.peakRssMB },
    };
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

// ---- the data phase, as the rehearsal runs it ------------------------------------------------

/** `cutover_runs{status=…}` and `cutover_env_locked` from the bot's /metrics. */
async function runGauges(port: number): Promise<{ runs: Record<string, number>; locked: number }> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(
    (r) => r.text(),
  );
  const runs: Record<string, number> = {};
  for (const m of text.matchAll(/^cutover_runs\{status="([^"]+)"\} (\d+)$/gm)) runs[m[1]!] = Number(m[2]);
  const locked = Number(/^cutover_env_locked\{[^}]*\} (\d+)$/m.exec(text)?.[1] ?? 0);
  return { runs, locked };
}

/**
 * `/migrate run <phase>` from the operator, then waits (on /metrics) until the run has ended and
 * says how: the bot answers the command at once and works in its own queue.
 */
async function runPhase(
  port: number,
  signingSecret: string,
  phase: string,
  timeoutMs: number,
): Promise<string> {
  const before = await runGauges(port);
  const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  const res = await sendSlashCommand({
    url: `http://127.0.0.1:${port}/slack/events`,
    signingSecret,
    command: "/migrate",
    text: `run ${phase}`,
    userId: PEOPLE.operator.id,
    channelId: REHEARSAL_CHANNEL,
    timeoutMs: 10_000,
  });
  if (res.status !== 200) throw new Error(`/migrate run ${phase} answered ${res.status}`);
  const deadline = Date.now() + timeoutMs;
  let started = false;
  for (;;) {
    const now = await runGauges(port);
    if (total(now.runs) > total(before.runs)) started = true;
    if (started && now.locked === 0) {
      const grew = Object.keys(now.runs).filter((k) => (now.runs[k] ?? 0) > (before.runs[k] ?? 0));
      return grew.join(",") || "unknown";
    }
    if (Date.now() > deadline)
      throw new Error(`/migrate run ${phase} had not ended after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The bot as shipped (`node dist/app.js`, embedded state database) against the rehearsal's local
 * world at the rehearsal's size: `run prepare` (the target's RDS, bucket and server), then
 * `run data` (preflight, pg_dump, pg_restore, logical replication, storage sync and verify, the
 * CDN check), its node process's RSS after the phase and its peak (VmHWM) over both.
 */
async function dataPhase(work: string, sizeMb: number) {
  const dir = path.join(work, "rehearsal");
  await mkdir(dir, { recursive: true });
  const world = await startWorld({
    dir,
    say: (line) => say(`world: ${line}`),
    oldIp: "203.0.113.10",
    pagesVars: {
      NEXT_PUBLIC_API_URL: "https://gogojap.zeabur.app",
      NEXT_PUBLIC_CDN_URL: "https://pub-0123456789abcdef0123456789abcdef.r2.dev",
    },
  });
  let bot: ChildProcess | undefined;
  try {
    const spec = mediaSpecFor(sizeMb);
    say(`data phase: a ${sizeMb} MB shop database and ${spec.count} media objects…`);
    await Promise.all([
      generateShopDatabase(world.db.source, { sizeMb, seed: 7, parallel: 2 }),
      fillBucket(world.sourceStore, spec, { concurrency: 8 }),
    ]);
    const config = await rehearsalConfig(world);
    const configPath = path.join(dir, "migration.yml");
    await writeFile(configPath, config.yaml);
    const signingSecret = randomBytes(16).toString("hex");
    const env = botEnv(world, {
      configPath,
      dataDir: path.join(dir, "bot"),
      botToken: `xoxb-bench-${randomBytes(8).toString("hex")}`,
      signingSecret,
    });
    delete env.DATABASE_URL; // the embedded default, as in the rest of this benchmark
    const started = await startBot(env);
    bot = started.child;
    const before = await treeMemory(bot.pid!);
    const phases: Record<string, { outcome: string; seconds: number }> = {};
    for (const phase of ["prepare", "data"]) {
      const t0 = performance.now();
      say(`data phase: /migrate run ${phase}…`);
      const outcome = await runPhase(started.port, signingSecret, phase, 15 * 60_000);
      phases[phase] = { outcome, seconds: r1((performance.now() - t0) / 1000) };
      say(`data phase: ${phase} ended ${outcome} in ${phases[phase].seconds} s`);
    }
    const after = await treeMemory(bot.pid!);
    const peakMB = r1((await statusKb(bot.pid!, "VmHWM")) / 1024);
    return {
      sizeMb,
      mediaObjects: spec.count,
      runs: phases,
      succeeded: Object.values(phases).every((p) => p.outcome === "succeeded"),
      bot: {
        beforeRssMB: before.nodeRssMB,
        afterRssMB: after.nodeRssMB,
        peakRssMB: peakMB,
        postgres: after.postgres,
      },
    };
  } finally {
    await stop(bot);
    await world.stop();
  }
}

// ---- the run -----------------------------------------------------------------------------------

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      "idle-seconds": { type: "string", default: "30" },
      commands: { type: "string", default: "200" },
      objects: { type: "string", default: "5000" },
      "skip-storage": { type: "boolean", default: false },
      "skip-data": { type: "boolean", default: false },
      "data-mb": { type: "string", default: String(DEFAULT_SIZE_MB) },
    },
  });
  const idleSeconds = Number(values["idle-seconds"]);
  const commands = Number(values.commands);
  const fake = new FakeSlack();
  await fake.start();
  // mkdtemp: a 0700 folder owned by whoever runs this; as root the embedded PostgreSQL (which
  // runs as `postgres`) finds a place it can reach by itself (src/store/database.ts).
  const work = await mkdtemp(path.join(tmpdir(), "cutover-bench-footprint-"));
  const dataDir = path.join(work, "data");
  const signingSecret = randomBytes(16).toString("hex");
  const configPath = path.join(work, "migration.yml");
  await writeFile(configPath, migrationFile());
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: `xoxb-bench-${randomBytes(8).toString("hex")}`,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: fake.apiUrl,
    CUTOVER_CONFIG: configPath,
    CUTOVER_DATA_DIR: dataDir,
    PROBE_DATABASE_URL: "postgres://bench@127.0.0.1:5432/unused",
  };
  let bot: ChildProcess | undefined;
  let anchor: ChildProcess | undefined;
  try {
    // 1. Start: cold (a fresh data directory: initdb), then three restarts on the existing one.
    say(`starting the bot cold (node ${SHIPPED_BOT}, embedded PostgreSQL under ${dataDir})…`);
    const cold = await startBot(env);
    await stop(cold.child);
    const warm: number[] = [];
    let botPort = 0;
    for (let i = 0; i < 3; i++) {
      const w = await startBot(env);
      warm.push(w.seconds);
      if (i < 2) await stop(w.child);
      else [bot, botPort] = [w.child, w.port];
    }
    const warmMedian = [...warm].sort((a, b) => a - b)[1]!;
    say(`healthy: cold ${r2(cold.seconds)} s, warm ${warm.map(r2).join(" / ")} s`);
    const anchorStarted = performance.now();
    const a = await spawnServer(
      ["bench/_anchor.mjs"],
      { ...env, PORT: "0" },
      {
        portLine: /\{"port":(\d+)\}/,
        label: "the bare Bolt app",
      },
    );
    anchor = a.child;
    const anchorSeconds = (performance.now() - anchorStarted) / 1000;

    // 2. Idle, both side by side.
    say(`idle for ${idleSeconds} s…`);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const botIdle = await treeMemory(bot!.pid!);
    const anchorIdle = await treeMemory(anchor.pid!);
    say(
      `idle: bot ${botIdle.nodeRssMB} MB (+ PostgreSQL ${botIdle.postgres.pssMB} MB PSS), bare Bolt ${anchorIdle.nodeRssMB} MB`,
    );

    // 3. Commands.
    say(`${commands} signed /migrate status to each…`);
    const botCmds = await sendCommands(
      fake,
      `http://127.0.0.1:${botPort}/slack/events`,
      signingSecret,
      commands,
      "bot",
      true,
    );
    const anchorCmds = await sendCommands(
      fake,
      `http://127.0.0.1:${a.port}/slack/events`,
      signingSecret,
      commands,
      "anchor",
      false,
    );
    const botBusy = await treeMemory(bot!.pid!);
    const anchorBusy = await treeMemory(anchor.pid!);
    say(`after commands: bot ${botBusy.nodeRssMB} MB, bare Bolt ${anchorBusy.nodeRssMB} MB`);
    await stop(anchor);
    anchor = undefined;
    await stop(bot);
    bot = undefined;

    // 4. The data phase at the rehearsal's size, through the bot as shipped.
    const data = values["skip-data"] ? undefined : await dataPhase(work, Number(values["data-mb"]));

    // 5. Storage verify through the command users run.
    const storage = values["skip-storage"] ? undefined : await storageVerify(Number(values.objects), work);

    const idleRatio = r2(botIdle.nodeRssMB / anchorIdle.nodeRssMB);
    const result = {
      benchmark: "footprint",
      node: process.version,
      bot: `node ${SHIPPED_BOT} (what npm start, the systemd unit and the Supervisor program run), embedded PostgreSQL`,
      anchor: "bare Bolt App, HTTPReceiver, /migrate acks (bench/_anchor.mjs), same node",
      start: {
        coldDataDirSeconds: r2(cold.seconds),
        existingDataDirSeconds: warm.map(r2),
        existingDataDirMedianSeconds: r2(warmMedian),
        anchorToListeningSeconds: r2(anchorSeconds),
      },
      idle: { afterSeconds: idleSeconds, bot: botIdle, anchor: anchorIdle },
      afterCommands: {
        commands,
        bot: { ...botBusy, acked: botCmds.acked, replies: botCmds.replies },
        anchor: { ...anchorBusy, acked: anchorCmds.acked },
      },
      ratios: {
        idleRss: idleRatio,
        idleRssWithPostgresPss: r2((botIdle.nodeRssMB + botIdle.postgres.pssMB) / anchorIdle.nodeRssMB),
        afterCommandsRss: r2(botBusy.nodeRssMB / anchorBusy.nodeRssMB),
        ...(data
          ? {
              afterDataPhaseRss: r2(data.bot.afterRssMB / anchorIdle.nodeRssMB),
              dataPhasePeakRss: r2(data.bot.peakRssMB / anchorIdle.nodeRssMB),
            }
          : {}),
      },
      ...(data ? { dataPhase: data } : {}),
      ...(storage ? { storage } : {}),
      targets: {
        idleRssAtMost1_5xBareBolt: idleRatio <= TARGETS.idleRssRatio,
        healthyWithin2sExistingDataDir: warmMedian <= TARGETS.warmStartSeconds,
        storageVerify5000Under200MB: storage
          ? storage.objects >= 5000 && storage.verify.peakRssMB < TARGETS.storageVerifyPeakMB
          : null,
      },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await stop(anchor);
    await stop(bot);
    await fake.stop();
    // run as root, the clusters of the 0700 data directories live under ROOT_CLUSTER_BASE
    for (const dir of [dataDir, path.join(work, "cli")]) {
      const moved = await readFile(path.join(dir, CLUSTER_LOCATION_FILE), "utf8").catch(() => "");
      const cluster = moved.split("\n")[0];
      if (cluster) await rm(path.dirname(cluster), { recursive: true, force: true });
    }
    await rm(work, { recursive: true, force: true });
  }
}
