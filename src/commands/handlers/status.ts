import { describeError } from "../../errors.js";
import { describeReplication, replicationStatus } from "../../jobs/cutover/live.js";
import { latestSnapshot, ttlCountdownMs } from "../../jobs/cutover/service.js";
import { findLock, latestStepExecutions, recentRuns } from "../../store/runs.js";
import { formatDuration, slackDate } from "../../views/blocks.js";
import { statusView } from "../../views/status.js";
import type { CommandDeps } from "../context.js";
import { type Answer, ok } from "../context.js";

/** `/migrate status` */
export async function statusHandler(deps: CommandDeps): Promise<Answer> {
  const { db, file } = deps;
  const [latest, lock, recent] = await Promise.all([
    latestStepExecutions(db, file.environment),
    findLock(db, file.environment),
    recentRuns(db, file.environment, 5),
  ]);
  const states = new Map(
    [...latest].map(([step, e]) => [
      step,
      {
        status: e.status,
        runId: e.runId,
        dryRun: e.run.dryRun,
        requestedBy: e.run.requestedBy,
        startedAt: e.startedAt,
        finishedAt: e.finishedAt,
        error: e.error,
      },
    ]),
  );
  // The cutover countdown: resolvers may cache the old answer for the old TTL after it was lowered.
  let cutover: string | undefined;
  if (file.dns) {
    const snapshot = await latestSnapshot(db, file);
    if (!snapshot?.loweredAt) cutover = "🔀 DNS cutover: lower the TTL first (the `dns.lower-ttl` step).";
    else {
      const wait = ttlCountdownMs(snapshot, deps.now());
      cutover =
        wait > 0
          ? `⏳ DNS cutover possible in ${formatDuration(wait)} (at ${slackDate(new Date(deps.now().getTime() + wait))}): the old TTL is still in caches.`
          : `🔀 DNS cutover may be requested (\`/migrate cutover\`); TTL lowered ${slackDate(new Date(snapshot.loweredAt))}.`;
    }
  }
  // A live migration: each replication direction's lag, read from the servers now.
  let replication: string[] | undefined;
  if (file.replication && deps.live) {
    try {
      const found = await replicationStatus(deps.live.step);
      replication = found.length ? found.map(describeReplication) : ["not running (db.replicate starts it)"];
    } catch (err) {
      replication = [`could not be read: ${describeError(err)}`];
    }
  }
  return ok(
    statusView({
      cutover,
      replication,
      file,
      latest: states,
      lock,
      recent,
      available: new Set(deps.registry.keys()),
      now: deps.now(),
    }),
  );
}
