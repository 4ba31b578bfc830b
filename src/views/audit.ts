import { context, esc, header, type Reply, section, shortId } from "./blocks.js";

export interface AuditRow {
  id: bigint;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  outcome: string;
  runId: string | null;
}

const OUTCOME_ICON: Record<string, string> = {
  ok: "✅",
  refused: "⛔",
  failed: "❌",
  started: "▶️",
  info: "ℹ️",
};

function actorLabel(actor: string): string {
  return /^[UW][A-Z0-9]+$/.test(actor) ? `<@${actor}>` : esc(actor);
}

/** `/migrate audit [n]`: newest first. */
export function auditView(rows: AuditRow[]): Reply {
  if (rows.length === 0)
    return { text: "The audit trail is empty.", blocks: [section("The audit trail is empty.")] };
  const lines = rows.map(
    (r) =>
      `${OUTCOME_ICON[r.outcome] ?? "•"} \`${r.at.toISOString().slice(0, 19).replace("T", " ")}\` ${actorLabel(r.actor)} ${esc(r.action)}${r.target ? ` \`${esc(r.target)}\`` : ""} — ${r.outcome}${r.runId ? ` · run \`${shortId(r.runId)}\`` : ""}`,
  );
  // Sections hold 3000 characters: split long trails over several.
  const chunks: string[] = [];
  let current = "";
  for (const line of lines) {
    if (current.length + line.length + 1 > 2800) {
      chunks.push(current);
      current = "";
    }
    current += `${current ? "\n" : ""}${line}`;
  }
  if (current) chunks.push(current);
  return {
    text: `Last ${rows.length} audit events`,
    blocks: [
      header(`Audit — last ${rows.length} events`),
      ...chunks.slice(0, 45).map(section),
      context("Times are UTC."),
    ],
  };
}
