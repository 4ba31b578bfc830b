import { CutoverError, ErrorCode } from "../../../errors.js";
import { type ConsumeResult, consumeApproval } from "../../../store/approvals.js";
import { audit } from "../../../store/audit.js";
import type { Db } from "../../../store/client.js";
import type { StepContext } from "../../define-step.js";

type Refusal = Extract<ConsumeResult, { ok: false }>["reason"];

/**
 * Uses a second person's approval for the change a step is about to make, once
 * (consumeApproval). When it cannot be used, the refusal is audited under `action` and the step
 * fails with why and with `nothingDone` (what was left alone and how to ask again).
 */
export async function useApprovalOrFail(
  db: Db,
  ctx: StepContext,
  opts: {
    approvalId: string;
    change: unknown;
    now: Date;
    /** the audit action, e.g. "cutover.execute" */
    action: string;
    /** why a `changed` approval is void, in this step's words */
    changed: string;
    /** the failure's hint, e.g. "Nothing was changed. Ask again with `/migrate cutover`." */
    nothingDone: string;
  },
): Promise<void> {
  const used = await consumeApproval(db, opts.approvalId, opts.change, opts.now, ctx.run.id);
  if (used.ok) return;
  await audit(db, {
    actor: ctx.run.requestedBy,
    action: opts.action,
    outcome: "refused",
    runId: ctx.run.id,
    details: { approvalId: opts.approvalId, reason: used.reason },
  });
  const reasons: Record<Refusal, string> = {
    not_approved: "it has not been approved (or was rejected or withdrawn)",
    expired: "it expired before it was carried out",
    used: "it has already been used once",
    changed: opts.changed,
  };
  throw new CutoverError(ErrorCode.ApprovalInvalid, `The approval cannot be used: ${reasons[used.reason]}.`, {
    hint: opts.nothingDone,
  });
}
