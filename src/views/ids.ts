/**
 * Every action_id and callback_id Cutover uses, in one place so listeners and views cannot
 * drift apart.
 */
export const ACTION = {
  /** a button in a help reply that runs `/migrate status` */
  showStatus: "cutover.status.show",
  /** cancel button on a run's progress message; value = run id */
  cancelRun: "cutover.run.cancel",
  /** confirms a run with a destructive option (--replace, --delete); value = JSON {target, replace, delete} */
  confirmRun: "cutover.run.confirm",
  /** dismisses an ephemeral question */
  dismiss: "cutover.dismiss",
} as const;

export const CALLBACK = {} as const;
