/**
 * The work that follows an ack (deduplication, the handler's database reads, the reply through
 * the response URL), run a few at a time. A burst of commands then never makes the acks of the
 * later ones wait behind the handlers of the earlier ones on the one event loop: each ack needs
 * only a sliver of the loop, and it gets it between two handlers instead of after twenty.
 */
export class AfterAck {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`AfterAck limit must be ≥ 1, got ${limit}`);
  }

  /** How many jobs wait for a turn (exported as a gauge). */
  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `job` once fewer than `limit` others run; resolves or rejects as it does. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      // Yield once so the ack's response is written before the handler takes the loop.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return await job();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next job, so `running` is unchanged.
      if (next) next();
      else this.running--;
    }
  }
}
