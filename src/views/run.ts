import type { KnownBlock } from "@slack/types";
import type { Progress, StepPlan } from "../jobs/define-step.js";
import { firstLine } from "../jobs/events.js";
import {
  context,
  esc,
  forChannel,
  formatDuration,
  person,
  progressBar,
  type Reply,
  STATUS_ICON,
  section,
  shortId,
} from "./blocks.js";
import { ACTION } from "./ids.js";

export interface RunView {
  id: string;
  target: string;
  kind: string;
  status: string;
  dryRun: boolean;
  requestedBy: string;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  steps: Array<{
    step: string;
    status: string;
    attempts: number;
    progress: unknown;
    plan: unknown;
    result: unknown;
    error: string | null;
    startedAt: Date | null;
    finishedAt: Date | null;
  }>;
}

function progressLine(p: Progress): string {
  const unit = p.unit ? ` ${p.unit}` : "";
  const count =
    p.total !== undefined
      ? `${p.done.toLocaleString("en")}/${p.total.toLocaleString("en")}${unit}`
      : `${p.done.toLocaleString("en")}${unit}`;
  const bar = p.total !== undefined ? `\`${progressBar(p.done, p.total)}\` ` : "";
  return `${bar}${count}${p.message ? ` — ${esc(forChannel(p.message))}` : ""}`;
}

/** A step's dry run: its summary and its first changes (`max`), counting the rest. */
function planLines(plan: StepPlan, max: number, whole: boolean): string {
  // in the channel one line each: a change's detail can be a whole script
  const say = (t: string) => esc(whole ? t : forChannel(firstLine(t, 200)));
  const shown = plan.changes
    .slice(0, max)
    .map(
      (c) =>
        `      ${c.action === "none" ? "=" : c.action === "delete" ? "−" : c.action === "check" ? "?" : "+"} ${say(c.target)}${c.detail ? ` (${say(c.detail)})` : ""}`,
    );
  if (plan.changes.length > max) shown.push(`      … and ${plan.changes.length - max} more`);
  return [`      ${whole ? esc(plan.summary) : say(firstLine(plan.summary, 300))}`, ...shown].join("\n");
}

/**
 * The single progress message of a run, edited in place as the run goes: one line per step in
 * the channel, its result and verification in the run's thread (the step notes). A terminal has
 * no thread: `results` shows them under each step there.
 */
export function runMessageView(
  run: RunView,
  now: Date = new Date(),
  opts: { results?: boolean } = {},
): Reply {
  const icon = STATUS_ICON[run.status] ?? "•";
  const what = run.dryRun ? `Dry run of \`${esc(run.target)}\`` : `Run \`${esc(run.target)}\``;
  const took = run.startedAt
    ? ` · ${formatDuration((run.finishedAt ?? now).getTime() - run.startedAt.getTime())}`
    : "";
  const lines = run.steps.map((s) => {
    const sIcon = STATUS_ICON[s.status] ?? "•";
    const dur =
      s.startedAt && s.status !== "pending"
        ? ` · ${formatDuration((s.finishedAt ?? now).getTime() - s.startedAt.getTime())}`
        : "";
    const tries = s.attempts > 1 ? ` · attempt ${s.attempts}` : "";
    let line = `${sIcon} \`${esc(s.step)}\` ${s.status}${dur}${tries}`;
    if (s.status === "running" && s.progress) line += `\n      ${progressLine(s.progress as Progress)}`;
    // in the channel a phase's dry run must stay readable at a glance: three changes a step
    if (s.plan) line += `\n${planLines(s.plan as StepPlan, opts.results ? 8 : 3, opts.results === true)}`;
    if (opts.results && s.status === "succeeded" && s.result && !run.dryRun) {
      const result = s.result as { summary?: string; verify?: { summary?: string } };
      if (result.summary) line += `\n      ${esc(result.summary)}`;
      if (result.verify?.summary) line += `\n      verified: ${esc(result.verify.summary)}`;
    }
    // the first line of an error says what; the whole of it is in the thread and the audit
    if (s.error && (s.status === "failed" || s.status === "running"))
      line += `\n      ↳ ${esc(opts.results ? s.error.slice(0, 400) : forChannel(firstLine(s.error, 200)))}`;
    return line;
  });
  const blocks: KnownBlock[] = [
    section(`${icon} *${what}* — ${run.status.replace("_", " ")}${took}`),
    section(lines.join("\n") || "_no steps_"),
    context(
      `run \`${shortId(run.id)}\` · requested by ${person(run.requestedBy)}${run.error && run.status !== "succeeded" ? ` · ${esc(forChannel(firstLine(run.error, 200)))}` : ""}`,
    ),
  ];
  if (run.status === "running" || run.status === "queued") {
    blocks.push({
      type: "actions",
      elements: [
        {
          type: "button",
          text: { type: "plain_text", text: "Cancel" },
          action_id: ACTION.cancelRun,
          value: run.id,
          style: "danger",
        },
      ],
    });
  }
  return { text: `${icon} ${run.dryRun ? "Dry run" : "Run"} ${esc(run.target)}: ${run.status}`, blocks };
}
