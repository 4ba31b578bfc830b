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
import { checkView, claimView } from "../store/slack.js";
import { formatDuration } from "../views/blocks.js";
import { rollbackModal } from "../views/cutover.js";
import { INPUT } from "../views/ids.js";
import { openBoundView, unboundRefusal } from "./bound-view.js";
import type { CommandDeps } from "./context.js";
import { cutoverDeps } from "./handlers/cutover.js";
import { performRollback, targetsHash } from "./handlers/rollback.js";
import { firstDelivery } from "./inbound.js";

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
  if (!targets) return "This migration switches no DNS, so there is nothing to roll back.";
  // The modal shows the values and asks for no value: a submission restores exactly these.
  const summary = [
    ...targets.records.map(
      (r) => `• ${r.type} \`${r.name}\` → \`${r.content ?? "(remove)"}\`, TTL ${r.ttl} s`,
    ),
    ...Object.entries(targets.pages?.vars ?? {}).map(([k, v]) => `• Pages ${k} → \`${v ?? "(unset)"}\``),
    ...(targets.pages ? ["• a new Pages deployment"] : []),
    targets.source === "migration file"
      ? "_No record of the values before the cutover was found: these are the old values the migration file names. If they are wrong, fix the file's `from` values and run /rollback again._"
      : `_Values from the ${targets.source}._`,
  ];
  await audit(deps.db, {
    actor: user,
    action: "rollback.open",
    outcome: "info",
    details: { source: targets.source },
  });
  await openBoundView(deps, triggerId, rollbackModal(summary), { user, request: targetsHash(targets) });
  return undefined;
}

/** `/rollback`: the emergency way back. One operator suffices; the modal asks to type ROLLBACK. */
export function rollbackCommand(deps: CommandDeps, metrics: Metrics) {
  return async ({ command, ack }: SlackCommandMiddlewareArgs & AllMiddlewareArgs) => {
    await ack();
    // a redelivery of the same /rollback (same trigger id) opens no second modal, writes no second row
    if (command.trigger_id && !(await firstDelivery(deps.db, metrics, `rollback:${command.trigger_id}`)))
      return;
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

/** The inputs the /rollback modal has: a submission carrying any other field is not the bot's modal. */
const ROLLBACK_FIELDS = new Set<string>([INPUT.rollbackWord.block, INPUT.rollbackReason.block]);

/** The modal: ROLLBACK typed exactly, then the rollback, then the whole channel is told. */
export function rollbackSubmission(deps: CommandDeps, metrics: Metrics) {
  return async ({ ack, body, view }: SlackViewMiddlewareArgs<ViewSubmitAction> & AllMiddlewareArgs) => {
    const confirmedAt = performance.now();
    metrics.actions.inc({ action: "rollback_submit" });
    const user = body.user.id;
    const refuse = async (reason: string, text: string) => {
      await audit(deps.db, {
        actor: user,
        action: "rollback.confirm",
        outcome: "refused",
        details: { reason },
      });
      await ack({ response_action: "errors", errors: { [INPUT.rollbackWord.block]: text.slice(0, 150) } });
    };
    // Read nothing from a form the bot did not open for this person (audited there).
    const unbound = await unboundRefusal(deps, user, view, "rollback.confirm");
    if (unbound) {
      await ack({ response_action: "errors", errors: { [INPUT.rollbackWord.block]: unbound.slice(0, 150) } });
      return;
    }
    const extra = Object.keys(view.state.values).filter((k) => !ROLLBACK_FIELDS.has(k));
    if (extra.length)
      return refuse(
        `fields the form does not have: ${extra.join(", ").slice(0, 200)}`,
        "This form has no such fields: a rollback restores only the recorded values or the migration file's.",
      );
    const values = Object.fromEntries(
      Object.entries(view.state.values).map(([block, actions]) => [
        block,
        Object.values(actions)[0]?.value ?? "",
      ]),
    ) as Record<string, string>;
    if ((values[INPUT.rollbackWord.block] ?? "").trim() !== "ROLLBACK")
      return refuse("typed word differs", "Type ROLLBACK in capitals to confirm.");
    // membership asked afresh: someone just removed from the operators' group cannot roll back
    if (!(await deps.access.isOperator(user, { fresh: true }).catch(() => false)))
      return refuse("not an operator", "Only an operator can roll back.");
    const checked = await checkView(deps.db, {
      viewId: view.id,
      hash: view.hash,
      callbackId: view.callback_id,
      userId: user,
    });
    if (!checked.ok || !(await claimView(deps.db, view.id, deps.now())))
      return refuse(
        "form already submitted",
        "This form was already submitted once. Open it again to do it again.",
      );
    await ack();
    const reason = values[INPUT.rollbackReason.block]?.trim() || null;
    const channel = deps.file.slack.channel;
    try {
      const { text } = await performRollback(deps, user, {
        reason,
        viaSlack: true,
        expectHash: checked.request,
        // said only once this rollback holds the lock: a refused second one does not announce itself
        onStarted: async () => {
          await deps.slack?.post(channel, {
            text: `🚨 Rollback started by <@${user}>${reason ? `: ${reason}` : ""}. Putting DNS and the front end back now.`,
            blocks: [],
          });
        },
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
