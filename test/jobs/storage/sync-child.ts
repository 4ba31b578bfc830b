/**
 * Runs `storage.sync` in a process of its own so a test can kill it with SIGKILL at any moment.
 * argv[2] is a JSON job: the migration file's text, the environment, the data directory, the
 * step's input and a file that holds the checkpoints (rewritten on every set, as a database row).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import pino from "pino";
import { parseMigrationFile } from "../../../src/config/load.js";
import { createStorageSyncStep } from "../../../src/jobs/steps/storage/sync.js";
import { createPorts } from "../../../src/ports.js";

interface Job {
  yaml: string;
  env: Record<string, string>;
  dataDir: string;
  input: unknown;
  checkpointFile: string;
}

const job = JSON.parse(process.argv[2] ?? "{}") as Job;
const read = (): Record<string, unknown> => {
  try {
    return JSON.parse(readFileSync(job.checkpointFile, "utf8")) as Record<string, unknown>;
  } catch {
    return {};
  }
};
const file = parseMigrationFile(job.yaml, { checkEnv: false });
const step = createStorageSyncStep({
  env: job.env,
  ports: createPorts({ env: job.env }, file),
  file,
  dataDir: job.dataDir,
  log: pino({ level: "silent" }),
});
const controller = new AbortController();
await step.run(step.parse(job.input), {
  log: pino({ level: "silent" }),
  run: { id: "child", env: "test", requestedBy: "U0TEST", dryRun: false, options: {} },
  signal: controller.signal,
  attempt: 1,
  progress: (p) => process.stdout.write(`${JSON.stringify(p)}\n`),
  checkpoint: {
    async get<T>(key: string) {
      return read()[key] as T | undefined;
    },
    async set(key, value) {
      const all = { ...read(), [key]: value };
      writeFileSync(`${job.checkpointFile}.tmp`, JSON.stringify(all));
      renameSync(`${job.checkpointFile}.tmp`, job.checkpointFile);
    },
  },
});
process.stdout.write("done\n");
