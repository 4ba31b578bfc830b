import { Semaphore } from "../util/semaphore.js";

/**
 * The work that follows an ack (deduplication, the handler's database reads, the reply through
 * the response URL), run a few at a time. A burst of commands then never makes the acks of the
 * later ones wait behind the handlers of the earlier ones on the one event loop: each ack needs
 * only a sliver of the loop, and it gets it between two handlers instead of after twenty.
 */
export class AfterAck {
  private readonly slots: Semaphore;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`AfterAck limit must be ≥ 1, got ${limit}`);
    this.slots = new Semaphore(limit);
  }

  /** How many jobs wait for a turn (exported as a gauge). */
  get queued(): number {
    return this.slots.queued;
  }

  /** Runs `job` once fewer than `limit` others run; resolves or rejects as it does. */
  run<T>(job: () => Promise<T>): Promise<T> {
    return this.slots.run(async () => {
      // Yield once so the ack's response is written before the handler takes the loop.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return await job();
    });
  }
}
