import { CutoverError, ErrorCode } from "../../errors.js";
import { findRunByPrefix } from "../../store/runs.js";
import { shortId } from "../../views/blocks.js";
import { noticeView } from "../../views/help.js";
import type { Caller, CommandDeps } from "../context.js";
import { type Answer, ok } from "../context.js";

/** `/migrate cancel <run>` */
export async function cancelHandler(runId: string, caller: Caller, deps: CommandDeps): Promise<Answer> {
  const matches = await findRunByPrefix(deps.db, runId);
  if (matches.length === 0) throw new CutoverError(ErrorCode.RunNotFound, `There is no run \`${runId}\`.`);
  if (matches.length > 1) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `\`${runId}\` matches more than one run; type more of its id.`,
    );
  }
  const run = matches[0]!;
  const outcome = await deps.runner.cancel(run.id, caller.user);
  if (outcome === "finished")
    return ok(noticeView(`Run \`${shortId(run.id)}\` has already ${run.status}; nothing to cancel.`));
  return ok(
    noticeView(
      outcome === "cancelled"
        ? `Run \`${shortId(run.id)}\` (${run.target}) is cancelled.`
        : `Cancelling run \`${shortId(run.id)}\` (${run.target}); the step in progress stops at its next safe point and keeps its checkpoint.`,
    ),
  );
}
