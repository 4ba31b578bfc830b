import type { AllMiddlewareArgs, BlockButtonAction, SlackActionMiddlewareArgs } from "@slack/bolt";
import { z } from "zod";
import { describeError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import { audit } from "../store/audit.js";
import type { CommandDeps } from "./context.js";
import { authorise } from "./dispatch.js";
import { runHandler } from "./handlers/run.js";

const Value = z.object({
  target: z.string().min(1).max(100),
  replace: z.boolean(),
  delete: z.boolean(),
  undo: z.boolean().default(false),
});

/**
 * "Replace and run" / "Delete and run": the confirmation of a destructive run. The same
 * access rules as `/migrate run` apply (checked again here: a button can be forwarded).
 */
export function confirmRunAction(deps: CommandDeps, metrics: Metrics) {
  return async ({
    ack,
    body,
    action,
    respond,
  }: SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs) => {
    await ack();
    metrics.actions.inc({ action: "confirm_run" });
    const caller = {
      user: body.user.id,
      via: "slack" as const,
      channel: body.channel?.id ?? null,
      idempotencyKey: `confirm:${body.trigger_id}`,
    };
    const parsed = Value.safeParse(safeJson(action.value));
    if (!parsed.success) {
      await respond({
        response_type: "ephemeral",
        replace_original: true,
        text: "That button is from an older message; type the command again.",
      });
      return;
    }
    const { target } = parsed.data;
    try {
      // Authorise exactly as the typed command would be: a button can be forwarded.
      const refusal = await authorise("run", caller, deps);
      if (refusal) {
        // the refusal is answered even when the audit trail cannot take it (as dispatch does)
        await audit(deps.db, {
          actor: caller.user,
          action: "run.confirm",
          target,
          outcome: "refused",
          details: { reason: refusal.code },
        }).catch((err) => deps.log.error({ err, user: caller.user, target }, "could not audit a refusal"));
        await respond({
          response_type: "ephemeral",
          replace_original: false,
          text: `⛔ ${describeError(refusal)}`,
        });
        return;
      }
      await audit(deps.db, {
        actor: caller.user,
        action: "run.confirm",
        target,
        outcome: "ok",
        details: { replace: parsed.data.replace, delete: parsed.data.delete, undo: parsed.data.undo },
      });
      const reply = await runHandler(
        {
          target,
          dryRun: false,
          options: parsed.data.undo
            ? { undo: true }
            : { replace: parsed.data.replace, delete: parsed.data.delete },
          confirmed: true,
        },
        caller,
        deps,
      );
      await respond({
        response_type: "ephemeral",
        replace_original: true,
        text: reply.text,
        blocks: reply.blocks,
      });
    } catch (err) {
      // nothing was run (the confirmation is audited before the run is asked for); say so
      deps.log.error({ err, user: caller.user, target }, "confirming a run failed");
      await respond({
        response_type: "ephemeral",
        replace_original: false,
        text: `⚠️ ${describeError(err)}`,
      });
    }
  };
}

/** "Cancel" on an ephemeral question: remove it. */
export function dismissAction() {
  return async ({ ack, respond }: SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs) => {
    await ack();
    await respond({ delete_original: true });
  };
}

function safeJson(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? "");
  } catch {
    return undefined;
  }
}
