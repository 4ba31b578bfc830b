import { recentAudit } from "../../store/audit.js";
import { auditView } from "../../views/audit.js";
import type { CommandDeps } from "../context.js";
import { type Answer, ok } from "../context.js";

/** `/migrate audit [n]` */
export async function auditHandler(limit: number, deps: CommandDeps): Promise<Answer> {
  return ok(auditView(await recentAudit(deps.db, limit)));
}
