import { Transform, type TransformCallback } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

/** Small flow-control pieces the storage steps share: a bounded queue, a semaphore, a rate limit. */

/** A FIFO with a capacity: `push` waits while it is full, `shift` waits while it is empty. */
export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private closed = false;
  private readonly takers: Array<(v: T | undefined) => void> = [];
  private readonly givers: Array<() => void> = [];

  constructor(private readonly capacity: number) {}

  get length(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.capacity;
  }

  async push(item: T, signal?: AbortSignal): Promise<void> {
    while (this.items.length >= this.capacity && this.takers.length === 0) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        // The listener goes when the wait ends: thousands left on a long-lived signal make every
        // later addEventListener on it slow (EventTarget scans them for duplicates).
        const onAbort = () => resolve();
        this.givers.push(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        });
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    signal?.throwIfAborted();
    const taker = this.takers.shift();
    if (taker) taker(item);
    else this.items.push(item);
  }

  /** the next item, or undefined once closed and drained */
  async shift(): Promise<T | undefined> {
    if (this.items.length > 0) {
      const item = this.items.shift();
      this.givers.shift()?.();
      return item;
    }
    if (this.closed) return undefined;
    return new Promise((resolve) => this.takers.push(resolve));
  }

  /** no more pushes: waiting takers get undefined */
  close(): void {
    this.closed = true;
    for (const t of this.takers.splice(0)) t(undefined);
    for (const g of this.givers.splice(0)) g();
  }
}

/** A token bucket shared by every copy: at most `bytesPerSecond` on average, one second of burst. */
export class RateLimit {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond;
  }

  async take(n: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(
        this.bytesPerSecond,
        this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
      );
      this.last = now;
      // A chunk larger than the burst is let through once the bucket is full, leaving it in debt.
      if (this.tokens >= Math.min(n, this.bytesPerSecond)) {
        this.tokens -= n;
        return;
      }
      const wait = ((Math.min(n, this.bytesPerSecond) - this.tokens) / this.bytesPerSecond) * 1000;
      await sleep(Math.max(1, Math.ceil(wait)), undefined, signal ? { signal } : {});
    }
  }
}

/** Passes bytes through, counting them and waiting on the rate limit when there is one. */
export function meter(onBytes: (n: number) => void, limit?: RateLimit, signal?: AbortSignal): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (!limit) {
        onBytes(chunk.length);
        done(null, chunk);
        return;
      }
      limit.take(chunk.length, signal).then(
        () => {
          onBytes(chunk.length);
          done(null, chunk);
        },
        // On a cancel the upload is aborted through its own signal; an error pushed down the
        // stream would surface in the SDK's wrapper streams with nobody left to listen.
        (err) => {
          if (!signal?.aborted) done(err as Error);
        },
      );
    },
  });
}

// an object copy retries with the same back-off as a step (src/jobs/backoff.ts)
export { backoffMs } from "../../backoff.js";

/** Throughput over the last `windowMs`, for ETAs that follow the current pace. */
export class RateMeter {
  private readonly samples: Array<[number, number]> = [];
  constructor(private readonly windowMs = 10_000) {}

  add(total: number, now = performance.now()): void {
    this.samples.push([now, total]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > this.windowMs) this.samples.shift();
  }

  /** units per second, 0 until two samples exist */
  rate(): number {
    if (this.samples.length < 2) return 0;
    const [t0, v0] = this.samples[0]!;
    const [t1, v1] = this.samples[this.samples.length - 1]!;
    return t1 > t0 ? ((v1 - v0) * 1000) / (t1 - t0) : 0;
  }
}
