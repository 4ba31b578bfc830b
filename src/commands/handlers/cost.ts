import { costSummary } from "../../cloud/cost-explorer.js";
import { costView } from "../../views/cost.js";
import { invalidUsageView, noticeView } from "../../views/help.js";
import type { CommandDeps } from "../context.js";
import { type Answer, failed, invalid, ok } from "../context.js";

/** `/migrate cost [refresh]`: month to date, the forecast and the budget, from today's cache unless `refresh`. */
export async function costHandler(args: string[], deps: CommandDeps): Promise<Answer> {
  if (args.length > 1 || (args[0] !== undefined && args[0].toLowerCase() !== "refresh"))
    return invalid(
      invalidUsageView(
        "cost",
        `\`cost\` takes nothing, or \`refresh\` to ask Cost Explorer again instead of using today's figures (e.g. \`/migrate cost refresh\`).`,
      ),
    );
  if (!deps.costExplorer)
    return failed(
      noticeView("⚠️ Cost Explorer is not set up in this front end of Cutover. Use `/migrate cost` in Slack."),
    );
  const summary = await costSummary(
    { db: deps.db, file: deps.file, costExplorer: deps.costExplorer, log: deps.log },
    deps.now(),
    { refresh: args[0] !== undefined },
  );
  return ok(costView(summary));
}
