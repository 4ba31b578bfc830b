import type { StepReport } from "./types.js";

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
