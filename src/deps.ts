import pg from "pg";
import { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { type Clock, systemClock } from "./clock.js";
import { awsOptionsFromEnv } from "./cloud/aws-access.js";
import { type CloudflareClients, createCloudflare } from "./cloud/cloudflare.js";
import { COST_EXPLORER_REGION, type CostExplorerApi, createCostExplorer } from "./cloud/cost-explorer.js";
import type { MigrationFile } from "./config/schema.js";
import type { LiveDeps } from "./jobs/cutover/live.js";
import { RunEvents } from "./jobs/events.js";
import { createStepRegistry, liveDeps } from "./jobs/index.js";
import { Runner } from "./jobs/Runner.js";
import type { StepRegistry } from "./jobs/types.js";
import { Metrics } from "./metrics.js";
import { createPrismaClient, type Db } from "./store/client.js";
import { resolveStateDatabase, type StateDatabase } from "./store/database.js";
import { applyMigrations } from "./store/migrate.js";

/** Everything long-lived the app needs. The only place that builds clients and pools. */
export interface Deps {
  file: MigrationFile;
  log: Logger;
  state: StateDatabase;
  db: Db;
  pool: pg.Pool;
  boss: PgBoss;
  registry: StepRegistry;
  events: RunEvents;
  runner: Runner;
  cloudflare: CloudflareClients | undefined;
  /** AWS Cost Explorer (us-east-1, or AWS_ENDPOINT_URL_COST_EXPLORER) */
  costExplorer: CostExplorerApi;
  /** the bot's calendar (see src/clock.ts) */
  clock: Clock;
  metrics: Metrics;
  /** the database half of a live cutover and rollback; absent without the file's `replication` section */
  live: LiveDeps | undefined;
  close(): Promise<void>;
}

export interface DepsOptions {
  file: MigrationFile;
  log: Logger;
  databaseUrl: string | undefined;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  /** the calendar; default the machine's */
  clock?: Clock;
}

/**
 * Builds the state store (embedded PostgreSQL unless DATABASE_URL is set, migrations applied),
 * the job queue and the runbook engine. The caller starts the worker (`runner.start()`).
 */
export async function buildDeps(opts: DepsOptions): Promise<Deps> {
  const { file, log } = opts;
  const clock = opts.clock ?? systemClock;
  const state = await resolveStateDatabase({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir, log });
  const cleanup: Array<() => Promise<unknown>> = [() => state.stop()];
  const close = async () => {
    for (const fn of cleanup.reverse()) await fn().catch((err) => log.warn({ err }, "error while closing"));
    cleanup.length = 0;
  };
  try {
    const { applied } = await applyMigrations(state.url, { log });
    if (applied.length) log.info({ applied }, "applied state database migrations");
    const db = createPrismaClient(state.url);
    cleanup.push(() => db.$disconnect());
    const pool = new pg.Pool({ connectionString: state.url, max: 6 });
    pool.on("error", (err) => log.warn({ err: err.message }, "state database connection dropped"));
    cleanup.push(() => pool.end());
    const boss = new PgBoss({ connectionString: state.url, max: 4 });
    boss.on("error", (err: Error) => log.warn({ err: err.message }, "job queue error"));
    await boss.start();
    cleanup.push(() => boss.stop({ graceful: true, timeout: 10_000 }));
    const cloudflare = buildCloudflare(file, opts.env);
    const stepDeps = {
      env: opts.env,
      file,
      dataDir: opts.dataDir,
      log,
      db,
      cloudflare,
      clock,
    };
    const registry = createStepRegistry(stepDeps);
    const events = new RunEvents();
    const runner = new Runner({ db, boss, pool, registry, file, log, observer: events, clock });
    await runner.prepare();
    cleanup.push(() => runner.stop());
    return {
      file,
      log,
      state,
      db,
      pool,
      boss,
      registry,
      events,
      runner,
      cloudflare,
      costExplorer: createCostExplorer(awsOptionsFromEnv(opts.env, "COST_EXPLORER", COST_EXPLORER_REGION)),
      metrics: new Metrics(),
      clock,
      live: liveDeps(stepDeps),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * DNS and Pages over the official SDK, when the file switches DNS. Each uses the token of the
 * variable its own section names (`dns.apiTokenEnv`, `pages.apiTokenEnv`): one team keeps a
 * zone-scoped DNS token apart from the account's Pages token.
 */
export function buildCloudflare(file: MigrationFile, env: NodeJS.ProcessEnv): CloudflareClients | undefined {
  if (!file.dns) return undefined;
  const common = env.CLOUDFLARE_BASE_URL ? { baseURL: env.CLOUDFLARE_BASE_URL } : {};
  const dns = createCloudflare({ apiToken: env[file.dns.apiTokenEnv] ?? "", ...common }).dns;
  const pages = createCloudflare({
    apiToken: env[file.pages?.apiTokenEnv ?? file.dns.apiTokenEnv] ?? "",
    ...common,
    ...(file.pages ? { accountId: file.pages.accountId } : {}),
  }).pages;
  return { dns, pages };
}
