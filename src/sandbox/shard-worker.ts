/**
 * A replica as far as sharded steps go (a bucket sync's key ranges): the real deps (state
 * database, pg-boss, the step registry) and the runner's worker for step parts only, nothing for
 * Slack. The shards test runs two and kills one; the scale bench adds workers with it.
 * argv[2]: JSON {yaml, env, dataDir, databaseUrl, workers}. Prints "ready" once it takes parts.
 */
import pino from "pino";
import { parseMigrationFile } from "../config/load.js";
import { buildDeps } from "../deps.js";

const job = JSON.parse(process.argv[2] ?? "{}") as {
  yaml: string;
  env: Record<string, string>;
  dataDir: string;
  databaseUrl: string;
  workers: number;
};
const deps = await buildDeps({
  file: parseMigrationFile(job.yaml, { checkEnv: false }),
  log: pino({ level: "silent" }),
  databaseUrl: job.databaseUrl,
  dataDir: job.dataDir,
  env: job.env,
});
await deps.runner.workShards(job.workers);
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  deps.close().finally(() => process.exit(0));
});
