import type {
  AllMiddlewareArgs,
  BlockButtonAction,
  SlackActionMiddlewareArgs,
  SlackViewMiddlewareArgs,
  ViewSubmitAction,
} from "@slack/bolt";
import { describeError } from "../errors.js";
import type { Approval } from "../generated/prisma/client.js";
import type { CutoverChange } from "../jobs/cutover/types.js";
import type { DecommissionChange } from "../jobs/steps/ops/decommission.js";
import type { Metrics } from "../metrics.js";
import {
  decideApproval,
  findApproval,
  getApproval,
  isUuid,
  setApprovalRun,
  withdrawApproval,
} from "../store/approvals.js";
import { audit } from "../store/audit.js";
import { claimView } from "../store/slack.js";
import type { Reply } from "../views/blocks.js";
import { approveModal, cutoverRequestView } from "../views/cutover.js";
import { decommissionApproveModal, decommissionRequestView } from "../views/decommission.js";
import { INPUT } from "../views/ids.js";
import { openBoundView, unboundRefusal } from "./bound-view.js";
import type { CommandDeps } from "./context.js";

type ButtonArgs = SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs;

/** The request a button names; null for an id that is not one (a forged or mangled value). */
async function findRequest(deps: CommandDeps, id: string): Promise<Approval | null> {
  return findApproval(deps.db, id);
}

const MALFORMED =
  "That button does not name a request Cutover made (its id is malformed): use the buttons on the request message, or ask again.";

/**
 * The requests a second person approves, by the approval's `action`: the DNS cutover and the
 * decommission share the buttons, the rules and the atomic decision; they differ in what is
 * shown, what is typed to confirm, and which step carries the approval out.
 */
interface ApprovalKind {
  /** "cutover": in audit actions and messages */
  name: string;
  /** the step type that carries out an approved request */
  uses: string;
  /** what the approver types in the modal */
  confirmWord(approval: Approval): string;
  modal(approval: Approval): ReturnType<typeof approveModal>;
  view(approval: Approval, runId: string | null, deps: CommandDeps): Reply;
}

const CUTOVER: ApprovalKind = {
  name: "cutover",
  uses: "dns.cutover",
  confirmWord: (a) => (a.change as unknown as CutoverChange).records[0]?.name ?? "",
  modal: (a) => approveModal(a.id, a.change as unknown as CutoverChange),
  view(approval, runId, deps) {
    const outsideWindow = approval.note?.startsWith("outside window: ")
      ? {
          window: deps.file.cutover.window
            ? `${deps.file.cutover.window.start}–${deps.file.cutover.window.end} ${deps.file.cutover.window.timezone}`
            : "",
          reason: approval.note.slice(16),
        }
      : null;
    return cutoverRequestView({
      approvalId: approval.id,
      change: approval.change as unknown as CutoverChange,
      prechecks: [],
      requestedBy: approval.requestedBy,
      expiresAt: approval.expiresAt,
      status: approval.status,
      decidedBy: approval.decidedBy,
      note: outsideWindow ? null : approval.note,
      outsideWindow,
      runId,
    });
  },
};

const DECOMMISSION: ApprovalKind = {
  name: "decommission",
  uses: "decommission",
  confirmWord: (a) => (a.change as unknown as DecommissionChange).environment,
  modal: (a) => decommissionApproveModal(a.id, a.change as unknown as DecommissionChange),
  view: (approval, runId) =>
    decommissionRequestView({
      approvalId: approval.id,
      change: approval.change as unknown as DecommissionChange,
      requestedBy: approval.requestedBy,
      expiresAt: approval.expiresAt,
      status: approval.status,
      decidedBy: approval.decidedBy,
      note: approval.note,
      runId,
    }),
};

function kindOf(approval: Approval | null | undefined): ApprovalKind {
  return approval?.action === "decommission" ? DECOMMISSION : CUTOVER;
}

/** Edits the request message to show the approval's current state. */
async function refreshRequest(
  deps: CommandDeps,
  approval: Approval,
  extra: { runId?: string | null } = {},
): Promise<void> {
  if (!deps.slack || !approval.channel || !approval.messageTs) return;
  await deps.slack.update(
    approval.channel,
    approval.messageTs,
    kindOf(approval).view(approval, extra.runId ?? approval.runId, deps),
  );
}

/** Why a person may not decide on a request (approve or reject it), or undefined when they may. */
async function approverRefusal(
  deps: CommandDeps,
  approval: Approval | null,
  user: string,
  channel: string | null,
  verb: "approve" | "reject" = "approve",
  /** ask Slack for the groups' members now, not from the cache: for the moment of a decision */
  fresh = false,
): Promise<string | undefined> {
  if (!approval) return "That request no longer exists (or the button's id is malformed): nothing was done.";
  if (!deps.access.channelAllowed(channel)) return "This channel does not take migration commands.";
  const kind = kindOf(approval);
  if (approval.requestedBy === user)
    return verb === "approve"
      ? `You asked for this ${kind.name}, so you cannot approve it: a second person must.`
      : `You asked for this ${kind.name}: withdraw it instead of rejecting it.`;
  let approver: boolean;
  try {
    approver = await deps.access.isApprover(user, { fresh });
  } catch (err) {
    // a user group that cannot be read refuses (never allows), and says why
    return `Could not check your access: Slack said ${(err as Error).message}.`;
  }
  if (!approver)
    return "You are not an approver of this migration (see `access.approvers` in the migration file).";
  if (approval.status !== "pending") return `This request is already ${approval.status}.`;
  if (approval.expiresAt <= deps.now())
    return `This request has expired: ask for a new one with \`/migrate ${kind.name}\`.`;
  return undefined;
}

