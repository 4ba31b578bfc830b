import type { RunAlert, RunObserver } from "./Runner.js";
import type { StepReport } from "./types.js";

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
