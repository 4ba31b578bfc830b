import { CutoverError, describeError, ErrorCode, isCutoverError } from "../errors.js";
import { audit } from "../store/audit.js";
import { helpView, invalidUsageView, noticeView, unknownCommandView } from "../views/help.js";
import type { Caller, CommandDeps } from "./context.js";
import { type Answer, failed, invalid, ok, refused } from "./context.js";
import { auditHandler } from "./handlers/audit.js";
import { cancelHandler } from "./handlers/cancel.js";
import { costHandler } from "./handlers/cost.js";
import { cutoverHandler } from "./handlers/cutover.js";
import { decommissionHandler } from "./handlers/decommission.js";
import { digestHandler } from "./handlers/digest.js";
import { kpiHandler } from "./handlers/kpi.js";
import { runHandler } from "./handlers/run.js";
import { statusHandler } from "./handlers/status.js";
import { verifyHandler } from "./handlers/verify.js";
import type { Command } from "./parse.js";

/** Commands that only read; approvers may use them as well as operators. */
const READ_ONLY = new Set(["status", "audit", "plan", "kpi", "cost"]);

/**
 * Runs a parsed `/migrate` command for a caller and returns the reply. Slack and the terminal
 * front end both come through here, so they behave the same. Never throws: every failure
 * becomes a reply that says what to do.
 */
export async function dispatchMigrate(cmd: Command, caller: Caller, deps: CommandDeps): Promise<Answer> {
  if (cmd.name === "help") return ok(helpView(cmd.topic));
  if (cmd.name === "unknown") return invalid(unknownCommandView(cmd.input, cmd.suggestion));
  if (cmd.name === "invalid") return invalid(invalidUsageView(cmd.subcommand, cmd.message));

  const refusal = await authorise(cmd.name, caller, deps);
  if (refusal) {
    await audit(deps.db, {
      actor: caller.user,
      action: `command.${cmd.name}`,
      outcome: "refused",
      details: { reason: refusal.code, channel: caller.channel, via: caller.via },
    }).catch((err) => deps.log.error({ err }, "could not audit a refusal"));
    return refused(noticeView(`⛔ ${describeError(refusal)}`));
  }

  try {
    switch (cmd.name) {
      case "status":
        return await statusHandler(deps);
      case "audit":
        return await auditHandler(cmd.limit, deps);
      case "plan":
        return await runHandler({ target: cmd.target ?? "all", dryRun: true }, caller, deps);
      case "run":
        return await runHandler(
          {
            target: cmd.target,
            dryRun: cmd.dryRun,
            options: { replace: cmd.flags.replace === true, delete: cmd.flags.delete === true },
            confirmed: caller.via === "terminal" && cmd.flags.confirm === true,
          },
          caller,
          deps,
        );
      case "undo":
        return await runHandler(
          {
            target: cmd.target,
            dryRun: cmd.dryRun,
            options: { undo: true },
            confirmed: caller.via === "terminal" && cmd.flags.confirm === true,
          },
          caller,
          deps,
        );
      case "cancel":
        return await cancelHandler(cmd.runId, caller, deps);
      case "cutover":
        return await cutoverHandler(cmd.flags, caller, deps);
      case "decommission":
        return await decommissionHandler(caller, deps);
      case "verify":
        return await verifyHandler(cmd.args, caller, deps);
      case "cost":
        return await costHandler(cmd.args, deps);
      case "kpi":
        return await kpiHandler(cmd.args, deps);
      case "digest":
        return await digestHandler(caller, deps);
      default: {
        // every command has a handler; a new one that forgets its case still gets an answer
        const name = (cmd as { name: string }).name;
        return invalid(
          noticeView(
            `\`${name}\` is not available in this build of Cutover yet. Type \`/migrate help\` for what is.`,
          ),
        );
      }
    }
  } catch (err) {
    if (!isCutoverError(err)) deps.log.error({ err, command: cmd.name, user: caller.user }, "command failed");
    return failed(noticeView(`⚠️ ${describeError(err)}`));
  }
}

/** The access rules for a command (or a button doing what a command does); undefined = allowed. */
export async function authorise(
  name: string,
  caller: Caller,
  deps: CommandDeps,
): Promise<CutoverError | undefined> {
  if (caller.via === "slack" && !deps.access.channelAllowed(caller.channel)) {
    return new CutoverError(ErrorCode.ChannelNotAllowed, "This channel does not take migration commands.");
  }
  if (caller.via === "terminal") return undefined;
  let allowed: boolean;
  try {
    allowed = READ_ONLY.has(name)
      ? (await deps.access.isOperator(caller.user)) || (await deps.access.isApprover(caller.user))
      : await deps.access.isOperator(caller.user);
  } catch (err) {
    // A user group that cannot be read refuses (never allows), and says why.
    deps.log.warn({ err: { message: (err as Error).message }, user: caller.user }, "could not check access");
    return new CutoverError(
      ErrorCode.NotAuthorised,
      `Could not check your access: Slack said ${(err as Error).message}.`,
      {
        hint: "Check the user-group ids under `access` in the migration file, and that the app has the usergroups:read scope.",
      },
    );
  }
  if (!allowed) {
    return new CutoverError(
      ErrorCode.NotAuthorised,
      `You are not an operator of this migration, so \`${name}\` is not yours to use.`,
    );
  }
  return undefined;
}
