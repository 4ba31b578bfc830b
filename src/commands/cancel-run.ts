import type { AllMiddlewareArgs, BlockButtonAction, SlackActionMiddlewareArgs } from "@slack/bolt";
import type { Metrics } from "../metrics.js";
import type { CommandDeps } from "./context.js";
import { dispatchMigrate } from "./dispatch.js";

/** The Cancel button on a run's progress message: the same rules as `/migrate cancel`. */
export function cancelRunAction(deps: CommandDeps, metrics: Metrics) {
  return async ({
    ack,
    body,
    action,
    respond,
  }: SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs) => {
    await ack();
    metrics.actions.inc({ action: "cancel_run" });
    const reply = await dispatchMigrate(
      { name: "cancel", runId: action.value ?? "" },
      { user: body.user.id, via: "slack", channel: body.channel?.id ?? null, idempotencyKey: null },
      deps,
    );
    await respond({
      response_type: "ephemeral",
      replace_original: false,
      text: reply.text,
      blocks: reply.blocks,
    });
  };
}
