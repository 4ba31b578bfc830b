import { recentAudit } from "../../store/audit.js";
import { auditView } from "../../views/audit.js";
import type { Reply } from "../../views/blocks.js";
import type { CommandDeps } from "../context.js";

/** `/migrate audit [n]` */
export async function auditHandler(limit: number, deps: CommandDeps): Promise<Reply> {
  return auditView(await recentAudit(deps.db, limit));
}
