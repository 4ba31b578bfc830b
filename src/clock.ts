/**
 * The bot's calendar: the readings of the date or time of day that decide something (cost and
 * KPI windows, the digest, approval expiry, the TTL wait, the stabilisation window, run and step
 * times) go through one of these, so a test or a rehearsal decides what day it is. Elapsed-time
 * measurements within one process use `performance.now()`; a few report stamps (a dump's folder
 * name) still read the machine's clock.
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

/**
 * A clock that starts at `start` and runs at the pace of `base`: a rehearsal on a day of its
 * choosing (the 1st of a month, the last minute of one) whose steps still take real time.
 *
 * @example const clock = clockFrom(new Date("2026-11-30T15:59:00Z")); // 23:59 in Singapore
 */
export function clockFrom(start: Date, base: Clock = systemClock): Clock {
  const offset = start.getTime() - base.now().getTime();
  return {
    now: () => new Date(base.now().getTime() + offset),
    sleep: (ms, signal) => base.sleep(ms, signal),
  };
}

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
