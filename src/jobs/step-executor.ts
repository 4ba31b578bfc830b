import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { MigrationFile } from "../config/schema.js";
import { CancelledError, CutoverError, describeError, ErrorCode, NOT_RETRYABLE } from "../errors.js";
import type { AttemptRef, StepRecords } from "../store/steps.js";
import { backoffMs } from "./backoff.js";
import { STEP_TIME_LIMITS } from "./catalogue.js";
import type { Progress, ShardPool, StepContext, StepDefinition, StepRegistry } from "./define-step.js";
import type { AbortReason, RunObserver } from "./events.js";
import { failedNote, retryNote, succeededNote } from "./events.js";
import { findStep } from "./runbook.js";
import { isUndoRun, undoing } from "./undo.js";
import { StepWatchdog } from "./watchdog.js";

/** The longest wait between two attempts of a step, unless the file's first wait is longer. */
const STEP_BACKOFF_CAP_MS = 5 * 60_000;

export interface StepExecutorDeps {
  records: StepRecords;
  registry: StepRegistry;
  file: MigrationFile;
  log: Logger;
  observer: RunObserver;
  /** the back-off between attempts waits on it */
  clock: Clock;
  /** `ctx.shards` for an execution; absent where no job queue is */
  shards?: (executionId: string, signal: AbortSignal, progress: (p: Progress) => void) => ShardPool;
  /** how long a step stopped by its watchdog has to give up before the run moves on (10 s) */
  watchdogGraceMs?: number;
  /** after how long without progress a step's thread hears that it is still waiting (60 s) */
  quietNoteMs?: number;
  /** most one progress write per this many ms per step (500) */
  progressIntervalMs?: number;
  /** the back-off's jitter (default Math.random) */
  random?: () => number;
}

/** The run a step belongs to, as far as the executor needs it. */
export interface RunToExecute {
  id: string;
  env: string;
  requestedBy: string;
  dryRun: boolean;
  options: unknown;
}

/** The step execution to carry out (or resume: `attempts` made so far). */
export interface ExecutionToRun {
  id: string;
  step: string;
  attempts: number;
  startedAt: Date | null;
}

export type StepResult = "succeeded" | "failed" | "cancelled" | "shutdown";

/** Everything about one step execution the attempts share. */
interface Job {
  run: RunToExecute;
  execution: ExecutionToRun;
  definition: StepDefinition<unknown>;
  input: unknown;
  runSignal: AbortSignal;
  watchdog: StepWatchdog;
  maxAttempts: number;
}

/**
 * Carries out one step execution: parses its `with:`, then attempts it (plan for a dry run; run
 * then verify otherwise) under its watchdog, retrying a failed attempt with {@link backoffMs}
 * until the file's `engine.attempts`, with the checkpoints of earlier attempts and runs, its
 * progress stored at most twice a second. Every transition goes through {@link StepRecords}.
 */
export class StepExecutor {
  /** by step execution: the error its thread last heard, so a retried error is not posted again */
  private readonly saidError = new Map<string, string>();

  constructor(private readonly deps: StepExecutorDeps) {}

