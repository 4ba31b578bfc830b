import { formatDuration } from "../views/blocks.js";
import type { Progress } from "./define-step.js";

/** Why the watchdog stopped an attempt. */
export type WatchdogTrip =
  | { kind: "timeout"; limitSeconds: number }
  | { kind: "stall"; stallSeconds: number; last: Progress | undefined };

export interface WatchdogOptions {
  /** the step's time limit, all attempts together; null or undefined: none */
  limitSeconds: number | null | undefined;
  /** stop an attempt whose progress has not changed for this long; undefined: no stall watch */
  stallSeconds?: number | undefined;
  /** how long a stopped attempt has to give up before the runner stops waiting for it */
  graceMs?: number;
  /**
   * called once each time the step has been quiet (no new progress, no new attempt) this long,
   * so the people watching hear that it waits and how long it may still take
   */
  quiet?: { afterMs: number; say: (text: string) => void; step: string; runId: string };
}

/**
 * The runner's per-step watchdog. It bounds a step in two ways that client timeouts alone do
 * not: a time limit over all its attempts (a black-holed API that every retry waits on again),
 * and, for steps whose progress flows while they work, a stall limit (progress that stopped
 * changing: a connection that hangs mid-stream). Tripping aborts the attempt's signal; a step
 * that does not give up within the grace period is left behind and reported as stuck, so the
 * run never waits on it.
 */
export class StepWatchdog {
  readonly limitSeconds: number | undefined;
  readonly stallSeconds: number | undefined;
  private readonly graceMs: number;
  private readonly startedAt = Date.now();
  private readonly stepController = new AbortController();
  private attempt: AbortController | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private quietTimer: NodeJS.Timeout | undefined;
  private readonly quiet: WatchdogOptions["quiet"];
  private lastKey = "";
  private lastProgress: Progress | undefined;
  /** what stopped the current attempt, if the watchdog did */
  tripped: WatchdogTrip | undefined;
  /** true once an attempt did not give up within the grace period after being stopped */
  stuck = false;

  constructor(opts: WatchdogOptions) {
    this.limitSeconds = opts.limitSeconds ?? undefined;
    this.stallSeconds = opts.stallSeconds;
    this.graceMs = opts.graceMs ?? 10_000;
    this.quiet = opts.quiet;
    if (this.limitSeconds !== undefined) {
      this.deadline = setTimeout(
        () => this.trip({ kind: "timeout", limitSeconds: this.limitSeconds as number }),
        this.limitSeconds * 1000,
      );
      this.deadline.unref();
    }
  }

  /** Aborted when the step's time limit passes (for back-off waits between attempts). */
  get stepSignal(): AbortSignal {
    return this.stepController.signal;
  }

  /** True once the time limit has passed. */
  get expired(): boolean {
    return this.stepController.signal.aborted;
  }

  /** Starts an attempt: its signal aborts with the run's, or when the watchdog trips. */
  beginAttempt(runSignal: AbortSignal): AbortSignal {
    this.attempt = new AbortController();
    this.tripped = undefined;
    this.lastKey = "";
    if (this.expired) this.attempt.abort(this.stepSignal.reason);
    this.clearStall();
    this.armQuiet();
    return AbortSignal.any([runSignal, this.attempt.signal]);
  }

