import { Writable } from "node:stream";
import { parseMigrationFile } from "../src/config/load.js";
import type { StepDeps } from "../src/jobs/catalogue.js";
import type { StepContext, StepDefinition } from "../src/jobs/define-step.js";
import { createLogger } from "../src/log.js";
import { createPorts } from "../src/ports.js";

/**
 * The product's database steps outside the Runner, for the benchmarks (bench/db.ts,
 * bench/live.ts): a migration file naming a source and a target URL, a quiet step context, and a
 * step run as the Runner runs it (run, then its own verify).
 */

/** StepDeps over two database URLs, with db.preflight, db.dump, db.restore and db.verify at `jobs`. */
export function dbStepDeps(opts: {
  sourceUrl: string;
  targetUrl: string;
  dataDir: string;
  jobs: number;
  /** the RDS engine version the file names; default "15" */
  engineVersion?: string;
  /** a live migration: the file's `replication` section (the apps' role), its environment (slot names) and db.replicate */
  replication?: { appRole: string; environment: string };
}): StepDeps {
  const env = {
    PATH: process.env.PATH ?? "",
    SOURCE_DATABASE_URL: opts.sourceUrl,
    TARGET_DATABASE_URL: opts.targetUrl,
    RDS_MASTER_PASSWORD: "unused",
  };
  const jobs = opts.jobs;
  const file = parseMigrationFile(
    `version: 1
project: bench
environment: ${opts.replication?.environment ?? "bench"}
slack: { channel: C0BENCH }
access: { operators: [U0BENCH], approvers: [U0OTHER], channels: [C0BENCH] }
source: { database: { urlEnv: SOURCE_DATABASE_URL } }
target:
  aws: { region: ap-southeast-1 }
  rds: { identifier: bench-db, engineVersion: "${opts.engineVersion ?? "15"}", instanceClass: db.t4g.micro, allocatedStorageGb: 20,
         ingress: { fromLightsailStaticIp: false }, masterUsername: bench, masterPasswordEnv: RDS_MASTER_PASSWORD,
         dbName: bench, urlEnv: TARGET_DATABASE_URL }
${
  opts.replication
    ? `replication: { appRoles: { source: ${opts.replication.appRole}, target: ${opts.replication.appRole} } }
`
    : ""
}runbook:
  phases:
    - id: data
      title: Data
      steps:
        - { id: db-preflight, uses: db.preflight }
        - { id: db-dump, uses: db.dump, with: { jobs: ${jobs} } }
        - { id: db-restore, uses: db.restore, with: { jobs: ${jobs} } }
        - { id: db-verify, uses: db.verify, with: { jobs: ${jobs} } }
${opts.replication ? "        - { id: db-replicate, uses: db.replicate }\n" : ""}`,
    { env },
  );
  return {
    env,
    ports: createPorts({ env }, file),
    file,
    dataDir: opts.dataDir,
    log: createLogger({ secrets: [], level: "warn", destination: process.stderr }),
  };
}

/** A step context that logs nothing, with checkpoints in memory. */
export function quietStepContext(): StepContext {
  const quiet = createLogger({
    secrets: [],
    level: "warn",
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  const store = new Map<string, unknown>();
  return {
    log: quiet,
    run: { id: "bench-0000", env: "bench", requestedBy: "bench", dryRun: false, options: {} },
    signal: new AbortController().signal,
    attempt: 1,
    progress: () => undefined,
    checkpoint: {
      get: async <T>(k: string) => store.get(k) as T | undefined,
      set: async (k, v) => {
        store.set(k, v);
      },
    },
  };
}

/** Runs a step as the Runner does outside a dry run: run, then its own verify; its figures. */
export async function runDbStep(
  step: StepDefinition<unknown>,
  raw: unknown,
): Promise<Record<string, unknown>> {
  const input = step.parse(raw);
  const ctx = quietStepContext();
  const outcome = await step.run(input, ctx);
  const verified = await step.verify(input, ctx);
  if (!verified.ok) throw new Error(`${step.type} did not verify: ${verified.summary}`);
  return outcome.figures ?? {};
}