  async execute(run: RunToExecute, execution: ExecutionToRun, runSignal: AbortSignal): Promise<StepResult> {
    const { records, file, registry } = this.deps;
    const ref = (attempt: number): AttemptRef => ({
      runId: run.id,
      executionId: execution.id,
      step: execution.step,
      attempt,
    });
    const found = findStep(file, execution.step);
    if (!found)
      return this.fail(ref(execution.attempts), "the step is no longer in the migration file", false);
    const declared = registry.get(found.step.uses) as StepDefinition<unknown> | undefined;
    if (!declared) {
      return this.fail(
        ref(execution.attempts),
        `step type \`${found.step.uses}\` is not available in this build of Cutover`,
        false,
      );
    }
    // an undo run runs the step's undo on what its last real execution recorded (src/jobs/undo.ts)
    const undo = isUndoRun(run.options);
    const definition = undo
      ? undoing(declared, await records.borrowCheckpoints(execution.id, execution.step, run.env))
      : declared;
    let input: unknown;
    try {
      input = definition.parse(found.step.with);
    } catch (err) {
      return this.fail(ref(execution.attempts), describeError(err), false);
    }

    if (!undo && !definition.freshEachRun)
      await records.inheritCheckpoints(execution.id, execution.step, run.env);
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
      return await this.attempts({
        run,
        execution,
        definition,
        input,
        runSignal,
        watchdog,
        maxAttempts: run.dryRun ? 1 : file.engine.attempts,
      });
    } finally {
      watchdog.stop();
    }
  }

  private async fail(a: AttemptRef, message: string, attemptFailed: boolean): Promise<"failed"> {
    await this.deps.records.failed(a, message, attemptFailed);
    this.deps.observer.runNote(
      a.runId,
      failedNote(a.step, message, this.saidError.get(a.executionId) === message),
    );
    this.saidError.delete(a.executionId);
    return "failed";
  }

  private async attempts(job: Job): Promise<StepResult> {
    const { run, execution, watchdog, runSignal, maxAttempts } = job;
    const { records, file, observer } = this.deps;
    let attempt = execution.attempts;
    let lastError: string | undefined;
    for (;;) {
      const ref: AttemptRef = { runId: run.id, executionId: execution.id, step: execution.step, attempt };
      if (watchdog.expired) return this.fail(ref, watchdog.describe(execution.step, lastError), false);
      attempt++;
      ref.attempt = attempt;
      const signal = watchdog.beginAttempt(runSignal);
      const stepLog = this.deps.log.child({ runId: run.id, step: execution.step, attempt });
      await records.attemptStarted(ref, run.dryRun, execution.startedAt);
      observer.runChanged(run.id);
      try {
        await this.attempt(job, ref, signal, stepLog);
        observer.runChanged(run.id);
        return "succeeded";
      } catch (err) {
        if (runSignal.aborted) {
          const reason = runSignal.reason as AbortReason | undefined;
          if (reason?.kind === "shutdown") {
            await records.interrupted(execution.id);
            stepLog.info("interrupted by shutdown; will resume from its checkpoint");
            return "shutdown";
          }
          await records.cancelled(ref, reason?.by, new CancelledError(reason?.by).message);
          return "cancelled";
        }
        const trip = watchdog.tripped;
        const message = trip ? watchdog.describe(execution.step, lastError) : describeError(err);
        if (!trip) lastError = message;
        stepLog.warn({ err, watchdog: trip }, "step attempt failed");
        // past its time limit, or stuck (it may still be at work), a step is not tried again
        const hopeless =
          (err instanceof CutoverError && NOT_RETRYABLE.has(err.code)) ||
          trip?.kind === "timeout" ||
          watchdog.stuck;
        if (attempt >= maxAttempts || hopeless) return this.fail(ref, message, true);
        const base = file.engine.backoffMs;
        const delay = backoffMs(attempt, base, Math.max(STEP_BACKOFF_CAP_MS, base), this.deps.random);
        await records.retrying(ref, message);
        const said = this.saidError.get(execution.id);
        observer.runNote(run.id, retryNote(execution.step, attempt, maxAttempts, message, said, delay));
        this.saidError.set(execution.id, message);
        // a cancel or the time limit ends the wait early; the loop's next check decides what it means
        await this.deps.clock.sleep(delay, AbortSignal.any([runSignal, watchdog.stepSignal]));
      }
    }
  }

  /** One attempt: plan (a dry run), or run then verify; resolves when it succeeded and is stored. */
  private async attempt(job: Job, ref: AttemptRef, signal: AbortSignal, log: Logger): Promise<void> {
    const { run, execution, definition, input, watchdog } = job;
    const { records, observer } = this.deps;
    const report = progressThrottle(
      async (p) => {
        await records.progress(execution.id, p);
        observer.runChanged(run.id);
      },
      this.deps.progressIntervalMs ?? 500,
      (err) => log.warn({ err }, "could not store progress"),
    );
    const ctx: StepContext = {
      log,
      run: {
        id: run.id,
        env: run.env,
        requestedBy: run.requestedBy,
        dryRun: run.dryRun,
        options: (run.options ?? {}) as Record<string, unknown>,
      },
      signal,
      attempt: ref.attempt,
      progress: (p) => {
        watchdog.progress(p);
        report(p);
      },
      alert: (a) => observer.runAlert?.(run.id, a),
      report: (r) => observer.runReport?.(run.id, r),
      checkpoint: records.checkpoints(execution.id),
    };
    if (this.deps.shards) ctx.shards = this.deps.shards(execution.id, signal, (p) => ctx.progress(p));
    signal.throwIfAborted();
    if (run.dryRun) {
      const plan = await watchdog.guard(definition.plan(input, ctx));
      await records.planned(ref, plan);
      return;
    }
    const outcome = await watchdog.guard(definition.run(input, ctx));
    signal.throwIfAborted();
    const verified = await watchdog.guard(definition.verify(input, ctx));
    if (!verified.ok) {
      throw new CutoverError(
        verified.final ? ErrorCode.VerificationDiffered : ErrorCode.StepFailed,
        `verification failed: ${verified.summary}`,
      );
    }
    await records.succeeded(ref, { ...outcome, verify: verified });
    observer.runNote(run.id, succeededNote(execution.step, outcome.summary, verified.summary));
  }
}

/**
 * A step reports progress as often as it likes; storing it (and so editing the Slack message)
 * happens at most once per `intervalMs`, always with the latest value, and the last value is
 * never dropped (a trailing write follows the burst). Timers are the global ones, so a test
 * moves them with fake timers.
 *
 * @example const report = progressThrottle((p) => records.progress(id, p), 500); report({ done: 3 });
 */
export function progressThrottle(
  write: (p: Progress) => Promise<void>,
  intervalMs: number,
  onError: (err: unknown) => void,
): (p: Progress) => void {
  let last = Number.NEGATIVE_INFINITY;
  let pending: Progress | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (!pending) return;
    const value = pending;
    pending = undefined;
    last = Date.now();
    write(value).catch(onError);
  };
  return (p) => {
    pending = p;
    if (timer) return;
    timer = setTimeout(flush, Math.max(0, intervalMs - (Date.now() - last)));
    timer.unref();
  };
}
