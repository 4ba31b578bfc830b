import { fromPrisma, type PgBoss } from "pg-boss";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { MigrationFile } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import { audit } from "../store/audit.js";
import type { Db } from "../store/client.js";
import {
  type CreateRunResult,
  cancelRequestedBy,
  createRun,
  type FinishedStatus,
  findRun,
  finishRun,
  isFinished,
  loadRun,
  markRunStarted,
  requestCancel,
  unfinishedRunIds,
} from "../store/runs.js";
import { stepError } from "../store/steps.js";
import type { StepRegistry } from "./define-step.js";
import { type AbortReason, cancelledBy, type RunObserver } from "./events.js";
import type { LockService } from "./locks.js";
import { type ResolvedTarget, resolveTarget } from "./runbook.js";
import type { StepExecutor } from "./step-executor.js";
import { isUndoRun, undoTarget } from "./undo.js";

export const RUN_QUEUE = "cutover-run";

export interface RunRequest {
  target: string;
  dryRun: boolean;
  requestedBy: string;
  channel: string | null;
  idempotencyKey: string | null;
  options?: Record<string, unknown>;
}

export interface RunQueueDeps {
  db: Db;
  boss: PgBoss;
  locks: LockService;
  steps: StepExecutor;
  registry: StepRegistry;
  file: MigrationFile;
  log: Logger;
  observer: RunObserver;
  clock: Clock;
}

/**
 * Runs as pg-boss jobs: `submit` creates a run and its job in one transaction, a worker that
 * holds the run's advisory lock works it step by step (the {@link StepExecutor} does each), a
 * cancel reaches it through the row, and the recovery sweep queues again a run whose worker died.
 * A duplicate job (a sweep racing a worker, a second replica) is harmless: without the lock, or
 * with the run finished, `execute` does nothing.
 */
export class RunQueue {
  private readonly active = new Map<string, AbortController>();
  private stopping = false;

  constructor(private readonly deps: RunQueueDeps) {}

  /** Creates the queue runs travel on; needed before `submit`, also where no worker runs. */
  async prepare(): Promise<void> {
    // No pg-boss retry: a step's attempts are the runner's, with their back-off; a run whose
    // worker failed or died is still queued or running, and the recovery sweep takes it up again.
    await this.deps.boss.createQueue(RUN_QUEUE, { retryLimit: 0, expireInSeconds: 24 * 3600 });
  }

  /** Takes runs from the queue, `concurrency` at once in this process. */
  async work(concurrency: number): Promise<void> {
    await this.deps.boss.work<{ runId: string }>(
      RUN_QUEUE,
      { localConcurrency: concurrency, pollingIntervalSeconds: 0.5 },
      async (jobs) => {
        for (const job of jobs) await this.execute(job.data.runId);
      },
    );
  }

  /** Stops taking runs and interrupts those at work here; they resume from their checkpoints later. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const controller of this.active.values())
      controller.abort({ kind: "shutdown" } satisfies AbortReason);
    const deadline = Date.now() + 10_000;
    while (this.active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  /**
   * Creates a run for a step or a phase and queues it, in one transaction. Mutating runs take the
   * environment lock; a dry run only reads, so it never waits for or blocks anyone.
   */
  async submit(req: RunRequest): Promise<CreateRunResult & { kind: ResolvedTarget["kind"]; name: string }> {
    const { db, boss, file, registry } = this.deps;
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
      // Not queued means not created: a failed send rolls the run, its lock and its audit back.
      (tx, runId) => boss.send(RUN_QUEUE, { runId }, { db: fromPrisma(tx), retryLimit: 0 }),
    );
    if (!result.created && result.reason === "locked") {
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
    const run = await findRun(db, runId);
    if (!run) throw new CutoverError(ErrorCode.RunNotFound, `There is no run \`${runId}\`.`);
    if (isFinished(run.status)) return "finished";
    await requestCancel(db, runId, by, run.target);
    const local = this.active.get(runId);
    if (local) {
      local.abort({ kind: "cancel", by } satisfies AbortReason);
      return "cancelling";
    }
    // Not running here: if nobody holds the run, finish it now; otherwise its worker sees the flag.
    const owned = await this.deps.locks.run(runId, () =>
      this.finish(runId, "cancelled", `cancelled by ${by}`, {
        steps: ["pending", "running"],
        to: "cancelled",
      }),
    );
    return owned ? "cancelled" : "cancelling";
  }

  /**
   * The recovery sweep: queues again the runs left queued or running by a worker that died (its
   * lock went with its session) and not waiting in the queue already. A run being created is
   * queued in its own transaction, so the sweep only ever has the dead to look after.
   */
  async sweep(): Promise<number> {
    if (this.stopping) return 0;
    const { db, boss, locks } = this.deps;
    let requeued = 0;
    for (const id of await unfinishedRunIds(db)) {
      if (this.active.has(id)) continue;
      if (!(await locks.run(id, async () => undefined))) continue;
      const waiting = await boss.findJobs(RUN_QUEUE, { data: { runId: id }, queued: true, limit: 1 });
      if (waiting.length > 0) continue;
      await boss.send(RUN_QUEUE, { runId: id }, { retryLimit: 0 });
      requeued++;
    }
    if (requeued > 0) this.deps.log.info({ requeued }, "recovered runs left by a stopped worker");
    return requeued;
  }

  /** Executes (or resumes) one run. Safe to call for any run id any number of times. */
  async execute(runId: string): Promise<void> {
    if (this.stopping || this.active.has(runId)) return;
    const controller = new AbortController();
    this.active.set(runId, controller);
    try {
      await this.deps.locks.run(
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
      await this.finish(runId, "cancelled", `cancelled by ${run.cancelRequestedBy}`);
      return;
    }
    await markRunStarted(db, run, this.deps.clock.now());
    if (run.status === "running")
      observer.runNote(runId, "Resumed after an interruption; continuing from the last checkpoint.");
    observer.runChanged(runId);

    // A cancel requested from another replica reaches this worker through the row.
    const poll = setInterval(() => {
      cancelRequestedBy(db, runId)
        .then((by) => {
          if (by && !controller.signal.aborted)
            controller.abort({ kind: "cancel", by } satisfies AbortReason);
        })
        .catch((err) => log.warn({ err, runId }, "could not poll for cancellation"));
    }, 1_000);
    poll.unref();

    try {
      for (const execution of run.steps) {
        if (execution.status === "succeeded" || execution.status === "skipped") continue;
        const outcome = await this.deps.steps.execute(run, execution, controller.signal);
        if (outcome === "shutdown") return; // left running: the next worker resumes it
        if (outcome === "cancelled") {
          await this.finish(
            runId,
            "cancelled",
            `cancelled by ${cancelledBy(controller.signal) ?? "someone"}`,
            {
              steps: ["pending"],
              to: "cancelled",
            },
          );
          return;
        }
        if (outcome === "failed") {
          const error = await stepError(db, execution.id);
          await this.finish(runId, "failed", `${execution.step}: ${error ?? "failed"}`, {
            steps: ["pending"],
            to: "skipped",
          });
          return;
        }
      }
      await this.finish(runId, "succeeded", null);
    } finally {
      clearInterval(poll);
    }
  }

  private async finish(
    runId: string,
    status: FinishedStatus,
    error: string | null,
    rest?: { steps: Array<"pending" | "running">; to: "cancelled" | "skipped" },
  ): Promise<void> {
    await finishRun(this.deps.db, runId, status, error, this.deps.clock.now(), rest);
    this.deps.observer.runChanged(runId);
  }
}
