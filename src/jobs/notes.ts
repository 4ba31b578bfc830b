/**
 * The one-line notes the runner says into a run's thread (and a terminal prints). One line per
 * event, cut to a length a person reads at a glance: the whole error stays in the step's record
 * (`/migrate status`, the audit trail), so a 6,000-character stack is not posted three times.
 */

/** How long one note's detail may be. */
export const NOTE_DETAIL_MAX = 300;

/** The first line of `text`, cut at a word to at most `max` characters, with "…" when cut. */
export function firstLine(text: string, max = NOTE_DETAIL_MAX): string {
  const lines = text.trim().split("\n");
  const line = lines[0]!.trim();
  const more = lines.length > 1 && lines.slice(1).some((l) => l.trim());
  const chars = [...line];
  if (chars.length <= max) return more ? `${line} …` : line;
  const head = chars.slice(0, max - 1).join("");
  const space = head.lastIndexOf(" ");
  return `${space > max * 0.6 ? head.slice(0, space) : head}…`;
}

/** "✓ db-dump: dumped 12 tables (340 MB)", with the verification only where it adds something. */
export function succeededNote(step: string, summary: string, verified: string): string {
  const s = firstLine(summary);
  const v = firstLine(verified);
  const same = !v || s.includes(v) || v.includes(s.replace(/ …$/, ""));
  return `✓ ${step}: ${s}${same ? " · verified" : ` · verified: ${v}`}`;
}

/** A failed attempt that will be tried again; an error the same as the attempt before is not repeated. */
export function retryNote(
  step: string,
  attempt: number,
  of: number,
  message: string,
  previous: string | undefined,
  delayMs: number,
): string {
  const why = previous === message ? "the same error" : firstLine(message);
  return `↻ ${step} attempt ${attempt} of ${of} failed (${why}); retrying in ${Math.round(delayMs / 1000)} s`;
}

/** The step gave up; `repeated` when the thread has already heard this error. */
export function failedNote(step: string, message: string, repeated: boolean): string {
  return `✗ ${step} failed: ${repeated ? "the same error as the last attempt" : firstLine(message)} — the whole error: \`/migrate status\``;
}
