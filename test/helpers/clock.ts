import { type Clock, systemClock } from "../../src/clock.js";

/**
 * The bot's calendar under the test's control: it runs at the machine's pace (the bot's queue,
 * timers and database keep working) and jumps forward when told, so "30 minutes later" is an
 * `advance`, not a wait or a row edited behind the bot's back.
 */
export class SteerableClock implements Clock {
  private offset = 0;

  now(): Date {
    return new Date(systemClock.now().getTime() + this.offset);
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return systemClock.sleep(ms, signal);
  }

  /** Moves the calendar `ms` forward (never back: what was decided stays decided). */
  advance(ms: number): void {
    this.offset += Math.max(0, ms);
  }
}
