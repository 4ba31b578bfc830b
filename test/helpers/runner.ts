import pg from "pg";
import { PgBoss } from "pg-boss";
import pino from "pino";
import type { MigrationFile } from "../../src/config/schema.js";
import { Runner, type RunnerDeps } from "../../src/jobs/Runner.js";
import type { StepDefinition, StepRegistry } from "../../src/jobs/types.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";

export interface TestRunner {
  runner: Runner;
  db: Db;
  /** what the runner said into each run's thread, in order */
  notes: string[];
  stop(): Promise<void>;
}

/**
 * A Runner over a test state database (its own Prisma client, advisory-lock pool and pg-boss),
 * started, with a silent log and the notes it posts collected. `stop` stops and closes all
 * of it but leaves the database to its owner.
 */
export async function startTestRunner(opts: {
  url: string;
  file: MigrationFile;
  registry: StepRegistry | ((db: Db) => StepRegistry);
  extra?: Partial<Pick<RunnerDeps, "watchdogGraceMs" | "quietNoteMs">>;
}): Promise<TestRunner> {
  const db = createPrismaClient(opts.url);
  const pool = new pg.Pool({ connectionString: opts.url, max: 4 });
  const boss = new PgBoss({ connectionString: opts.url, max: 3 });
  await boss.start();
  const notes: string[] = [];
  const runner = new Runner({
    db,
    boss,
    pool,
    registry: typeof opts.registry === "function" ? opts.registry(db) : opts.registry,
    file: opts.file,
    log: pino({ level: "silent" }),
    observer: { runChanged: () => undefined, runNote: (_id, text) => notes.push(text) },
    ...opts.extra,
  });
  await runner.start({ sweepEveryMs: 60_000 });
  return {
    runner,
    db,
    notes,
    async stop() {
      await runner.stop();
      await boss.stop({ graceful: false });
      await pool.end();
      await db.$disconnect();
    },
  };
}

/** A mutating step type for runner tests: plans, runs and verifies trivially unless `impl` says otherwise. */
export function testStep(type: string, impl: Partial<StepDefinition<unknown>>): StepDefinition<unknown> {
  return {
    type,
    description: type,
    mutating: true,
    parse: (x) => x,
    plan: async () => ({ summary: `would do ${type}`, changes: [{ action: "create", target: type }] }),
    run: async () => ({ summary: "done" }),
    verify: async () => ({ ok: true, summary: "holds" }),
    ...impl,
  };
}
