import type { AllMiddlewareArgs, SlackCommandMiddlewareArgs } from "@slack/bolt";
import { describeError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import { noticeView } from "../views/help.js";
import type { CommandDeps } from "./context.js";
import { type Answer, failed } from "./context.js";
import { dispatchMigrate } from "./dispatch.js";
import { firstDelivery } from "./inbound.js";
import { parseMigrate } from "./parse.js";
import { AfterAck } from "./reply.js";

/**
 * `/migrate …`. Pure replies (help, unknown input) go back in the ack itself; anything that
 * touches state is acked at once and answered through the response URL, so Slack never waits
 * on the database.
 */
export function migrateCommand(deps: CommandDeps, metrics: Metrics, afterAck = new AfterAck(4)) {
  return async ({ command, ack, respond }: SlackCommandMiddlewareArgs & AllMiddlewareArgs) => {
    const started = performance.now();
    const cmd = parseMigrate(command.text ?? "");
    const caller = {
      user: command.user_id,
      via: "slack" as const,
      channel: command.channel_id ?? null,
      idempotencyKey: command.trigger_id ? `command:${command.trigger_id}` : null,
    };
    if (cmd.name === "help" || cmd.name === "unknown" || cmd.name === "invalid") {
      const reply = await dispatchMigrate(cmd, caller, deps);
      await ack({ response_type: "ephemeral", text: reply.text, blocks: reply.blocks });
      metrics.ackSeconds.observe((performance.now() - started) / 1000);
      metrics.commands.inc({ command: cmd.name, outcome: "answered" });
      return;
    }
    await ack();
    metrics.ackSeconds.observe((performance.now() - started) / 1000);
    await afterAck.run(async () => {
      let reply: Answer;
      try {
        // A retried delivery of a command already handled does nothing (help and unknown input above are safe to repeat).
        if (command.trigger_id && !(await firstDelivery(deps.db, metrics, `command:${command.trigger_id}`)))
          return;
        reply = await dispatchMigrate(cmd, caller, deps);
      } catch (err) {
        // the state database unreachable, say: the person still gets an answer that says so
        deps.log.error({ err, command: cmd.name }, "command failed before it could answer");
        reply = failed(noticeView(`⚠️ ${describeError(err)}`));
      }
      metrics.commands.inc({
        command: cmd.name,
        outcome: reply.outcome === "refused" ? "refused" : "answered",
      });
      await respond({ response_type: "ephemeral", text: reply.text, blocks: reply.blocks });
    });
  };
}
