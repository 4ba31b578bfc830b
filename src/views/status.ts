import type { KnownBlock } from "@slack/types";
import type { MigrationFile } from "../config/schema.js";
import { firstLine } from "../jobs/events.js";
import type { LockHolder } from "../store/runs.js";
import {
  context,
  divider,
  esc,
  forChannel,
  formatDuration,
  header,
  person,
  type Reply,
  SLACK_MESSAGE_BLOCKS,
  STATUS_ICON,
  section,
  shortId,
  slackDate,
} from "./blocks.js";

export interface StepState {
  status: string;
  runId: string;
  dryRun: boolean;
  requestedBy: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
}

export interface StatusInput {
  file: MigrationFile;
  latest: Map<string, StepState>;
  lock: LockHolder | null;
  /** the cutover's countdown line, when the migration switches DNS */
  cutover?: string | undefined;
  /** a live migration's replication, one line per direction (lag, last reply) */
  replication?: string[] | undefined;
  recent: Array<{
    id: string;
    target: string;
    status: string;
    requestedBy: string;
    createdAt: Date;
    dryRun: boolean;
  }>;
  available: ReadonlySet<string>;
  now: Date;
}

function stepLine(
  id: string,
  title: string | undefined,
  uses: string,
  state: StepState | undefined,
  available: boolean,
  now: Date,
): string {
  const name = `\`${id}\`${title ? ` ${esc(title)}` : ""}`;
  if (!available) return `▫️ ${name} — _not available in this build (${esc(uses)})_`;
  if (!state) return `▫️ ${name} — not run yet`;
  const icon = STATUS_ICON[state.status] ?? "•";
  const took = state.startedAt
    ? formatDuration((state.finishedAt ?? now).getTime() - state.startedAt.getTime())
    : "";
  const when = state.finishedAt ?? state.startedAt;
  const parts = [
    `${icon} ${name} — ${state.dryRun ? "planned" : state.status}`,
    `by ${person(state.requestedBy)}`,
  ];
  if (when) parts.push(slackDate(when));
  if (took) parts.push(took);
  parts.push(`run \`${shortId(state.runId)}\``);
  const line = parts.join(" · ");
  return state.error && state.status === "failed"
    ? `${line}\n      ↳ ${esc(forChannel(firstLine(state.error, 200)))}`
    : line;
}

/** `/migrate status`: every phase and step with its latest state, the lock and recent runs. */
export function statusView(input: StatusInput): Reply {
  const { file, latest, lock, recent, available, now } = input;
  const blocks: KnownBlock[] = [header(`Migration status — ${file.project} (${file.environment})`)];
  blocks.push(
    context(
      lock
        ? `🔒 Locked by ${person(lock.holder)} since ${slackDate(lock.acquiredAt)} for run \`${shortId(lock.runId)}\``
        : "🔓 No run holds the lock.",
    ),
  );
  if (input.cutover) blocks.push(context(input.cutover));
  if (input.replication?.length) blocks.push(context(`🔁 Replication: ${input.replication.join(" · ")}`));
  const phaseTexts = file.runbook.phases.map((phase, i) => {
    const states = phase.steps.map((s) => latest.get(s.id));
    const done = states.filter((s) => s && !s.dryRun && s.status === "succeeded").length;
    const lines = phase.steps.map((s) =>
      stepLine(s.id, s.title, s.uses, latest.get(s.id), available.has(s.uses), now),
    );
    return `*Phase ${i + 1} · ${esc(phase.title)}* (\`${phase.id}\`) — ${done}/${phase.steps.length} done\n${lines.join("\n")}`;
  });
  // A message holds 50 blocks: short phases share a section, and past the room left the rest
  // are counted rather than shown (each phase's own `/migrate plan <phase>` lists it).
  const room = SLACK_MESSAGE_BLOCKS - blocks.length - (recent.length ? 2 : 0) - 1;
  const packed: string[] = [];
  for (const text of phaseTexts) {
    const last = packed.at(-1);
    if (last !== undefined && last.length + text.length + 2 <= 2900)
      packed[packed.length - 1] = `${last}\n\n${text}`;
    else packed.push(text);
  }
  blocks.push(...packed.slice(0, room).map(section));
  if (packed.length > room) {
    const shownPhases = packed
      .slice(0, room)
      .reduce((n, t) => n + (t.match(/^\*Phase \d+ · /gm)?.length ?? 0), 0);
    blocks.push(
      context(
        `… and ${phaseTexts.length - shownPhases} more phases: \`/migrate plan &lt;phase&gt;\` lists one.`,
      ),
    );
  }
  if (recent.length) {
    blocks.push(divider());
    blocks.push(
      context(
        `Recent runs: ${recent
          .map(
            (r) =>
              `${STATUS_ICON[r.status] ?? ""} \`${shortId(r.id)}\` ${esc(r.target)}${r.dryRun ? " (dry run)" : ""} by ${person(r.requestedBy)}`,
          )
          .join(" · ")}`,
      ),
    );
  }
  const total = file.runbook.phases.reduce((n, p) => n + p.steps.length, 0);
  const doneAll = [...latest.values()].filter((s) => !s.dryRun && s.status === "succeeded").length;
  return {
    text: `Migration status: ${doneAll}/${total} steps done${lock ? `; locked by ${lock.holder}` : ""}`,
    blocks,
  };
}
