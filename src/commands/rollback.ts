import type {
  AllMiddlewareArgs,
  BlockButtonAction,
  SlackActionMiddlewareArgs,
  SlackCommandMiddlewareArgs,
  SlackViewMiddlewareArgs,
  ViewSubmitAction,
} from "@slack/bolt";
import { describeError } from "../errors.js";
import { findRollbackTargets } from "../jobs/cutover/apply.js";
import type { Metrics } from "../metrics.js";
import { audit } from "../store/audit.js";
import { formatDuration } from "../views/blocks.js";
import { rollbackModal } from "../views/cutover.js";
import { INPUT } from "../views/ids.js";
import type { CommandDeps } from "./context.js";
import { cutoverDeps } from "./handlers/cutover.js";
import { manualRollbackFields, manualTargets, performRollback } from "./handlers/rollback.js";

/** Opens the /rollback modal for an operator; says why not to anyone else. */
async function openRollback(
  deps: CommandDeps,
  user: string,
  triggerId: string,
  channel: string | null,
): Promise<string | undefined> {
  // The file's `access.channels` hold for /rollback as for every command but help.
  if (!deps.access.channelAllowed(channel)) {
    await audit(deps.db, {
      actor: user,
      action: "rollback.open",
      outcome: "refused",
      details: { reason: "channel not allowed", channel },
    });
    return "⛔ This channel does not take migration commands: use /rollback in the migration channel.";
  }
  if (!(await deps.access.isOperator(user).catch(() => false))) {
    await audit(deps.db, {
      actor: user,
      action: "rollback.open",
      outcome: "refused",
      details: { reason: "not an operator" },
    });
    return "⛔ Only an operator of this migration can roll back (see `access.operators` in the migration file).";
  }
  if (!deps.file.dns) return "This migration switches no DNS, so there is nothing to roll back.";
  const targets = await findRollbackTargets(cutoverDeps(deps));
  const summary = targets
    ? [
        ...targets.records.map(
          (r) => `• ${r.type} \`${r.name}\` → \`${r.content ?? "(remove)"}\`, TTL ${r.ttl} s`,
        ),
        ...Object.entries(targets.pages?.vars ?? {}).map(([k, v]) => `• Pages ${k} → \`${v ?? "(unset)"}\``),
        ...(targets.pages
          ? ["• a new Pages deployment", `_Values from the ${targets.source}._`]
          : [`_Values from the ${targets.source}._`]),
      ]
    : [
        "*No record of the values before the cutover was found.* Give them below (prefilled from the migration file).",
      ];
  await audit(deps.db, {
    actor: user,
    action: "rollback.open",
    outcome: "info",
    details: { source: targets?.source ?? "manual" },
  });
  await deps.slack?.openView(triggerId, rollbackModal(summary, targets ? [] : manualRollbackFields(deps)));
  return undefined;
}

/** `/rollback`: the emergency way back. One operator suffices; the modal asks to type ROLLBACK. */
export function rollbackCommand(deps: CommandDeps, metrics: Metrics) {
  return async ({ command, ack }: SlackCommandMiddlewareArgs & AllMiddlewareArgs) => {
    await ack();
    metrics.commands.inc({ command: "rollback", outcome: "answered" });
    const refusal = await openRollback(deps, command.user_id, command.trigger_id, command.channel_id ?? null);
    if (refusal && command.response_url) {
      await fetch(command.response_url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ response_type: "ephemeral", text: refusal }),
      }).catch(() => undefined);
    }
  };
}

/** The prominent "Roll back" button posted when the watch after a cutover breaches a threshold. */
export function rollbackButtonAction(deps: CommandDeps, metrics: Metrics) {
  return async ({ ack, body, respond }: SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs) => {
    await ack();
    metrics.actions.inc({ action: "rollback_button" });
    const refusal = await openRollback(deps, body.user.id, body.trigger_id, body.channel?.id ?? null);
    if (refusal) await respond({ response_type: "ephemeral", replace_original: false, text: refusal });
  };
}

/** The modal: ROLLBACK typed exactly, then the rollback, then the whole channel is told. */
export function rollbackSubmission(deps: CommandDeps, metrics: Metrics) {
  return async ({ ack, body, view }: SlackViewMiddlewareArgs<ViewSubmitAction> & AllMiddlewareArgs) => {
    const confirmedAt = performance.now();
    metrics.actions.inc({ action: "rollback_submit" });
    const user = body.user.id;
    const values = Object.fromEntries(
      Object.entries(view.state.values).map(([block, actions]) => [
        block,
        Object.values(actions)[0]?.value ?? "",
      ]),
    ) as Record<string, string>;
    if ((values[INPUT.rollbackWord.block] ?? "").trim() !== "ROLLBACK") {
      await audit(deps.db, {
        actor: user,
        action: "rollback.confirm",
        outcome: "refused",
        details: { reason: "typed word differs" },
      });
      await ack({
        response_action: "errors",
        errors: { [INPUT.rollbackWord.block]: "Type ROLLBACK in capitals to confirm." },
      });
      return;
    }
    if (!(await deps.access.isOperator(user).catch(() => false))) {
      await audit(deps.db, {
        actor: user,
        action: "rollback.confirm",
        outcome: "refused",
        details: { reason: "not an operator" },
      });
      await ack({
        response_action: "errors",
        errors: { [INPUT.rollbackWord.block]: "Only an operator can roll back." },
      });
      return;
    }
    await ack();
    const reason = values[INPUT.rollbackReason.block]?.trim() || null;
    const channel = deps.file.slack.channel;
    await deps.slack?.post(channel, {
      text: `🚨 Rollback started by <@${user}>${reason ? `: ${reason}` : ""}. Putting DNS and the front end back now.`,
      blocks: [],
    });
    try {
      const manual = Object.keys(values).some((k) => k.startsWith("rb_record_"));
      const { text } = await performRollback(deps, user, {
        reason,
        viaSlack: true,
        ...(manual ? { targets: manualTargets(deps, values) } : {}),
      });
      const total = performance.now() - confirmedAt;
      await deps.slack?.post(channel, {
        text: `${text}\nFrom confirmation to verified: ${formatDuration(total)}.`,
        blocks: [],
      });
    } catch (err) {
      deps.log.error({ err: { message: (err as Error).message } }, "rollback failed");
      await deps.slack?.post(channel, {
        text: `❌ Rollback by <@${user}> could not run: ${describeError(err)}`,
        blocks: [],
      });
    }
  };
}
