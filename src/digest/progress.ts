import type { MigrationFile } from "../config/schema.js";
import { pendingRequests } from "../store/approvals.js";
import type { Db } from "../store/client.js";
import { latestStepExecutions } from "../store/runs.js";
import type { PhaseProgress, ProgressDigest, Stabilisation, WaitingItem } from "./types.js";

/** The latest state of one step (the subset of a step execution the digest needs). */
export interface StepLatest {
  status: string;
  dryRun: boolean;
  runId: string;
}

/** A request waiting for a second person. */
export interface PendingApproval {
  action: string;
  requestedBy: string;
  expiresAt: Date;
}

/** `<@U1>`, `<!subteam^S1>`: how Slack shows a person or a user group. */
export function mention(id: string): string {
  return id.startsWith("S") ? `<!subteam^${id}>` : `<@${id}>`;
}

function people(ids: readonly string[]): string {
  return ids.map(mention).join(" or ") || "someone";
}

const isDone = (s: StepLatest | undefined) => !!s && !s.dryRun && s.status === "succeeded";

const ACTION_WORDS: Record<string, string> = {
  "dns.cutover": "DNS cutover",
  decommission: "decommission of the old services",
};

/**
 * Phases done, the next step, and what waits for whom (pure). A step counts as done when its
 * latest real (not dry-run) execution succeeded.
 */
export function summariseProgress(
  file: MigrationFile,
  latest: ReadonlyMap<string, StepLatest>,
  pending: readonly PendingApproval[],
  stabilisation: Stabilisation | null,
): ProgressDigest {
  const phases: PhaseProgress[] = file.runbook.phases.map((phase) => {
    const states = phase.steps.map((s) => latest.get(s.id));
    const done = states.filter(isDone).length;
    const failed = states.some((s) => s && !s.dryRun && s.status === "failed");
    const started = states.some((s) => s && !s.dryRun);
    return {
      id: phase.id,
      title: phase.title,
      done,
      total: phase.steps.length,
      state: done === phase.steps.length ? "done" : failed ? "failed" : started ? "active" : "not started",
    };
  });
  const steps = file.runbook.phases.flatMap((p) => p.steps.map((s) => ({ phase: p, step: s })));
  const operators = people(file.access.operators);
  const approvers = people(file.access.approvers);
  const waiting: WaitingItem[] = [];

  for (const a of pending) {
    waiting.push({
      what: `the ${ACTION_WORDS[a.action] ?? a.action} requested by ${mention(a.requestedBy)}`,
      who: `an approver (${approvers}), before it expires`,
    });
  }
  // Failed steps anywhere wait for an operator, whatever comes next.
  for (const { step } of steps) {
    const s = latest.get(step.id);
    if (s && !s.dryRun && s.status === "failed") {
      waiting.push({
        what: `\`${step.id}\` failed`,
        who: `an operator (${operators}) to look at it and rerun \`/migrate run ${step.id}\``,
      });
    }
  }
  const nextEntry = steps.find(({ step }) => !isDone(latest.get(step.id)));
  let next: ProgressDigest["next"];
  if (nextEntry) {
    const { phase, step } = nextEntry;
    const s = latest.get(step.id);
    const status = !s || s.dryRun ? (s?.dryRun ? "planned" : "not run") : s.status;
    next = { stepId: step.id, title: step.title ?? step.uses, phase: phase.title, status };
    const name = `\`${step.id}\`${step.title ? ` ${step.title}` : ""}`;
    if (status === "running" || status === "queued") {
      waiting.push({ what: `${name} is ${status}`, who: "nobody: it is under way" });
    } else if (status === "awaiting_approval") {
      waiting.push({ what: name, who: `an approver (${approvers})` });
    } else if (status !== "failed") {
      if (step.uses === "decommission" && !stabilisation?.over) {
        waiting.push({
          what: name,
          who: stabilisation
            ? `the end of the stabilisation window (day ${Math.min(stabilisation.day, stabilisation.days)} of ${stabilisation.days}), then an operator and an approver`
            : "the DNS cutover and its stabilisation window",
        });
      } else if (step.uses === "dns.cutover" && !pending.some((p) => p.action === "dns.cutover")) {
        waiting.push({
          what: name,
          who: `an operator (${operators}) to ask with \`/migrate cutover\`, then an approver (${approvers})`,
        });
      } else if (!pending.some((p) => p.action === step.uses)) {
        waiting.push({ what: name, who: `an operator (${operators}): \`/migrate run ${step.id}\`` });
      }
    }
  }
  return {
    phases,
    stepsDone: steps.filter(({ step }) => isDone(latest.get(step.id))).length,
    stepsTotal: steps.length,
    next,
    waiting,
  };
}

/** {@link summariseProgress} over the run store: latest executions and pending approvals. */
export async function readProgress(
  db: Db,
  file: MigrationFile,
  stabilisation: Stabilisation | null,
  now: Date,
): Promise<ProgressDigest> {
  const rows = await latestStepExecutions(db, file.environment);
  const latest = new Map<string, StepLatest>();
  for (const [id, row] of rows)
    latest.set(id, { status: row.status, dryRun: row.run.dryRun, runId: row.runId });
  const pending = await pendingRequests(db, now);
  return summariseProgress(file, latest, pending, stabilisation);
}
