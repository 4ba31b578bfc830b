import type { CutoverDeps } from "../../jobs/cutover/service.js";
import {
  computeChange,
  latestSnapshot,
  preChecks,
  ttlCountdownMs,
  windowState,
} from "../../jobs/cutover/service.js";
import {
  createApproval,
  LiveRequestExists,
  liveCutoverRequest,
  setApprovalMessage,
} from "../../store/approvals.js";
import { audit } from "../../store/audit.js";
import { formatDuration, slackDate } from "../../views/blocks.js";
import { cutoverRequestView } from "../../views/cutover.js";
import { noticeView } from "../../views/help.js";
import type { Caller, CommandDeps } from "../context.js";
import { type Answer, ok, refused } from "../context.js";

export function cutoverDeps(deps: CommandDeps): CutoverDeps {
  return {
    db: deps.db,
    file: deps.file,
    cloudflare: deps.cloudflare,
    log: deps.log,
    now: deps.now,
    live: deps.live,
  };
}

/**
 * `/migrate cutover [--reason "…"]`: checks that the switch may be asked for (TTL lowered long
 * enough ago, inside the window or with a reason, every pre-check green), computes exactly what
 * will change from live state, and posts the request with Approve / Reject / Withdraw.
 */
export async function cutoverHandler(
  flags: Record<string, string | true>,
  caller: Caller,
  deps: CommandDeps,
): Promise<Answer> {
  if (!deps.file.dns)
    return refused(
      noticeView("This migration switches no DNS: there is no `dns` section in the migration file."),
    );
  if (caller.via !== "slack" || !deps.slack || !caller.channel) {
    return refused(
      noticeView(
        "A cutover needs a second person's approval in Slack: request it with `/migrate cutover` in the migration channel.",
      ),
    );
  }
  const now = deps.now();
  const cd = cutoverDeps(deps);
  const snapshot = await latestSnapshot(deps.db, deps.file);
  const lowerStep = deps.file.runbook.phases.flatMap((p) => p.steps).find((s) => s.uses === "dns.lower-ttl");
  if (!snapshot?.loweredAt) {
    return refused(
      noticeView(
        `⛔ Lower the TTL first: \`/migrate run ${lowerStep?.id ?? "<the dns.lower-ttl step>"}\`. It records today's values for the rollback.`,
      ),
    );
  }
  const wait = ttlCountdownMs(snapshot, now);
  if (wait > 0) {
    const ready = new Date(now.getTime() + wait);
    return refused(
      noticeView(
        `⏳ Not yet: the old TTL is still in resolvers' caches for ${formatDuration(wait)} (until ${slackDate(ready)}). \`/migrate status\` shows the countdown.`,
      ),
    );
  }
  const window = windowState(deps.file, now);
  const reason = typeof flags.reason === "string" ? flags.reason.trim() : "";
  if (window && !window.inside && deps.file.cutover.enforceWindow && !reason) {
    return refused(
      noticeView(
        `⛔ Outside the maintenance window (${window.label}). To go on anyway, say why: \`/migrate cutover --reason "…"\`.`,
      ),
    );
  }
  const pending = await liveCutoverRequest(deps.db, deps.file.environment, now);
  if (pending)
    return refused(
      noticeView(
        `A cutover request from <@${pending.requestedBy}> is already ${pending.status}; it expires ${slackDate(pending.expiresAt)}.`,
      ),
    );

  const checks = await preChecks(cd, snapshot);
  const failed = checks.filter((c) => !c.ok);
  if (failed.length) {
    await audit(deps.db, {
      actor: caller.user,
      action: "cutover.request",
      outcome: "refused",
      details: { failed: failed.map((c) => c.name) },
    });
    return refused(
      noticeView(
        `⛔ Not ready for the cutover:\n${failed.map((c) => `❌ ${c.name} — ${c.detail}`).join("\n")}`,
      ),
    );
  }
  const change = await computeChange(cd, snapshot);
  let approval: Awaited<ReturnType<typeof createApproval>>;
  try {
    approval = await createApproval(
      deps.db,
      {
        action: "dns.cutover",
        change,
        requestedBy: caller.user,
        channel: caller.channel,
        expiresAt: new Date(now.getTime() + deps.file.cutover.approvalExpiryMinutes * 60_000),
      },
      now,
    );
  } catch (err) {
    // A concurrent request was stored first: the database, not the check above, holds the rule
    // of one live cutover request per environment.
    if (!(err instanceof LiveRequestExists)) throw err;
    await audit(deps.db, {
      actor: caller.user,
      action: "cutover.request",
      outcome: "refused",
      details: { reason: "a request is already live", approvalId: err.holder.id },
    });
    return refused(
      noticeView(
        `A cutover request from <@${err.holder.requestedBy}> is already ${err.holder.status}; it expires ${slackDate(err.holder.expiresAt)}.`,
      ),
    );
  }
  const outsideWindow = window && !window.inside ? { window: window.label, reason } : null;
  const view = cutoverRequestView({
    approvalId: approval.id,
    change,
    prechecks: checks,
    requestedBy: caller.user,
    expiresAt: approval.expiresAt,
    status: "pending",
    outsideWindow,
  });
  const ts = await deps.slack.post(caller.channel, view);
  await setApprovalMessage(deps.db, approval.id, ts, outsideWindow ? `outside window: ${reason}` : null);
  await audit(deps.db, {
    actor: caller.user,
    action: "cutover.request",
    target: deps.file.environment,
    outcome: "ok",
    details: { approvalId: approval.id, changeHash: approval.changeHash, outsideWindow },
  });
  return ok(
    noticeView(
      `Cutover request posted; it needs one of the approvers (not you) within ${deps.file.cutover.approvalExpiryMinutes} min.`,
    ),
  );
}
