import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PgBoss } from "pg-boss";
import { SHARD_QUEUE } from "../../src/jobs/shards.js";
import { JOB_QUEUE_SUPERVISION } from "../../src/ports.js";

/**
 * Replicas as far as step parts go, for the tests that kill one: src/sandbox/shard-worker.ts in a
 * process of its own (the real deps on the state database, the runner's worker for parts only).
 */

const here = path.dirname(fileURLToPath(import.meta.url));

export interface ShardWorkerJob {
  yaml: string;
  env: Record<string, string>;
  dataDir: string;
  databaseUrl: string;
  workers: number;
}

/** Starts a worker process; resolves once it takes parts. Kill what it returns (and `children`). */
export function startShardWorker(job: ShardWorkerJob, children: ChildProcess[]): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(here, "../../src/sandbox/shard-worker.ts"), JSON.stringify(job)],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let err = "";
  child.stderr?.on("data", (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) resolve(child);
    });
    child.on("exit", (code) => reject(new Error(`worker exited with ${code}: ${err}`)));
  });
}

/**
 * pg-boss fails a dead worker's job once its heartbeat is 10 s old, at its supervisor's next
 * pass: `nudge()` runs that pass now (a supervisor of its own on the state database). It claims a
 * queue's monitor on the product's intervals (src/ports.ts): at pg-boss's default of 60 s its pass
 * skipped a queue the workers' own supervisors had claimed in the last minute.
 */
export async function shardSupervisor(
  databaseUrl: string,
): Promise<{ nudge(): Promise<void>; stop(): Promise<void> }> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    max: 2,
    supervise: false,
    schedule: false,
    ...JOB_QUEUE_SUPERVISION,
  });
  await boss.start();
  return {
    nudge: async () => {
      await boss.supervise(SHARD_QUEUE);
    },
    stop: () => boss.stop({ graceful: false }),
  };
}
