import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { MigrationFile } from "../config/schema.js";
import { CancelledError, CutoverError, describeError, ErrorCode, NOT_RETRYABLE } from "../errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { type AuditEntry, audit } from "../store/audit.js";
import type { Db } from "../store/client.js";
import { type CreateRunResult, createRun, isFinished, loadRun } from "../store/runs.js";
import { STEP_TIME_LIMITS } from "./catalogue.js";
import { failedNote, retryNote, succeededNote } from "./notes.js";
import { findStep, type ResolvedTarget, resolveTarget } from "./runbook.js";
import { checkpointStore, prepareShardQueue, shardPool, workShards } from "./shards.js";
import type { Progress, StepContext, StepDefinition, StepRegistry, StepReport } from "./types.js";
import { borrowCheckpoints, isUndoRun, undoing, undoTarget } from "./undo.js";
import { StepWatchdog } from "./watchdog.js";

export const RUN_QUEUE = "cutover-run";

/** What the runner tells the outside (the Slack progress message, the terminal, metrics). */
export interface RunObserver {
  runChanged(runId: string): void;
  /** a line worth a message in the run's thread: a step finished, failed or is retrying */
  runNote(runId: string, text: string): void;
  /** something the whole channel must see now, with a rollback button when `rollback` is set */
  runAlert?(runId: string, alert: RunAlert): void;
  /** a step's report (Block Kit) for the run's thread */
  runReport?(runId: string, report: StepReport): void;
}

export interface RunAlert {
  text: string;
  rollback: boolean;
}

export interface RunnerDeps {
  db: Db;
  boss: PgBoss;
  /** a pool on the state database for the per-run advisory locks */
  pool: pg.Pool;
  registry: StepRegistry;
  file: MigrationFile;
  log: Logger;
  observer: RunObserver;
  /** how long a step stopped by its watchdog has to give up before the run moves on (10 s) */
  watchdogGraceMs?: number;
  /** after how long without progress a step's thread hears that it is still waiting (60 s) */
  quietNoteMs?: number;
  /** the calendar runs and steps are stamped with (default the machine's) */
  clock?: Clock;
}

export interface RunRequest {
  target: string;
  dryRun: boolean;
  requestedBy: string;
  channel: string | null;
  idempotencyKey: string | null;
  options?: Record<string, unknown>;
}

type AbortReason = { kind: "cancel"; by: string } | { kind: "shutdown" };

/**
 * The runbook engine. A run is a list of step executions persisted in the state database; a
 * pg-boss job carries its id to a worker. The worker that holds the run's advisory lock is the
 * only one executing it, so a duplicate job (a Slack retry, a recovery sweep, a second replica)
 * is harmless, and a crashed worker's run is picked up again by the next sweep.
 */
export class Runner {
  private readonly deps: RunnerDeps;
  private readonly active = new Map<string, AbortController>();
  /** by step execution: the error its thread last heard, so a retried error is not posted again */
  private readonly saidError = new Map<string, string>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** aborts the parts this process works when it stops; their jobs are retried elsewhere */
  private readonly shardStop = new AbortController();

  constructor(deps: RunnerDeps) {
    this.deps = deps;
  }

  private now(): Date {
    return (this.deps.clock ?? systemClock).now();
  }

