import type { StepReport } from "./define-step.js";

// What a run tells the outside: the observer each front end implements (the Slack progress
// message, a terminal, metrics), the fan-out to all of them, and the one-line notes said into a
// run's thread.

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

/** Why a run's signal was aborted: a person cancelled it, or this process is stopping. */
export type AbortReason = { kind: "cancel"; by: string } | { kind: "shutdown" };

/** Who cancelled, when a signal was aborted by a cancel. */
export function cancelledBy(signal: AbortSignal): string | undefined {
  const reason = signal.reason as AbortReason | undefined;
  return reason?.kind === "cancel" ? reason.by : undefined;
}

/**
 * Fans run changes out to every observer (the Slack progress message, a terminal, metrics).
 * It implements every method of {@link RunObserver}, optional ones included (`Required<>`), so a
 * method added to the observer later cannot be silently dropped here: the runner calls
 * `observer.runReport?.()`, and a fan-out without it swallowed every step report.
 */
export class RunEvents implements Required<RunObserver> {
  private readonly observers = new Set<RunObserver>();

  add(observer: RunObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  runChanged(runId: string): void {
    for (const o of this.observers) o.runChanged(runId);
  }

  runNote(runId: string, text: string): void {
    for (const o of this.observers) o.runNote(runId, text);
  }

  runAlert(runId: string, alert: RunAlert): void {
    for (const o of this.observers) o.runAlert?.(runId, alert);
  }

  runReport(runId: string, report: StepReport): void {
    for (const o of this.observers) o.runReport?.(runId, report);
  }
}

/**
 * How long one note's detail may be. The runner's notes (and a terminal's lines) are one line per
 * event, cut to a length a person reads at a glance: the whole error stays in the step's record
 * (`/migrate status`, the audit trail), so a 6,000-character stack is not posted three times.
 */
export const NOTE_DETAIL_MAX = 300;

/** The first line of `text`, cut at a word to at most `max` characters, with "…" when cut. */
export function firstLine(text: string, max = NOTE_DETAIL_MAX): string {
  const lines = text.trim().split("\n");
  const line = lines[0]!.trim();
  const more = lines.length > 1 && lines.slice(1).some((l) => l.trim());
  const chars = [...line];
  if (chars.length <= max) return more ? `${line} …` : line;
  const head = chars.slice(0, max - 1).join("");
  const space = head.lastIndexOf(" ");
  return `${space > max * 0.6 ? head.slice(0, space) : head}…`;
}

/** "✓ db-dump: dumped 12 tables (340 MB)", with the verification only where it adds something. */
export function succeededNote(step: string, summary: string, verified: string): string {
  const s = firstLine(summary);
  const v = firstLine(verified);
  const same = !v || s.includes(v) || v.includes(s.replace(/ …$/, ""));
  return `✓ ${step}: ${s}${same ? " · verified" : ` · verified: ${v}`}`;
}

/** A failed attempt that will be tried again; an error the same as the attempt before is not repeated. */
export function retryNote(
  step: string,
  attempt: number,
  of: number,
  message: string,
  previous: string | undefined,
  delayMs: number,
): string {
  const why = previous === message ? "the same error" : firstLine(message);
  return `↻ ${step} attempt ${attempt} of ${of} failed (${why}); retrying in ${Math.round(delayMs / 1000)} s`;
}

/** The step gave up; `repeated` when the thread has already heard this error. */
export function failedNote(step: string, message: string, repeated: boolean): string {
  return `✗ ${step} failed: ${repeated ? "the same error as the last attempt" : firstLine(message)} — the whole error: \`/migrate status\``;
}
