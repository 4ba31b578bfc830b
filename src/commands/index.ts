import type { App, BlockButtonAction } from "@slack/bolt";
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
import { dedupeMiddleware } from "./dedupe.js";
import { migrateCommand } from "./migrate.js";
import { rollbackButtonAction, rollbackCommand, rollbackSubmission } from "./rollback.js";

/** Registers every slash command and interactive listener. */
export function register(app: App, deps: CommandDeps, metrics: Metrics): void {
  app.use(dedupeMiddleware(deps.db, metrics));
  app.command("/migrate", migrateCommand(deps, metrics));
  app.command("/rollback", rollbackCommand(deps, metrics));
  app.action<BlockButtonAction>(ACTION.cancelRun, cancelRunAction(deps, metrics));
  app.action<BlockButtonAction>(ACTION.confirmRun, confirmRunAction(deps, metrics));
  app.action<BlockButtonAction>(ACTION.dismiss, dismissAction());
  app.action<BlockButtonAction>(ACTION.approveCutover, approveCutoverAction(deps, metrics));
  app.action<BlockButtonAction>(ACTION.rejectCutover, rejectCutoverAction(deps, metrics));
  app.action<BlockButtonAction>(ACTION.withdrawCutover, withdrawCutoverAction(deps, metrics));
  app.action<BlockButtonAction>(ACTION.rollbackNow, rollbackButtonAction(deps, metrics));
  app.view(CALLBACK.approveCutover, approveCutoverSubmission(deps, metrics));
  app.view(CALLBACK.rollback, rollbackSubmission(deps, metrics));
}
