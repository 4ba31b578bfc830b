import type { View } from "@slack/types";
import { audit } from "../store/audit.js";
import { checkView, recordView } from "../store/slack.js";
import type { CommandDeps } from "./context.js";

/**
 * Opens a modal and remembers it (id and hash as Slack answered, the person, what it is about),
 * so its submission can be told from one the bot never offered.
 */
export async function openBoundView(
  deps: CommandDeps,
  triggerId: string,
  view: View,
  binding: { user: string; request: string },
): Promise<void> {
  const opened = await deps.slack?.openView(triggerId, view);
  if (!opened) return;
  await recordView(deps.db, {
    viewId: opened.id,
    hash: opened.hash,
    callbackId: (view as { callback_id?: string }).callback_id ?? "",
    userId: binding.user,
    request: binding.request,
  });
}

/** What a view_submission says about itself: the parts the binding is checked on. */
export interface SubmittedView {
  id?: string;
  hash?: string;
  callback_id: string;
  private_metadata?: string;
}

/**
 * Why a submission is not read, or undefined when it comes from a modal the bot opened for this
 * person and this request (`request`, when given, must be what the modal was opened for). A
 * refusal is audited under `action`.
 */
export async function unboundRefusal(
  deps: CommandDeps,
  user: string,
  view: SubmittedView,
  action: string,
  request?: string,
): Promise<string | undefined> {
  const check = await checkView(deps.db, {
    viewId: view.id,
    hash: view.hash,
    callbackId: view.callback_id,
    userId: user,
  });
  const reason = !check.ok
    ? check.reason
    : request !== undefined && check.request !== request
      ? "opened for another request"
      : undefined;
  if (!reason) return undefined;
  await audit(deps.db, {
    actor: user,
    action,
    outcome: "refused",
    details: { reason: `form ${reason}`, viewId: view.id ?? null },
  });
  return reason === "already submitted"
    ? "This form was already submitted once. Open it again to do it again."
    : "Cutover did not open this form for you (or it changed since): nothing was done. Open it again from Slack (the button, or /rollback).";
}
