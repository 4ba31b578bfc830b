/**
 * The one back-off of Cutover: capped exponential with full jitter, a random wait up to
 * `base × 2^(attempt-1)`, at most `cap`. A step's attempts (the runner) and an object copy's
 * (the bucket sync) both wait this way. Full jitter because the waiters are many at once (a
 * sync's workers, several replicas' steps hitting one throttled API): the randomness spreads
 * their retries instead of sending them back together; the cap keeps a late attempt within
 * minutes. pg-boss does not retry a run on top of it (the run queue's retryLimit is 0): a run
 * whose worker died is taken up again by the recovery sweep, from its checkpoints.
 *
 * @example backoffMs(3, 2_000) // somewhere in 0…8,000
 */
export function backoffMs(
  attempt: number,
  baseMs: number,
  capMs = 20_000,
  random: () => number = Math.random,
): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}
