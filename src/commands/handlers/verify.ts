import { noticeView } from "../../views/help.js";
import type { Caller, CommandDeps } from "../context.js";
import { type Answer, failed, invalid, type Outcome } from "../context.js";
import { runHandler } from "./run.js";

/** What `/migrate verify <what>` runs: the verify step of that kind, read-only, any time. */
const KINDS: Record<string, string[]> = {
  database: ["db.verify"],
  storage: ["storage.verify"],
  cdn: ["cdn.check"],
  functional: ["verify.functional"],
  performance: ["verify.performance"],
  reliability: ["verify.reliability"],
};
KINDS.all = Object.values(KINDS).flat();

/**
 * `/migrate verify [database|storage|cdn|functional|performance|reliability|all]`: runs the
 * runbook's verify steps of that kind on their own (also after the cutover, to compare again).
 * They only read, so they need no lock; each one's report follows in its run's message.
 */
export async function verifyHandler(args: string[], caller: Caller, deps: CommandDeps): Promise<Answer> {
  const what = (args[0] ?? "all").toLowerCase();
  const uses = KINDS[what];
  if (!uses || !Object.hasOwn(KINDS, what)) {
    return invalid(
      noticeView(
        `\`verify ${what}\` is not something Cutover verifies. Choose one of: ${Object.keys(KINDS).join(", ")}.`,
      ),
    );
  }
  const steps = deps.file.runbook.phases
    .flatMap((p) => p.steps)
    .filter((s) => uses.includes(s.uses) && deps.registry.has(s.uses));
  if (steps.length === 0) {
    return failed(
      noticeView(
        `This runbook has no ${what} verification step this build can run (step types: ${uses.join(", ")}).`,
      ),
    );
  }
  const replies: string[] = [];
  const runs: string[] = [];
  let outcome: Outcome = "ok";
  for (const step of steps) {
    const reply = await runHandler(
      { target: step.id, dryRun: false },
      { ...caller, idempotencyKey: caller.idempotencyKey ? `${caller.idempotencyKey}:${step.id}` : null },
      deps,
    );
    replies.push(reply.text);
    runs.push(...(reply.runs ?? []));
    if (outcome === "ok") outcome = reply.outcome;
  }
  return { ...noticeView(replies.join("\n")), outcome, runs };
}
