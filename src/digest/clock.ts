/**
 * Time for the digest schedule, injectable so tests (and rehearsals) can move it.
 *
 * @example const clock = new ManualClock(new Date("2026-11-19T00:59:00Z")); clock.advance(60_000);
 */
export interface Clock {
  now(): Date;
  /** resolves after `ms` of this clock's time, or at once when `signal` aborts */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The machine's clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      // setTimeout's limit is about 24.8 days; the loop recomputes the next run after waking anyway
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    }),
};

/** A clock that only moves when told to; sleepers wake when it passes their deadline. */
export class ManualClock implements Clock {
  private current: number;
  private sleepers: Array<{ at: number; wake: () => void }> = [];

  constructor(start: Date) {
    this.current = start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const entry = {
        at: this.current + Math.max(0, ms),
        wake: () => {
          signal.removeEventListener("abort", entry.wake);
          this.sleepers = this.sleepers.filter((s) => s !== entry);
          resolve();
        },
      };
      signal.addEventListener("abort", entry.wake, { once: true });
      this.sleepers.push(entry);
    });
  }

  /** How many are asleep on this clock (a scheduler waiting for its next run is one). */
  get waiting(): number {
    return this.sleepers.length;
  }

  /** Moves time to `date` (never backwards) and wakes every sleeper whose time has come. */
  set(date: Date): void {
    this.current = Math.max(this.current, date.getTime());
    for (const s of [...this.sleepers]) if (s.at <= this.current) s.wake();
  }

  advance(ms: number): void {
    this.set(new Date(this.current + ms));
  }
}
