/**
 * Sizes and durations in the words the bot writes them, and durations read back from text.
 * One place, so a size in a step's summary reads like the same size in a view.
 */

const BYTE_UNITS = ["B", "KB", "MB", "GB", "TB"];

/** 7 → "7 B", 1536 → "1.5 KB", 12e6 → "11 MB", 1.3e9 → "1.2 GB" (powers of 1024, as S3 consoles show them). */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  // one decimal while it still says something ("1.5 KB"), none once it is noise ("340 MB")
  return `${u === 0 ? Math.round(v) : v.toFixed(v >= 10 ? 0 : 1)} ${BYTE_UNITS[u]}`;
}

/** 850 → "850 ms", 150_000 → "2 min 30 s", 5_400_000 → "1 h 30 min"; "?" when not a number. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${Math.floor(m / 60)} h`;
}

/** Milliseconds in one of each unit a duration may be written in. */
export const DURATION_UNIT_MS = {
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
} as const;

export type DurationUnit = keyof typeof DURATION_UNIT_MS;

/** One `<number><unit>` of a duration: "30m" is `{ value: 30, unit: "m" }`. */
export interface DurationTerm {
  value: number;
  unit: DurationUnit;
}

/**
 * The terms of a duration written as numbers with units, with or without spaces ("1h30m",
 * "1 min 3 s", "850 ms", "7d"), case-insensitive; undefined when anything else is in the text.
 */
export function parseDurationTerms(text: string): DurationTerm[] | undefined {
  const t = text.trim().toLowerCase();
  if (!/^(?:\d+(?:\.\d+)?\s*(?:ms|min|s|m|h|d)\s*)+$/.test(t)) return undefined;
  return [...t.matchAll(/(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)/g)].map((m) => ({
    value: Number(m[1]),
    unit: m[2] as DurationUnit,
  }));
}

/** A duration as written ("1h30m", "3 min 4 s", "850 ms") in milliseconds; undefined when unreadable. */
export function parseDuration(text: string): number | undefined {
  const terms = parseDurationTerms(text);
  return terms?.reduce((sum, t) => sum + t.value * DURATION_UNIT_MS[t.unit], 0);
}
