import { findLock, latestStepExecutions, recentRuns } from "../../store/runs.js";
import type { Reply } from "../../views/blocks.js";
import { statusView } from "../../views/status.js";
import type { CommandDeps } from "../context.js";

/** `/migrate status` */
export async function statusHandler(deps: CommandDeps): Promise<Reply> {
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
  return statusView({
    file,
    latest: states,
    lock,
    recent,
    available: new Set(deps.registry.keys()),
    now: deps.now(),
  });
}
