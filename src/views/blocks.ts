import type { KnownBlock } from "@slack/types";

/** A reply: the text doubles as the notification fallback and the terminal rendering's base. */
export interface Reply {
  text: string;
  blocks: KnownBlock[];
}

/** Slack's section text limit is 3000 characters; keep a margin and say when something was cut. */
export function clip(text: string, max = 2900): string {
  return text.length <= max
    ? text
    : `${text.slice(0, max - 20)}\n… (cut; ${text.length - max + 20} more characters)`;
}

export const section = (text: string): KnownBlock => ({
  type: "section",
  text: { type: "mrkdwn", text: clip(text) },
});
export const header = (text: string): KnownBlock => ({
  type: "header",
  text: { type: "plain_text", text: text.slice(0, 150), emoji: true },
});
export const context = (text: string): KnownBlock => ({
  type: "context",
  elements: [{ type: "mrkdwn", text: clip(text, 1900) }],
});
export const divider = (): KnownBlock => ({ type: "divider" });

/** Escapes the three characters Slack's mrkdwn treats as markup. */
export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * Rows as a fixed-width table for a code block (Slack renders it monospaced): the first row a
 * header underlined with rules, cells cut at `maxCell` characters with an ellipsis.
 */
export function fixedWidthTable(rows: string[][], maxCell: number): string {
  const cut = (s: string) => (s.length > maxCell ? `${s.slice(0, maxCell - 1)}…` : s);
  const cells = rows.map((r) => r.map(cut));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      // widths count what Slack shows: escape after padding
      .map((c, i) => esc(c) + " ".repeat(widths[i]! - c.length))
      .join("  ")
      .trimEnd();
  return [line(cells[0]!), widths.map((w) => "─".repeat(w)).join("  "), ...cells.slice(1).map(line)].join(
    "\n",
  );
}

/** "1 h 2 min", "3 min 4 s", "850 ms" */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${Math.floor(m / 60)} h`;
}

/** A Slack date token that shows in each reader's own timezone, with a UTC fallback. */
export function slackDate(date: Date): string {
  const epoch = Math.floor(date.getTime() / 1000);
  return `<!date^${epoch}^{date_short_pretty} {time_secs}|${date.toISOString().replace("T", " ").slice(0, 19)} UTC>`;
}

export function progressBar(done: number, total: number, width = 20): string {
  const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.round(ratio * width);
  return `${"█".repeat(filled)}${"░".repeat(width - filled)} ${Math.floor(ratio * 100)}%`;
}

export const STATUS_ICON: Record<string, string> = {
  queued: "⏳",
  pending: "▫️",
  running: "🔄",
  awaiting_approval: "✋",
  succeeded: "✅",
  failed: "❌",
  cancelled: "⏹️",
  skipped: "⏭️",
};

export function shortId(id: string): string {
  return id.slice(0, 8);
}
