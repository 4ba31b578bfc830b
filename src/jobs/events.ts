import type { RunAlert, RunObserver } from "./Runner.js";

/** Fans run changes out to every observer (the Slack progress message, a terminal, metrics). */
export class RunEvents implements RunObserver {
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
}
