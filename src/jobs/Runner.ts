import type pg from "pg";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { MigrationFile } from "../config/schema.js";
import type { Db } from "../store/client.js";
import type { CreateRunResult } from "../store/runs.js";
import { stepRecords } from "../store/steps.js";
import type { StepRegistry } from "./define-step.js";
import type { AbortReason, RunObserver } from "./events.js";
import { LockService } from "./locks.js";
import { RUN_QUEUE, RunQueue, type RunRequest } from "./run-queue.js";
import type { ResolvedTarget } from "./runbook.js";
import { prepareShardQueue, shardPool, workShards } from "./shards.js";
import { StepExecutor } from "./step-executor.js";

export type { RunAlert, RunObserver } from "./events.js";
export { RUN_QUEUE, type RunRequest };

export interface RunnerDeps {
  db: Db;
  boss: PgBoss;
  /** a pool on the state database for the advisory locks (runs, rollbacks) */
  pool: pg.Pool;
  registry: StepRegistry;
  file: MigrationFile;
  log: Logger;
  observer: RunObserver;
  /** how long a step stopped by its watchdog has to give up before the run moves on (10 s) */
  watchdogGraceMs?: number;
  /** after how long without progress a step's thread hears that it is still waiting (60 s) */
  quietNoteMs?: number;
  /** the calendar runs and steps are stamped with, and the back-off waits on (default the machine's) */
  clock?: Clock;
}

/**
 * The runbook engine, put together: the run queue (submit, cancel, the recovery sweep, the
 * worker), the step executor (attempts, checkpoints, progress), the parts of sharded steps, and
 * the advisory locks they and `/rollback` hold (`locks`).
 */
export class Runner {
  readonly locks: LockService;
  private readonly queue: RunQueue;
  private readonly deps: RunnerDeps;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** aborts the parts this process works when it stops; their jobs are retried elsewhere */
  private readonly shardStop = new AbortController();

  constructor(deps: RunnerDeps) {
    this.deps = deps;
    const clock = deps.clock ?? systemClock;
    this.locks = new LockService(deps.pool, deps.log);
    const steps = new StepExecutor({
      records: stepRecords(deps.db, clock),
      registry: deps.registry,
      file: deps.file,
      log: deps.log,
      observer: deps.observer,
      clock,
      shards: (executionId, signal, progress) => shardPool(deps, executionId, signal, progress),
      ...(deps.watchdogGraceMs === undefined ? {} : { watchdogGraceMs: deps.watchdogGraceMs }),
      ...(deps.quietNoteMs === undefined ? {} : { quietNoteMs: deps.quietNoteMs }),
    });
    this.queue = new RunQueue({ ...deps, locks: this.locks, steps, clock });
  }

  /** Creates the queues runs and their parts travel on; needed before `submit`, also where no worker runs. */
  async prepare(): Promise<void> {
    await this.queue.prepare();
    await prepareShardQueue(this.deps.boss);
  }

  /**
   * Takes parts of sharded steps (a bucket sync's key ranges) from the queue, `concurrency` at once;
   * `start` does it too. The terminal front end calls it alone, to work the parts of its own runs.
   */
  async workShards(concurrency: number): Promise<void> {
    await workShards(this.deps, { concurrency, signal: this.shardStop.signal });
  }

  /** Starts the worker, the worker for step parts and the recovery sweep. */
  async start(
    opts: { concurrency?: number; shardConcurrency?: number; sweepEveryMs?: number } = {},
  ): Promise<void> {
    await this.prepare();
    await this.queue.work(opts.concurrency ?? 2);
    const shards = opts.shardConcurrency ?? this.deps.file.engine.shardWorkers;
    if (shards > 0) await this.workShards(shards);
    await this.queue.sweep();
    // Other replicas die too: their runs are found by the next sweep here.
    this.sweepTimer = setInterval(() => {
      this.queue.sweep().catch((err) => this.deps.log.error({ err }, "recovery sweep failed"));
    }, opts.sweepEveryMs ?? 10_000);
    this.sweepTimer.unref();
  }

  /** Stops taking work and interrupts running steps; they resume from their checkpoints later. */
  async stop(): Promise<void> {
    this.shardStop.abort({ kind: "shutdown" } satisfies AbortReason);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.queue.stop();
  }

  /** See {@link RunQueue.submit}. */
  submit(req: RunRequest): Promise<CreateRunResult & { kind: ResolvedTarget["kind"]; name: string }> {
    return this.queue.submit(req);
  }

  /** See {@link RunQueue.cancel}. */
  cancel(runId: string, by: string): Promise<"cancelled" | "cancelling" | "finished"> {
    return this.queue.cancel(runId, by);
  }

  /** See {@link RunQueue.sweep}. */
  sweep(): Promise<number> {
    return this.queue.sweep();
  }

  /** Executes (or resumes) one run here. Safe to call for any run id any number of times. */
  execute(runId: string): Promise<void> {
    return this.queue.execute(runId);
  }
}