async function refuse(
  deps: CommandDeps,
  respond: ButtonArgs["respond"],
  user: string,
  action: string,
  approvalId: string,
  reason: string,
) {
  await audit(deps.db, { actor: user, action, outcome: "refused", details: { approvalId, reason } });
  await respond({ response_type: "ephemeral", replace_original: false, text: `⛔ ${reason}` });
}

/**
 * A deciding button's click (Approve…, Reject), acked and checked: the request its value names and
 * whether this person may decide it here. Undefined once the click was refused, audited and told
 * why.
 */
async function decidingClick(
  deps: CommandDeps,
  { body, action, respond }: ButtonArgs,
  verb: "approve" | "reject",
): Promise<{ approval: Approval; kind: ApprovalKind } | undefined> {
  const approvalId = action.value ?? "";
  if (!isUuid(approvalId)) {
    await refuse(deps, respond, body.user.id, `cutover.${verb}`, approvalId.slice(0, 80), MALFORMED);
    return undefined;
  }
  const approval = await findRequest(deps, approvalId);
  const kind = kindOf(approval);
  // a rejection decides at once: its approvers are asked of Slack now, as a modal's submission does
  const reason = await approverRefusal(
    deps,
    approval,
    body.user.id,
    body.channel?.id ?? null,
    verb,
    verb === "reject",
  );
  if (reason || !approval) {
    await refuse(
      deps,
      respond,
      body.user.id,
      `${kind.name}.${verb}`,
      approvalId,
      reason ?? "no such request",
    );
    return undefined;
  }
  return { approval, kind };
}

/** Why the atomic decision went to no one here: the request changed between the checks and it. */
function undecided(reason: "not_found" | "self" | "expired" | "already_decided", verb: "approve" | "reject") {
  if (reason === "expired") return "The request expired.";
  if (reason === "self") return `You cannot ${verb} your own request.`;
  if (reason === "not_found") return "That request no longer exists: nothing was done.";
  return "Someone else already decided this request.";
}

/** Approve…: checks the rules, then opens the modal where the approver types the record name. */
export function approveCutoverAction(deps: CommandDeps, metrics: Metrics) {
  return async (args: ButtonArgs) => {
    await args.ack();
    metrics.actions.inc({ action: "approve_cutover" });
    const click = await decidingClick(deps, args, "approve");
    if (!click) return;
    const { approval, kind } = click;
    await audit(deps.db, {
      actor: args.body.user.id,
      action: `${kind.name}.approve.open`,
      outcome: "info",
      details: { approvalId: approval.id },
    });
    await openBoundView(deps, args.body.trigger_id, kind.modal(approval), {
      user: args.body.user.id,
      request: approval.id,
    });
  };
}