  /** Creates the queue runs travel on; needed before `submit`, also where no worker runs. */
  async prepare(): Promise<void> {
    await this.deps.boss.createQueue(RUN_QUEUE, { retryLimit: 2, retryDelay: 1, expireInSeconds: 24 * 3600 });
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
    const { boss } = this.deps;
    await this.prepare();
    await boss.work<{ runId: string }>(
      RUN_QUEUE,
      { localConcurrency: opts.concurrency ?? 2, pollingIntervalSeconds: 0.5 },
      async (jobs) => {
        for (const job of jobs) await this.execute(job.data.runId);
      },
    );
    const shards = opts.shardConcurrency ?? this.deps.file.engine.shardWorkers;
    if (shards > 0) await this.workShards(shards);
    await this.sweep();
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err) => this.deps.log.error({ err }, "recovery sweep failed"));
    }, opts.sweepEveryMs ?? 10_000);
    this.sweepTimer.unref();
  }

  /** Stops taking work and interrupts running steps; they resume from their checkpoints later. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.shardStop.abort({ kind: "shutdown" } satisfies AbortReason);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const controller of this.active.values())
      controller.abort({ kind: "shutdown" } satisfies AbortReason);
    const deadline = Date.now() + 10_000;
    while (this.active.size > 0 && Date.now() < deadline) await sleep(50);
  }

  /**
   * Creates a run for a step or a phase and queues it. Mutating runs take the environment lock;
   * a dry run only reads, so it never waits for or blocks anyone.
   */
  async submit(req: RunRequest): Promise<CreateRunResult & { kind: ResolvedTarget["kind"]; name: string }> {
    const { db, file, registry } = this.deps;
    // an undo runs the steps' undos, newest first (src/jobs/undo.ts)
    const target = isUndoRun(req.options)
      ? undoTarget(file, registry, req.target)
      : resolveTarget(file, req.target);
    const mutating =
      !req.dryRun && target.steps.some(({ step }) => registry.get(step.uses)?.mutating ?? true);
    const result = await createRun(
      db,
      {
        env: file.environment,
        kind: target.kind,
        target: target.name,
        dryRun: req.dryRun,
        options: req.options ?? {},
        requestedBy: req.requestedBy,
        channel: req.channel,
        idempotencyKey: req.idempotencyKey,
        steps: target.steps.map(({ step }) => ({ step: step.id })),
      },
      mutating,
      (runId) => ({
        actor: req.requestedBy,
        action: req.dryRun ? "run.plan" : "run.request",
        target: target.name,
        outcome: "started",
        runId,
        details: {
          kind: target.kind,
          steps: target.steps.map((s) => s.step.id),
          ...(isUndoRun(req.options) ? { undo: true } : {}),
        },
      }),
    );
    if (result.created) {
      try {
        await this.deps.boss.send(RUN_QUEUE, { runId: result.runId });
      } catch (err) {
        // Not queued means not started: say so, and leave no lock or live-looking run behind.
        await this.finishRun(result.runId, "failed", `could not be queued: ${(err as Error).message}`);
        throw err;
      }
    } else if (result.reason === "locked") {
      await audit(db, {
        actor: req.requestedBy,
        action: "run.request",
        target: target.name,
        outcome: "refused",
        details: { reason: "lock held", holder: result.lock.holder, lockRunId: result.lock.runId },
      });
    }
    return { ...result, kind: target.kind, name: target.name };
  }

  /** Asks a run to stop. A queued run is cancelled at once; a running one at its next await. */
  async cancel(runId: string, by: string): Promise<"cancelled" | "cancelling" | "finished"> {
    const { db } = this.deps;
    const run = await db.run.findUnique({ where: { id: runId } });
    if (!run) throw new CutoverError(ErrorCode.RunNotFound, `There is no run \`${runId}\`.`);
    if (isFinished(run.status)) return "finished";
    await db.$transaction(async (tx) => {
      await tx.run.update({ where: { id: runId }, data: { cancelRequestedBy: by } });
      await audit(tx, { actor: by, action: "run.cancel", target: run.target, outcome: "ok", runId });
    });
    const local = this.active.get(runId);
    if (local) {
      local.abort({ kind: "cancel", by } satisfies AbortReason);
      return "cancelling";
    }
    // Not running here: if nobody holds the run, finish it now; otherwise its worker sees the flag.
    const owned = await this.withRunLock(runId, () =>
      this.finishRun(runId, "cancelled", `cancelled by ${by}`, {
        steps: ["pending", "running"],
        to: "cancelled",
      }),
    );
    return owned ? "cancelled" : "cancelling";
  }

  /** Re-queues runs left queued or running by a worker that died. */
  async sweep(): Promise<number> {
    if (this.stopping) return 0;
    const { db, boss } = this.deps;
    const stale = await db.run.findMany({
      where: { status: { in: ["queued", "running"] }, createdAt: { lt: new Date(Date.now() - 2_000) } },
      select: { id: true },
    });
    let requeued = 0;
    for (const { id } of stale) {
      if (this.active.has(id)) continue;
      const free = await this.withRunLock(id, async () => undefined);
      if (free) {
        await boss.send(RUN_QUEUE, { runId: id });
        requeued++;
      }
    }
    if (requeued > 0) this.deps.log.info({ requeued }, "recovered runs left by a stopped worker");
    return requeued;
  }

  /** Runs fn while holding the run's advisory lock; false when another session holds it. */
  private withRunLock(runId: string, fn: () => Promise<void>, onLost?: () => void): Promise<boolean> {
    return this.exclusive(`cutover-run:${runId}`, fn, onLost);
  }

  /**
   * Runs fn while holding a session advisory lock named `key` on the state database, in any
   * replica; false (fn not run) when another session holds it. A crash releases it with the
   * session, so a held lock always means someone alive is at work.
   */
  async exclusive(key: string, fn: () => Promise<void>, onLost?: () => void): Promise<boolean> {
    const client = await this.deps.pool.connect();
    // A checked-out client reports a dropped session (the state database restarted, the network
    // cut it) as an 'error' event on itself; unheard, that event would end the whole process.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
      this.deps.log.warn({ err: { message: err.message }, lock: key }, "lost the session holding a lock");
      onLost?.();
    };
    client.on("error", onError);
    try {
      const got = await client.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok",
        [key],
      );
      if (!got.rows[0]?.ok) return false;
      try {
        await fn();
      } finally {
        if (!lost) await client.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [key]);
      }
      return true;
    } finally {
      client.off("error", onError);
      client.release(lost);
    }
  }

  /** Executes (or resumes) one run. Safe to call for any run id any number of times. */
  async execute(runId: string): Promise<void> {
    if (this.stopping || this.active.has(runId)) return;
    const controller = new AbortController();
    this.active.set(runId, controller);
    try {
      await this.withRunLock(
        runId,
        () => this.executeLocked(runId, controller),
        // the lock went with its session: stop as at shutdown, so the run resumes from its checkpoint
        () => controller.abort({ kind: "shutdown" } satisfies AbortReason),
      );
    } finally {
      this.active.delete(runId);
    }
  }

  private async executeLocked(runId: string, controller: AbortController): Promise<void> {
    const { db, log, observer } = this.deps;
    const run = await loadRun(db, runId);
    if (!run || isFinished(run.status)) return;
    if (run.cancelRequestedBy) {
      await this.finishRun(runId, "cancelled", `cancelled by ${run.cancelRequestedBy}`);
      return;
    }
    const resumed = run.status === "running";
    await db.$transaction(async (tx) => {
      await tx.run.update({
        where: { id: runId },
        data: { status: "running", startedAt: run.startedAt ?? this.now() },
      });
      await audit(tx, {
        actor: "cutover",
        action: resumed ? "run.resume" : "run.start",
        target: run.target,
        outcome: "started",
        runId,
      });
    });
    if (resumed)
      observer.runNote(runId, "Resumed after an interruption; continuing from the last checkpoint.");
    observer.runChanged(runId);

    // A cancel requested from another replica reaches this worker through the row.
    const poll = setInterval(() => {
      db.run
        .findUnique({ where: { id: runId }, select: { cancelRequestedBy: true } })
        .then((r) => {
          if (r?.cancelRequestedBy && !controller.signal.aborted) {
            controller.abort({ kind: "cancel", by: r.cancelRequestedBy } satisfies AbortReason);
          }
        })
        .catch((err) => log.warn({ err, runId }, "could not poll for cancellation"));
    }, 1_000);
    poll.unref();

    try {
      for (const execution of run.steps) {
        if (execution.status === "succeeded" || execution.status === "skipped") continue;
        const outcome = await this.executeStep(run, execution, controller.signal);
        if (outcome === "shutdown") return; // left running: the next worker resumes it
        if (outcome === "cancelled") {
          await this.finishRun(
            runId,
            "cancelled",
            `cancelled by ${this.cancelledBy(controller) ?? "someone"}`,
            {
              steps: ["pending"],
              to: "cancelled",
            },
          );
          return;
        }
        if (outcome === "failed") {
          const failed = await db.stepExecution.findUnique({ where: { id: execution.id } });
          await this.finishRun(runId, "failed", `${execution.step}: ${failed?.error ?? "failed"}`, {
            steps: ["pending"],
            to: "skipped",
          });
          return;
        }
      }
      await this.finishRun(runId, "succeeded", null);
    } finally {
      clearInterval(poll);
    }
  }

  private cancelledBy(controller: AbortController): string | undefined {
    const reason = controller.signal.reason as AbortReason | undefined;
    return reason?.kind === "cancel" ? reason.by : undefined;
  }

  /**
   * Finishes a run in one transaction with everything that goes with it: the steps it leaves
   * behind (`rest`), the lock, and the `run.finish` event. Whoever sees the run finished sees its
   * steps finished, the lock free and the event written; a crash commits all or none of them.
   */
  private async finishRun(
    runId: string,
    status: "succeeded" | "failed" | "cancelled",
    error: string | null,
    rest?: { steps: Array<"pending" | "running">; to: "cancelled" | "skipped" },
  ) {
    const { db, observer } = this.deps;
    await db.$transaction(async (tx) => {
      if (rest) {
        await tx.stepExecution.updateMany({
          where: { runId, status: { in: rest.steps } },
          data: { status: rest.to, ...(rest.to === "cancelled" ? { finishedAt: this.now() } : {}) },
        });
      }
      const finished = await tx.run.update({
        where: { id: runId },
        data: { status, error, finishedAt: this.now() },
      });
      await tx.envLock.deleteMany({ where: { env: finished.env, runId } });
      await audit(tx, {
        actor: "cutover",
        action: "run.finish",
        target: finished.target,
        outcome: status === "succeeded" ? "ok" : status === "cancelled" ? "info" : "failed",
        runId,
        details: error ? { status, error } : { status },
      });
    });
    observer.runChanged(runId);
  }

  private async executeStep(
    run: NonNullable<Awaited<ReturnType<typeof loadRun>>>,
    execution: NonNullable<Awaited<ReturnType<typeof loadRun>>>["steps"][number],
    signal: AbortSignal,
  ): Promise<"succeeded" | "failed" | "cancelled" | "shutdown"> {
    const { db, file, registry, observer } = this.deps;
    const found = findStep(file, execution.step);
    const fail = async (message: string, attemptFailed?: AuditEntry) => {
      await db.$transaction(async (tx) => {
        if (attemptFailed) await audit(tx, attemptFailed);
        await tx.stepExecution.update({
          where: { id: execution.id },
          data: { status: "failed", error: message, finishedAt: this.now() },
        });
        await audit(tx, {
          actor: "cutover",
          action: "step.fail",
          target: execution.step,
          outcome: "failed",
          runId: run.id,
          details: { error: message },
        });
      });
      observer.runNote(
        run.id,
        failedNote(execution.step, message, this.saidError.get(execution.id) === message),
      );
      this.saidError.delete(execution.id);
      return "failed" as const;
    };
    if (!found) return fail(`the step is no longer in the migration file`);
    const declared = registry.get(found.step.uses) as StepDefinition<unknown> | undefined;
    if (!declared) {
      return fail(`step type \`${found.step.uses}\` is not available in this build of Cutover`);
    }
    const undo = isUndoRun(run.options);
    const definition = undo
      ? undoing(declared, await borrowCheckpoints(db, execution.id, execution.step, run.env))
      : declared;
    let input: unknown;
    try {
      input = definition.parse(found.step.with);
    } catch (err) {
      return fail(describeError(err));
    }

    if (!undo) await inheritCheckpoints(db, execution.id, execution.step, run.env);
    const maxAttempts = run.dryRun ? 1 : file.engine.attempts;
    const watchdog = new StepWatchdog({
      limitSeconds: found.step.timeout === undefined ? STEP_TIME_LIMITS[found.step.uses] : found.step.timeout,
      stallSeconds: definition.stallWatch ? file.engine.stallSeconds : undefined,
      ...(this.deps.watchdogGraceMs === undefined ? {} : { graceMs: this.deps.watchdogGraceMs }),
      ...(run.dryRun
        ? {}
        : {
            quiet: {
              afterMs: this.deps.quietNoteMs ?? 60_000,
              say: (text: string) => this.deps.observer.runNote(run.id, text),
              step: execution.step,
              runId: run.id,
            },
          }),
    });
    try {
      return await this.attemptStep(run, execution, definition, input, signal, watchdog, maxAttempts, fail);
    } finally {
      watchdog.stop();
    }
  }

  private async attemptStep(
    run: NonNullable<Awaited<ReturnType<typeof loadRun>>>,
    execution: NonNullable<Awaited<ReturnType<typeof loadRun>>>["steps"][number],
    definition: StepDefinition<unknown>,
    input: unknown,
    runSignal: AbortSignal,
    watchdog: StepWatchdog,
    maxAttempts: number,
    fail: (message: string, attemptFailed?: AuditEntry) => Promise<"failed">,
  ): Promise<"succeeded" | "failed" | "cancelled" | "shutdown"> {
    const { db, file, log, observer } = this.deps;
    let attempt = execution.attempts;
    let lastError: string | undefined;
    for (;;) {
      if (watchdog.expired) return fail(watchdog.describe(execution.step, lastError));
      attempt++;
      const signal = watchdog.beginAttempt(runSignal);
      const report = this.progressReporter(run.id, execution.id);
      const stepLog = log.child({ runId: run.id, step: execution.step, attempt });
      await db.$transaction(async (tx) => {
        await tx.stepExecution.update({
          where: { id: execution.id },
          data: {
            status: "running",
            attempts: attempt,
            startedAt: execution.startedAt ?? this.now(),
            error: null,
          },
        });
        await audit(tx, {
          actor: "cutover",
          action: run.dryRun ? "step.plan" : "step.start",
          target: execution.step,
          outcome: "started",
          runId: run.id,
          details: { attempt },
        });
      });
      observer.runChanged(run.id);
      const ctx: StepContext = {
        log: stepLog,
        run: {
          id: run.id,
          env: run.env,
          requestedBy: run.requestedBy,
          dryRun: run.dryRun,
          options: (run.options ?? {}) as Record<string, unknown>,
        },
        signal,
        attempt,
        progress: (p) => {
          watchdog.progress(p);
          report(p);
        },
        alert: (a) => observer.runAlert?.(run.id, a),
        report: (r) => observer.runReport?.(run.id, r),
        checkpoint: checkpointStore(db, execution.id),
        shards: shardPool(this.deps, execution.id, signal, (p) => ctx.progress(p)),
      };
      try {
        const finished = {
          actor: "cutover",
          action: run.dryRun ? "step.plan" : "step.finish",
          target: execution.step,
          outcome: "ok",
          runId: run.id,
          details: { attempt },
        } as const;
        signal.throwIfAborted();
        if (run.dryRun) {
          const plan = await watchdog.guard(definition.plan(input, ctx));
          await db.$transaction(async (tx) => {
            await tx.stepExecution.update({
              where: { id: execution.id },
              data: {
                status: "succeeded",
                plan: plan as unknown as Prisma.InputJsonValue,
                finishedAt: this.now(),
              },
            });
            await audit(tx, finished);
          });
        } else {
          const outcome = await watchdog.guard(definition.run(input, ctx));
          signal.throwIfAborted();
          const verified = await watchdog.guard(definition.verify(input, ctx));
          if (!verified.ok) {
            throw new CutoverError(
              verified.final ? ErrorCode.VerificationDiffered : ErrorCode.StepFailed,
              `verification failed: ${verified.summary}`,
            );
          }
          await db.$transaction(async (tx) => {
            await tx.stepExecution.update({
              where: { id: execution.id },
              data: {
                status: "succeeded",
                result: { ...outcome, verify: verified } as unknown as Prisma.InputJsonValue,
                finishedAt: this.now(),
              },
            });
            await audit(tx, finished);
          });
          observer.runNote(run.id, succeededNote(execution.step, outcome.summary, verified.summary));
        }
        observer.runChanged(run.id);
        return "succeeded";
      } catch (err) {
        if (runSignal.aborted) {
          const reason = runSignal.reason as AbortReason | undefined;
          if (reason?.kind === "shutdown") {
            await db.stepExecution.update({ where: { id: execution.id }, data: { status: "pending" } });
            stepLog.info("interrupted by shutdown; will resume from its checkpoint");
            return "shutdown";
          }
          await db.$transaction(async (tx) => {
            await tx.stepExecution.update({
              where: { id: execution.id },
              data: {
                status: "cancelled",
                error: new CancelledError(reason?.by).message,
                finishedAt: this.now(),
              },
            });
            await audit(tx, {
              actor: reason?.by ?? "cutover",
              action: "step.cancel",
              target: execution.step,
              outcome: "info",
              runId: run.id,
            });
          });
          return "cancelled";
        }
        const trip = watchdog.tripped;
        const message = trip ? watchdog.describe(execution.step, lastError) : describeError(err);
        if (!trip) lastError = message;
        stepLog.warn({ err, watchdog: trip }, "step attempt failed");
        const attemptFailed = {
          actor: "cutover",
          action: "step.attempt",
          target: execution.step,
          outcome: "failed",
          runId: run.id,
          details: { attempt, error: message },
        } as const;
        // past its time limit, or stuck (it may still be at work), a step is not tried again
        const hopeless =
          (err instanceof CutoverError && NOT_RETRYABLE.has(err.code)) ||
          trip?.kind === "timeout" ||
          watchdog.stuck;
        if (attempt >= maxAttempts || hopeless) return fail(message, attemptFailed);
        const delay = file.engine.backoffMs * 2 ** (attempt - 1);
        await db.$transaction(async (tx) => {
          await tx.stepExecution.update({ where: { id: execution.id }, data: { error: message } });
          await audit(tx, attemptFailed);
        });
        const said = this.saidError.get(execution.id);
        observer.runNote(run.id, retryNote(execution.step, attempt, maxAttempts, message, said, delay));
        this.saidError.set(execution.id, message);
        try {
          await sleep(delay, undefined, { signal: AbortSignal.any([runSignal, watchdog.stepSignal]) });
        } catch {
          // aborted during the back-off: the loop's next signal check decides what that means
        }
      }
    }
  }

  private progressReporter(runId: string, executionId: string): (p: Progress) => void {
    let last = 0;
    let pending: Progress | undefined;
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      if (!pending) return;
      const value = pending;
      pending = undefined;
      last = Date.now();
      this.deps.db.stepExecution
        .update({ where: { id: executionId }, data: { progress: value as unknown as Prisma.InputJsonValue } })
        .then(() => this.deps.observer.runChanged(runId))
        .catch((err) => this.deps.log.warn({ err }, "could not store progress"));
    };
    return (p) => {
      pending = p;
      if (timer) return;
      const wait = Math.max(0, 500 - (Date.now() - last));
      timer = setTimeout(flush, wait);
      timer.unref();
    };
  }
}

/**
 * A rerun after a failure or a cancel starts from where the last unfinished execution of the same
 * step stopped: its checkpoints are copied into the new execution once, before its first attempt.
 */
async function inheritCheckpoints(db: Db, executionId: string, step: string, env: string): Promise<void> {
  const own = await db.checkpoint.count({ where: { executionId } });
  if (own > 0) return;
  // Only the latest earlier execution counts: after a success, a rerun starts afresh.
  const previous = await db.stepExecution.findFirst({
    where: {
      step,
      id: { not: executionId },
      status: { in: ["failed", "cancelled", "succeeded"] },
      run: { env, dryRun: false },
    },
    orderBy: { updatedAt: "desc" },
    include: { checkpoints: true },
  });
  if (!previous || previous.status === "succeeded" || previous.checkpoints.length === 0) return;
  await db.checkpoint.createMany({
    data: previous.checkpoints.map((c) => ({
      executionId,
      key: c.key,
      value: c.value as Prisma.InputJsonValue,
    })),
    skipDuplicates: true,
  });
}
