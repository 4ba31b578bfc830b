import { resolveTarget } from "../../jobs/runbook.js";
import { formatDuration, shortId, slackDate } from "../../views/blocks.js";
import { confirmRunView } from "../../views/confirm.js";
import { noticeView } from "../../views/help.js";
import type { Caller, CommandDeps } from "../context.js";
import { type Answer, ok, refused } from "../context.js";

/**
 * `/migrate run <step|phase> [--dry-run]` and `/migrate plan [target]`: creates the run and
 * queues it. The run's progress message in the channel follows; this reply only acknowledges.
 */
export async function runHandler(
  req: { target: string; dryRun: boolean; options?: Record<string, unknown>; confirmed?: boolean },
  caller: Caller,
  deps: CommandDeps,
): Promise<Answer> {
  const destructive = ["replace", "delete", "undo"].filter((k) => req.options?.[k] === true);
  if (destructive.length > 0 && !req.dryRun && !req.confirmed) {
    // Overwriting or deleting on the target needs an explicit confirmation: a button with
    // Slack's own confirm dialog, or --confirm in a terminal. The dry run shows what it would do.
    if (caller.via === "terminal" && req.options?.undo === true) {
      return refused(
        noticeView(
          `⚠️ \`undo ${req.target}\` tears down what Cutover created there. Preview with \`npx cutover undo ${req.target} --dry-run\`, then add \`--confirm\` to go ahead.`,
        ),
      );
    }
    if (caller.via === "terminal") {
      return refused(
        noticeView(
          `⚠️ \`--${destructive.join("` and `--")}\` may overwrite or delete data on the target. Preview with \`npx cutover run ${req.target} --dry-run\`, then add \`--confirm\` to go ahead.`,
        ),
      );
    }
    // Only a step or phase that exists is worth a confirmation (its id is short enough for the
    // button's value and the dialog's 300 characters); anything else is answered as unknown now.
    return ok(
      confirmRunView(resolveTarget(deps.file, req.target).name, {
        replace: destructive.includes("replace"),
        delete: destructive.includes("delete"),
        undo: destructive.includes("undo"),
      }),
    );
  }
  const result = await deps.runner.submit({
    target: req.target,
    dryRun: req.dryRun,
    requestedBy: caller.user,
    channel: caller.channel,
    idempotencyKey: caller.idempotencyKey,
    options: req.options ?? {},
  });
  if (!result.created && result.reason === "locked") {
    const since = formatDuration(deps.now().getTime() - result.lock.acquiredAt.getTime());
    const who = caller.via === "slack" ? `<@${result.lock.holder}>` : result.lock.holder;
    return refused(
      noticeView(
        `⛔ Not started: ${deps.file.environment} is locked by ${who} since ${slackDate(result.lock.acquiredAt)} (${since} ago) for run \`${shortId(result.lock.runId)}\`. Wait for it to finish, or cancel it with \`/migrate cancel ${shortId(result.lock.runId)}\`. A dry run (\`--dry-run\`) needs no lock.`,
      ),
    );
  }
  const undo = req.options?.undo === true ? "undo of " : "";
  const what = req.dryRun
    ? `Dry run of ${undo}\`${result.name}\``
    : `Run of ${undo}${result.kind} \`${result.name}\``;
  const already = result.created ? "" : " (this request was already received; nothing new started)";
  return ok(
    noticeView(
      `${what} queued as \`${shortId(result.runId)}\`${already}. ${caller.via === "slack" ? "Progress follows in the channel." : "Following it here."}`,
    ),
    [result.runId],
  );
}
