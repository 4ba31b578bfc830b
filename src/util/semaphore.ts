/**
 * At most `permits` holders at once; the others wait in arrival order. A released permit passes
 * straight to the next waiter, so a burst cannot overtake the queue.
 *
 * @example
 * const slots = new Semaphore(4);
 * await Promise.all(keys.map((k) => slots.run(() => copy(k))));
 */
export class Semaphore {
  private available: number;
  private readonly waiting: Array<() => void> = [];

  constructor(permits: number) {
    if (!Number.isInteger(permits) || permits < 1)
      throw new RangeError(`a semaphore needs at least one permit, got ${permits}`);
    this.available = permits;
  }

  /** How many callers wait for a permit. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Waits for a permit; the returned function gives it back (calling it twice is harmless). */
  async acquire(): Promise<() => void> {
    if (this.available > 0) this.available--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.available++;
    };
  }

  /** Runs `job` holding a permit; resolves or rejects as it does, and gives the permit back either way. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await job();
    } finally {
      release();
    }
  }
}
