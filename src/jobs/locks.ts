import type pg from "pg";
import type { Logger } from "pino";

/** The advisory lock a run's worker holds: exactly one process works a run. */
export function runLockKey(runId: string): string {
  return `cutover-run:${runId}`;
}

/** The advisory lock a rollback holds while it works: one rollback at a time per environment. */
export function rollbackLockKey(env: string): string {
  return `cutover-rollback:${env}`;
}

/**
 * Session advisory locks on the state database, by name, in any replica. A crash releases a lock
 * with its session, so a held lock always means someone alive is at work; that is why these are
 * session locks and not rows (a row outlives the process that wrote it).
 *
 * @example
 * const ran = await locks.rollback("production", async () => restore());
 * if (!ran) say("a rollback is already under way");
 */
export class LockService {
  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
  ) {}

  /** Works a run while holding its lock; false when another session holds it. */
  run(runId: string, fn: () => Promise<void>, onLost?: () => void): Promise<boolean> {
    return this.exclusive(runLockKey(runId), fn, onLost);
  }

  /** Carries out a rollback while holding the environment's rollback lock; false when held. */
  rollback(env: string, fn: () => Promise<void>): Promise<boolean> {
    return this.exclusive(rollbackLockKey(env), fn);
  }

  /**
   * Runs fn while holding the session advisory lock named `key`; false (fn not run) when another
   * session holds it. `onLost` hears that the session died while fn was running (fn goes on, but
   * the lock is gone: stop as at shutdown).
   */
  async exclusive(key: string, fn: () => Promise<void>, onLost?: () => void): Promise<boolean> {
    const client = await this.pool.connect();
    // A checked-out client reports a dropped session (the state database restarted, the network
    // cut it) as an 'error' event on itself; unheard, that event would end the whole process.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
      this.log.warn({ err: { message: err.message }, lock: key }, "lost the session holding a lock");
      onLost?.();
    };
    client.on("error", onError);
    try {
      const got = await client.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok",
        [key],
      );
      if (!got.rows[0]?.ok) return false;
      try {
        await fn();
      } finally {
        if (!lost) await client.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [key]);
      }
      return true;
    } finally {
      client.off("error", onError);
      client.release(lost);
    }
  }
}
