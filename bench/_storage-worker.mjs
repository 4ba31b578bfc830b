/**
 * One `storage.sync` run in a process of its own, so the benchmark measures its CPU and peak memory
 * apart from the servers' and its own. It runs the compiled step from dist/ (bench/run.ts builds it
 * first) on plain node with the product's own V8 settings (dist/runtime.js, as `npx cutover` has
 * them) and no other flags: the step as shipped. argv[2]: a JSON job (migration file text,
 * environment, data directory, step input). Prints one JSON line: the outcome's figures, request
 * counts, rusage.
 */
import "../dist/runtime.js";
import pino from "pino";
import { parseMigrationFile } from "../dist/config/load.js";
import { createStorageSyncStep } from "../dist/jobs/steps/storage/sync.js";
import { createPorts } from "../dist/ports.js";

const job = JSON.parse(process.argv[2] ?? "{}");
const log = pino({ level: "warn" }, pino.destination(2));
const file = parseMigrationFile(job.yaml, { checkEnv: false });
// the clients as the product builds them (src/ports.ts): the step opens its buckets through them
const step = createStorageSyncStep({
  env: job.env,
  ports: createPorts({ env: job.env }, file),
  file,
  dataDir: job.dataDir,
  log,
});
const checkpoints = new Map();
const peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const sampler = setInterval(() => {
  const u = process.memoryUsage();
  for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], u[k]);
}, 100);
sampler.unref();
let lastProgress = 0;
const started = performance.now();
const outcome = await step.run(step.parse(job.input), {
  log,
  run: { id: "bench", env: "bench", requestedBy: "bench", dryRun: false, options: {} },
  signal: new AbortController().signal,
  attempt: 1,
  progress: (p) => {
    if (performance.now() - lastProgress < 2_000) return;
    lastProgress = performance.now();
    process.stderr.write(`  ${p.message ?? ""}\n`);
  },
  checkpoint: {
    async get(key) {
      return checkpoints.get(key);
    },
    async set(key, value) {
      checkpoints.set(key, value);
    },
  },
});
const seconds = (performance.now() - started) / 1000;
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({
    seconds,
    figures: outcome.figures,
    summary: outcome.summary,
    maxRssKb: usage.maxRSS,
    // MiB, like the peak RSS the benchmark reads from /proc
    memoryPeaksMB: Object.fromEntries(
      Object.entries(peak).map(([k, v]) => [k, Math.round(v / 104857.6) / 10]),
    ),
    cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
  })}\n`,
);
