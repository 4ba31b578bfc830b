import type { App, BlockButtonAction } from "@slack/bolt";
import { digestDeps } from "../digest/index.js";
import { digestSources } from "../digest/sources.js";
import type { Metrics } from "../metrics.js";
import { ACTION, CALLBACK } from "../views/ids.js";
import { cancelRunAction } from "./cancel-run.js";
import { confirmRunAction, dismissAction } from "./confirm-run.js";
import type { CommandDeps } from "./context.js";
import {
  approveCutoverAction,
  approveCutoverSubmission,
  rejectCutoverAction,
  withdrawCutoverAction,
} from "./cutover-actions.js";
import { dedupeMiddleware } from "./inbound.js";
import { migrateCommand } from "./migrate.js";
import { withSteadyRespond as steady } from "./reply.js";
import { rollbackButtonAction, rollbackCommand, rollbackSubmission } from "./rollback.js";

/**
 * Registers every slash command and interactive listener. Those that answer through the
 * response_url get a respond that retries and gives up in time (reply.ts).
 */
export function register(app: App, given: CommandDeps, metrics: Metrics): void {
  // `/migrate digest` posts as the schedule does, through this app's client
  const deps: CommandDeps = given.digest
    ? given
    : {
        ...given,
        digest: digestDeps({
          db: given.db,
          file: given.file,
          log: given.log,
          client: app.client,
          sources: digestSources({
            db: given.db,
            file: given.file,
            costExplorer: given.costExplorer,
            log: given.log,
            live: given.live,
          }),
        }),
      };
  app.use(dedupeMiddleware(deps.db, metrics));
  app.command("/migrate", steady(migrateCommand(deps, metrics)));
  app.command("/rollback", steady(rollbackCommand(deps, metrics)));
  app.action<BlockButtonAction>(ACTION.cancelRun, steady(cancelRunAction(deps, metrics)));
  app.action<BlockButtonAction>(ACTION.confirmRun, steady(confirmRunAction(deps, metrics)));
  app.action<BlockButtonAction>(ACTION.dismiss, steady(dismissAction()));
  app.action<BlockButtonAction>(ACTION.approveCutover, steady(approveCutoverAction(deps, metrics)));
  app.action<BlockButtonAction>(ACTION.rejectCutover, steady(rejectCutoverAction(deps, metrics)));
  app.action<BlockButtonAction>(ACTION.withdrawCutover, steady(withdrawCutoverAction(deps, metrics)));
  app.action<BlockButtonAction>(ACTION.rollbackNow, steady(rollbackButtonAction(deps, metrics)));
  app.view(CALLBACK.approveCutover, approveCutoverSubmission(deps, metrics));
  app.view(CALLBACK.rollback, rollbackSubmission(deps, metrics));
}
