/**
 * Every action_id and callback_id Cutover uses, in one place so listeners and views cannot
 * drift apart.
 */
export const ACTION = {
  /** a button in a help reply that runs `/migrate status` */
  /** cancel button on a run's progress message; value = run id */
  cancelRun: "cutover.run.cancel",
  /** confirms a run with a destructive option (--replace, --delete); value = JSON {target, replace, delete} */
  confirmRun: "cutover.run.confirm",
  /** dismisses an ephemeral question */
  dismiss: "cutover.dismiss",
  /** buttons on a cutover request; value = approval id */
  approveCutover: "cutover.approval.approve",
  rejectCutover: "cutover.approval.reject",
  withdrawCutover: "cutover.approval.withdraw",
  /** the prominent button posted when the watch after a cutover breaches a threshold */
  rollbackNow: "cutover.rollback.open",
} as const;

export const CALLBACK = {
  /** the approver's modal: type the record name to confirm; private_metadata = approval id */
  approveCutover: "cutover.approval.modal",
  /** the /rollback modal: type ROLLBACK */
  rollback: "cutover.rollback.modal",
} as const;

/** block_id / action_id pairs of modal inputs, read back from view.state.values */
export const INPUT = {
  confirmName: { block: "confirm_name", action: "value" },
  note: { block: "note", action: "value" },
  rollbackWord: { block: "rollback_word", action: "value" },
  rollbackReason: { block: "rollback_reason", action: "value" },
} as const;