/** The approver's modal: the typed name must match; the decision is atomic (two approvers → one approval). */
export function approveCutoverSubmission(deps: CommandDeps, metrics: Metrics) {
  return async ({ ack, body, view }: SlackViewMiddlewareArgs<ViewSubmitAction> & AllMiddlewareArgs) => {
    metrics.actions.inc({ action: "approve_cutover_submit" });
    const user = body.user.id;
    const approvalId = view.private_metadata;
    const values = view.state.values;
    const typed = (values[INPUT.confirmName.block]?.[INPUT.confirmName.action]?.value ?? "").trim();
    const note = values[INPUT.note.block]?.[INPUT.note.action]?.value?.trim() || null;
    // Read nothing from a form the bot did not open for this person and this request.
    const unbound = await unboundRefusal(deps, user, view, "cutover.approve", approvalId);
    if (unbound) {
      await ack({ response_action: "errors", errors: { [INPUT.confirmName.block]: unbound.slice(0, 150) } });
      return;
    }
    const approval = await findRequest(deps, approvalId);
    const kind = kindOf(approval);
    const expected = approval ? kind.confirmWord(approval) : "";
    const reason = await approverRefusal(deps, approval, user, approval?.channel ?? null, "approve", true);
    if (reason) {
      await audit(deps.db, {
        actor: user,
        action: `${kind.name}.approve`,
        outcome: "refused",
        details: { approvalId, reason },
      });
      await ack({ response_action: "errors", errors: { [INPUT.confirmName.block]: reason.slice(0, 150) } });
      return;
    }
    if (typed !== expected) {
      await audit(deps.db, {
        actor: user,
        action: `${kind.name}.approve`,
        outcome: "refused",
        details: { approvalId, reason: "typed name differs" },
      });
      await ack({
        response_action: "errors",
        errors: { [INPUT.confirmName.block]: `Type ${expected} exactly to confirm.` },
      });
      return;
    }
    if (!(await claimView(deps.db, view.id, deps.now()))) {
      await audit(deps.db, {
        actor: user,
        action: `${kind.name}.approve`,
        outcome: "refused",
        details: { approvalId, reason: "form already submitted" },
      });
      await ack({
        response_action: "errors",
        errors: { [INPUT.confirmName.block]: "This form was already submitted once." },
      });
      return;
    }
    const decided = await decideApproval(deps.db, approvalId, {
      by: user,
      approve: true,
      note,
      now: deps.now(),
    });
    if (!decided.ok) {
      const why = undecided(decided.reason, "approve");
      await audit(deps.db, {
        actor: user,
        action: `${kind.name}.approve`,
        outcome: "refused",
        details: { approvalId, reason: decided.reason },
      });
      await ack({ response_action: "errors", errors: { [INPUT.confirmName.block]: why } });
      if (decided.approval) await refreshRequest(deps, decided.approval);
      return;
    }
    await ack();
    await audit(deps.db, {
      actor: user,
      action: `${kind.name}.approve`,
      outcome: "ok",
      details: { approvalId, note },
    });
    // Carry it out as a run of its step (dns.cutover, decommission), in the requester's name.
    const step = deps.file.runbook.phases.flatMap((p) => p.steps).find((s) => s.uses === kind.uses);
    let runId: string | null = null;
    let problem: string | undefined;
    if (!step) problem = `the runbook has no \`${kind.uses}\` step`;
    else {
      try {
        const submitted = await deps.runner.submit({
          target: step.id,
          dryRun: false,
          requestedBy: decided.approval.requestedBy,
          channel: decided.approval.channel,
          idempotencyKey: `${kind.name}:${approvalId}`,
          options: { approvalId },
        });
        if (submitted.created || submitted.reason === "duplicate") runId = submitted.runId;
        else
          problem = `${deps.file.environment} is locked by <@${submitted.lock.holder}> (run \`${submitted.lock.runId.slice(0, 8)}\`); when it is free, \`/migrate run ${step.id}\` carries out this approval`;
      } catch (err) {
        problem = describeError(err);
      }
    }
    if (runId) await setApprovalRun(deps.db, approvalId, runId);
    const fresh = await getApproval(deps.db, approvalId);
    await refreshRequest(deps, fresh, { runId });
    if (problem && deps.slack && fresh.channel) {
      await deps.slack.post(fresh.channel, { text: `Approved, but not started: ${problem}.`, blocks: [] });
    }
  };
}

/** Reject: an approver says no. */
export function rejectCutoverAction(deps: CommandDeps, metrics: Metrics) {
  return async (args: ButtonArgs) => {
    await args.ack();
    metrics.actions.inc({ action: "reject_cutover" });
    const click = await decidingClick(deps, args, "reject");
    if (!click) return;
    const { approval, kind } = click;
    const user = args.body.user.id;
    const decided = await decideApproval(deps.db, approval.id, { by: user, approve: false, now: deps.now() });
    if (!decided.ok) {
      // another decision (or the clock) got there between the checks and this one: say so
      await refuse(
        deps,
        args.respond,
        user,
        `${kind.name}.reject`,
        approval.id,
        undecided(decided.reason, "reject"),
      );
      if (decided.approval) await refreshRequest(deps, decided.approval);
      return;
    }
    await audit(deps.db, {
      actor: user,
      action: `${kind.name}.reject`,
      outcome: "ok",
      details: { approvalId: approval.id },
    });
    await refreshRequest(deps, decided.approval);
  };
}

/** Withdraw: the requester takes the request back. */
export function withdrawCutoverAction(deps: CommandDeps, metrics: Metrics) {
  return async ({ ack, body, action, respond }: ButtonArgs) => {
    await ack();
    metrics.actions.inc({ action: "withdraw_cutover" });
    const approvalId = action.value ?? "";
    if (!isUuid(approvalId))
      return refuse(deps, respond, body.user.id, "cutover.withdraw", approvalId.slice(0, 80), MALFORMED);
    const kind = kindOf(await findRequest(deps, approvalId));
    if (!deps.access.channelAllowed(body.channel?.id ?? null))
      return refuse(
        deps,
        respond,
        body.user.id,
        `${kind.name}.withdraw`,
        approvalId,
        "This channel does not take migration commands.",
      );
    const ok = await withdrawApproval(deps.db, approvalId, body.user.id);
    if (!ok)
      return refuse(
        deps,
        respond,
        body.user.id,
        `${kind.name}.withdraw`,
        approvalId,
        "Only the person who asked can withdraw a request, and only while it is pending.",
      );
    await audit(deps.db, {
      actor: body.user.id,
      action: `${kind.name}.withdraw`,
      outcome: "ok",
      details: { approvalId },
    });
    const approval = await getApproval(deps.db, approvalId);
    await refreshRequest(deps, approval);
  };
}
