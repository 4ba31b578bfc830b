import type { AllMiddlewareArgs, SlackCommandMiddlewareArgs } from "@slack/bolt";
import type { Metrics } from "../metrics.js";
import { audit } from "../store/audit.js";
import type { CommandDeps } from "./context.js";

/**
 * `/rollback`. Until a cutover has been recorded there is nothing to put back; it says so
 * plainly (and who may use it) rather than staying silent.
 */
export function rollbackCommand(deps: CommandDeps, metrics: Metrics) {
  return async ({ command, ack }: SlackCommandMiddlewareArgs & AllMiddlewareArgs) => {
    const operator = await deps.access.isOperator(command.user_id);
    metrics.commands.inc({ command: "rollback", outcome: operator ? "answered" : "refused" });
    const cutovers = operator
      ? await deps.db.approval.count({ where: { action: "dns.cutover", status: "used" } })
      : 0;
    await audit(deps.db, {
      actor: command.user_id,
      action: "command.rollback",
      outcome: operator ? "info" : "refused",
      details: { channel: command.channel_id, cutovers },
    });
    const text = !operator
      ? "⛔ Only an operator of this migration can roll back. Ask one of the people under `access.operators` in the migration file."
      : cutovers === 0
        ? `Nothing to roll back: no DNS cutover has been made in ${deps.file.environment}. DNS and the front end still point at the old services.`
        : "A cutover is recorded, but this build of Cutover cannot roll it back yet: restore the DNS records and Pages variables by hand from the audit trail (`/migrate audit`).";
    await ack({ response_type: "ephemeral", text });
  };
}