  /** A progress report from the step: moves the stall clock when the progress changed. */
  progress(p: Progress): void {
    this.lastProgress = p;
    const key = `${p.activity ?? p.done}/${p.total ?? ""}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.armQuiet();
    if (this.stallSeconds === undefined) return;
    if (this.stallTimer) this.stallTimer.refresh();
    else {
      const last = () => this.lastProgress;
      const seconds = this.stallSeconds;
      this.stallTimer = setTimeout(
        () => this.trip({ kind: "stall", stallSeconds: seconds, last: last() }),
        seconds * 1000,
      );
      this.stallTimer.unref();
    }
  }

  /**
   * Waits for an attempt's work. Resolves or rejects as the work does; when the watchdog has
   * stopped the attempt and the work has not given up `graceMs` later, rejects without it.
   */
  guard<T>(work: Promise<T>): Promise<T> {
    const attempt = this.attempt;
    if (!attempt) return work;
    return new Promise<T>((resolve, reject) => {
      let grace: NodeJS.Timeout | undefined;
      const onAbort = () => {
        if (!this.tripped) return;
        grace = setTimeout(() => {
          this.stuck = true;
          work.catch(() => undefined); // it may still settle later; nobody waits for it
          reject(new Error("the step did not stop when asked"));
        }, this.graceMs);
        grace.unref();
      };
      attempt.signal.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(grace);
        attempt.signal.removeEventListener("abort", onAbort);
      };
      work.then(
        (value) => {
          done();
          resolve(value);
        },
        (err: unknown) => {
          done();
          reject(err);
        },
      );
    });
  }

  /**
   * The failure message for a tripped attempt, for people: what limit, how far it got, the
   * last real error when there was one, and what to change.
   */
  describe(step: string, lastError: string | undefined): string {
    const trip = this.tripped ?? (this.expired ? this.timeoutTrip() : undefined);
    const last = this.lastProgress ? progressLine(this.lastProgress) : undefined;
    const parts: string[] = [];
    if (trip?.kind === "stall") {
      parts.push(
        `\`${step}\` showed no progress for ${formatDuration(trip.stallSeconds * 1000)}${last ? ` (stuck at ${last})` : ""}; stopped this attempt`,
      );
    } else {
      const limit = trip?.kind === "timeout" ? trip.limitSeconds : (this.limitSeconds ?? 0);
      parts.push(
        `\`${step}\` did not finish within ${formatDuration(limit * 1000)}, its time limit, and was stopped${last ? ` (last progress: ${last})` : ""}`,
      );
      if (lastError) parts.push(`the last error was: ${lastError}`);
      parts.push(
        "if it needs longer, set `timeout:` on the step in the migration file (for example `timeout: 2h`)",
      );
    }
    if (this.stuck) {
      parts.push(
        "it did not stop when asked, so it may still be working: check what it changes before running it again",
      );
    }
    return `${parts.join("; ")}.`;
  }

  /** Seconds since the step began. */
  get elapsedSeconds(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  stop(): void {
    clearTimeout(this.deadline);
    clearTimeout(this.quietTimer);
    this.clearStall();
  }

  /** (Re)starts the quiet clock: progress moved, or an attempt began. */
  private armQuiet(): void {
    const quiet = this.quiet;
    if (!quiet) return;
    if (this.quietTimer) {
      this.quietTimer.refresh();
      return;
    }
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      const last = this.lastProgress ? ` (last: ${progressLine(this.lastProgress)})` : "";
      const left =
        this.limitSeconds === undefined
          ? "It has no time limit"
          : `It will be stopped at ${formatDuration(this.limitSeconds * 1000)}, its time limit, ${formatDuration(Math.max(0, this.limitSeconds - this.elapsedSeconds) * 1000)} from now`;
      quiet.say(
        `⏳ \`${quiet.step}\` has shown no progress for ${formatDuration(quiet.afterMs)}${last}. ${left}; \`/migrate cancel ${quiet.runId.slice(0, 8)}\` stops it sooner.`,
      );
    }, quiet.afterMs);
    this.quietTimer.unref();
  }

  private timeoutTrip(): WatchdogTrip {
    return { kind: "timeout", limitSeconds: this.limitSeconds ?? 0 };
  }

  private clearStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private trip(trip: WatchdogTrip): void {
    if (trip.kind === "timeout") this.stepController.abort(trip);
    if (!this.attempt || this.attempt.signal.aborted) return;
    this.tripped = trip;
    this.clearStall();
    this.attempt.abort(trip);
  }
}

function progressLine(p: Progress): string {
  const count = `${p.done.toLocaleString("en-US")}${p.total === undefined ? "" : ` of ${p.total.toLocaleString("en-US")}`}${p.unit ? ` ${p.unit}` : ""}`;
  return p.message ? `${count}, ${p.message}` : count;
}
