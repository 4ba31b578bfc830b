import type pg from "pg";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { type Clock, systemClock } from "./clock.js";
import type { CloudflareClients } from "./cloud/cloudflare.js";
import type { CostExplorerApi } from "./cloud/cost-explorer.js";
import type { MigrationFile } from "./config/schema.js";
import { createStepRegistry, liveDeps } from "./jobs/catalogue.js";
import type { LiveDeps } from "./jobs/cutover/live.js";
import type { StepRegistry } from "./jobs/define-step.js";
import { RunEvents } from "./jobs/events.js";
import { Runner } from "./jobs/Runner.js";
import { Metrics } from "./metrics.js";
import { createPorts, type Ports } from "./ports.js";
import type { Db } from "./store/client.js";
import { resolveStateDatabase, type StateDatabase } from "./store/database.js";
import { applyMigrations } from "./store/migrate.js";

export { buildCloudflare } from "./ports.js";

/** Everything long-lived the app needs. Its clients and its one pool come from `ports` (src/ports.ts). */
export interface Deps {
  file: MigrationFile;
  log: Logger;
  state: StateDatabase;
  /** every outside client, built once */
  ports: Ports;
  db: Db;
  /** the state database's one pool: Prisma, the job queue and the run locks share it */
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
    const ports = createPorts({ env: opts.env, clock, state: { url: state.url, log } }, file);
    cleanup.push(async () => ports.close());
    const stateDb = ports.state;
    if (!stateDb) throw new Error("createPorts built no state pool though it was given the state URL");
    cleanup.push(() => stateDb.close());
    const { db, pool, boss } = stateDb;
    await boss.start();
    cleanup.push(() => boss.stop({ graceful: true, timeout: 10_000 }));
    const cloudflare = ports.cloudflare;
    const stepDeps = {
      env: opts.env,
      ports,
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
      ports,
      db,
      pool,
      boss,
      registry,
      events,
      runner,
      cloudflare,
      costExplorer: ports.costExplorer(),
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
