import type { KnownBlock } from "@slack/types";

/** A reply: the text doubles as the notification fallback and the terminal rendering's base. */
export interface Reply {
  text: string;
  blocks: KnownBlock[];
}

/**
 * Slack's section text limit is 3,000 characters; keep a margin and say when something was cut.
 * The cut falls at a line end (or else a space) near the limit, never inside an `&amp;` entity
 * or a `<…>` link or mention, and an open code span or fence is closed again, so the rest of
 * the text keeps its formatting.
 */
export function clip(text: string, max = 2900): string {
  if (text.length <= max) return text;
  const room = max - 40; // the note saying what was cut, and the closing of a code fence
  let cut = safeCut(text, room);
  const line = text.lastIndexOf("\n", cut);
  const space = text.lastIndexOf(" ", cut);
  if (line > room * 0.8) cut = line;
  else if (space > room * 0.9) cut = space;
  cut = safeCut(text, cut);
  let head = text.slice(0, cut).trimEnd();
  const fences = head.split("```").length - 1;
  if (fences % 2 === 1) head += "\n```";
  else {
    const lastLine = head.slice(head.lastIndexOf("\n") + 1);
    if ((lastLine.split("`").length - 1) % 2 === 1) head += "`";
  }
  return `${head}\n… (cut; ${text.length - cut} more characters)`;
}

/** The largest index ≤ `at` that does not split an entity, a `<…>` token or a surrogate pair. */
function safeCut(text: string, at: number): number {
  let cut = Math.max(0, Math.min(at, text.length));
  const amp = text.lastIndexOf("&", cut - 1);
  if (amp >= 0 && amp > cut - 8 && !text.slice(amp, cut).includes(";")) cut = amp;
  const open = text.lastIndexOf("<", cut - 1);
  if (open >= 0 && text.lastIndexOf(">", cut - 1) < open) cut = open;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return cut;
}

/** Plain text cut to at most `max` characters, ending in "…" when cut (for labels, titles, dialogs). */
export function short(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/**
 * `text` escaped for mrkdwn and cut to at most `max` characters of the escaped form (an entity
 * is never cut in two), ending in "…" when cut: for a person's input echoed back into a field
 * with a small limit (a confirm dialog, a context line).
 */
export function escShort(text: string, max: number): string {
  const escaped = esc(text);
  if ([...escaped].length <= max) return escaped;
  let out = "";
  let n = 0;
  for (const ch of text) {
    const piece = esc(ch);
    if (n + piece.length > max - 1) break;
    out += piece;
    n += piece.length;
  }
  return `${out}…`;
}

/** Blocks Slack takes in one message, and in one modal (docs.slack.dev/reference/block-kit/blocks). */
export const SLACK_MESSAGE_BLOCKS = 50;
export const SLACK_VIEW_BLOCKS = 100;

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

/** A Slack user id as a mention (Slack shows the name); anyone else (a terminal's local operator) as written. */
export function person(who: string): string {
  return /^[UW][A-Z0-9]{2,}$/.test(who) ? `<@${who}>` : esc(who);
}

/**
 * Text for the whole channel, said as a person would: no connection string (a URL loses its
 * credentials and reads "the database `shop` on `ep-1.neon.tech`"), no file path of the bot's
 * own machine (an SSH key, the dump folder: "…/id_ed25519"). The thread and the audit keep the
 * exact values. Apply before escaping.
 */
export function forChannel(text: string): string {
  return text
    .replace(
      /\bpostgres(?:ql)?:\/\/(?:[^\s@/]+@)?([^\s/:?#]+)(?::\d+)?\/([^\s?#`'"),]+)[^\s`'"),]*/g,
      "the database `$2` on `$1`",
    )
    .replace(/\b[\w.%+-]+@([\w-]+(?:\.[\w-]+)+):\d+\/([\w.$-]+)/g, "the database `$2` on `$1`")
    .replace(
      /(?<![\w.:/-])(?:\/(?:home|root|tmp|private|var\/folders|Users)\/|~\/)[^\s`'"),;]*\/([^\s`'"),;/]+)/g,
      "…/$1",
    );
}

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

export { formatDuration } from "../text/units.js";

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
