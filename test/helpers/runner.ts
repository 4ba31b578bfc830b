import pg from "pg";
import { PgBoss } from "pg-boss";
import pino from "pino";
import { parseMigrationFile } from "../../src/config/load.js";
import type { MigrationFile } from "../../src/config/schema.js";
import type { StepDefinition, StepRegistry } from "../../src/jobs/define-step.js";
import { Runner, type RunnerDeps } from "../../src/jobs/Runner.js";
import type { RunRequest } from "../../src/jobs/run-queue.js";
import { JOB_QUEUE_SUPERVISION } from "../../src/ports.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "./db.js";

/** What a runner test's migration file says beyond the head every one of them shares. */
export interface RunnerFileOptions {
  /** the phases: YAML list items, each `    - id: …` (four spaces in, under `runbook.phases`) */
  phases: string;
  /** `unit` unless said */
  environment?: string;
  /** the `engine` section, left out (the defaults) unless given */
  engine?: { attempts: number; backoffMs: number; stallSeconds?: number };
  /** further top-level sections (e.g. `verification:`), as YAML */
  sections?: string;
}

/**
 * The YAML of a runner test's migration file: project `t`, channel C0MIGRATE, operator U0OP and
 * approver U0AP, with the test's own engine, sections and phases.
 */
export function runnerYaml(o: RunnerFileOptions): string {
  const engine = o.engine
    ? `engine: { ${Object.entries(o.engine)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ")} }\n`
    : "";
  return `version: 1
project: t
environment: ${o.environment ?? "unit"}
slack: { channel: C0MIGRATE }
access: { operators: [U0OP], approvers: [U0AP], channels: [C0MIGRATE] }
${engine}${o.sections ?? ""}runbook:
  phases:
${o.phases}`;
}

/** {@link runnerYaml} parsed (without checking the environment variables it names). */
export function runnerFile(o: RunnerFileOptions): MigrationFile {
  return parseMigrationFile(runnerYaml(o), { checkEnv: false });
}

/** A request to run `target` as U0OP would send it from C0MIGRATE: not a dry run, no idempotency key. */
export function runRequest(target: string, extra: Partial<RunRequest> = {}): RunRequest {
  return {
    target,
    dryRun: false,
    requestedBy: "U0OP",
    channel: "C0MIGRATE",
    idempotencyKey: null,
    ...extra,
  };
}

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
  // the product's supervision intervals, so a test hands work over as the bot does
  const boss = new PgBoss({ connectionString: opts.url, max: 3, ...JOB_QUEUE_SUPERVISION });
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

/** A {@link startTestRunner} over a fresh test database of its own, which `stop` drops as well. */
export async function startRunnerOnNewDb(
  label: string,
  opts: Omit<Parameters<typeof startTestRunner>[0], "url">,
): Promise<TestRunner & { state: TestDatabase }> {
  const state = await createTestDatabase(label);
  const tr = await startTestRunner({ url: state.url, ...opts }).catch(async (err) => {
    await state.drop();
    throw err;
  });
  return {
    ...tr,
    state,
    async stop() {
      await tr.stop();
      await state.drop();
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
