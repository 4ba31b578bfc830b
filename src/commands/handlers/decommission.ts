import { describeError } from "../../errors.js";
import { setApprovalMessage } from "../../store/approvals.js";
import { decommissionRequestView } from "../../views/decommission.js";
import { noticeView } from "../../views/help.js";
import type { Caller, CommandDeps } from "../context.js";
import { type Answer, failed, ok, refused } from "../context.js";

/**
 * `/migrate decommission`: asks a second person to approve retiring the old services. Refused
 * before the stabilisation window has passed with the KPIs green; once approved, the runbook's
 * `decommission` step archives the source database into the target bucket, proves the archive
 * restores, and lists what to shut down by hand.
 */
export async function decommissionHandler(caller: Caller, deps: CommandDeps): Promise<Answer> {
  const step = deps.file.runbook.phases.flatMap((p) => p.steps).find((s) => s.uses === "decommission");
  if (!step)
    return refused(
      noticeView("This runbook has no `decommission` step: there is nothing to ask approval for."),
    );
  if (caller.via !== "slack" || !deps.slack || !caller.channel) {
    return refused(
      noticeView(
        "Retiring the old services needs a second person's approval in Slack: ask with `/migrate decommission` in the migration channel.",
      ),
    );
  }
  if (!deps.requestDecommission) {
    return refused(
      noticeView("This process cannot ask for a decommission (no state for it): ask from the bot in Slack."),
    );
  }
  let requested: Awaited<ReturnType<NonNullable<CommandDeps["requestDecommission"]>>>;
  try {
    requested = await deps.requestDecommission(step.with ?? {}, caller.user, caller.channel);
  } catch (err) {
    return failed(noticeView(`⚠️ ${describeError(err)}`));
  }
  const { approval, change } = requested;
  const ts = await deps.slack.post(
    caller.channel,
    decommissionRequestView({
      approvalId: approval.id,
      change,
      requestedBy: caller.user,
      expiresAt: approval.expiresAt,
      status: approval.status,
    }),
  );
  await setApprovalMessage(deps.db, approval.id, ts);
  return ok(
    noticeView(
      `Decommission request posted: an approver other than you types \`${change.environment}\` to confirm. Then \`${step.id}\` runs.`,
    ),
  );
}
