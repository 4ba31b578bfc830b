/**
 * "Did you mean …" for everything a person types: slash-command words, phase and step names,
 * keys and values in the migration file. One matcher, so a slip is caught the same way wherever
 * it is made.
 */

/** Edit distance counting an adjacent transposition as one edit ("stauts" → "status"), for "did you mean …". */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) =>
    Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i]!;
      const prev = d[i - 1]!;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[m]![n]!;
}

/** Case, `_`, `-` and spaces do not count: "instance_class" is one slip from "instanceClass". */
const normalise = (s: string) => s.toLowerCase().replace(/[_\-\s]/g, "");

/** The candidates close enough to `word` to be a plausible slip, with their distance, best first. */
function ranked(word: string, candidates: Iterable<string>, max: number): Array<[string, number]> {
  const w = normalise(word);
  const scored: Array<[string, number]> = [];
  for (const c of new Set(candidates)) {
    if (c === word) continue;
    const n = normalise(c);
    let score = editDistance(w, n);
    // "bucketName" for "bucket", "region" for "awsRegion": a containment is a near miss.
    if (score > 0 && w.length >= 4 && n.length >= 4 && (n.includes(w) || w.includes(n)))
      score = Math.min(score, 2);
    const limit = Math.max(1, Math.min(3, Math.floor(Math.max(w.length, n.length) / 3)));
    if (score <= limit) scored.push([c, score]);
  }
  scored.sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0]));
  return scored.slice(0, max);
}

/** The candidates closest to `word`, best first, or [] when none is close enough to be a plausible misspelling. */
export function closeMatches(word: string, candidates: Iterable<string>, max = 3): string[] {
  return ranked(word, candidates, max).map(([c]) => c);
}

/** The one closest candidate to `input`, or one it begins ("stat" → "status"); undefined when none fits. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const [best] = closeMatches(input, candidates, 1);
  if (best !== undefined) return best;
  const needle = input.toLowerCase();
  return needle.length >= 2 ? candidates.find((c) => c.toLowerCase().startsWith(needle)) : undefined;
}

/** " (did you mean `x`?)" or "" when nothing is close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const scored = ranked(word, candidates, 3);
  if (scored.length === 0) return "";
  // Equally close candidates are all offered: "gp4" could be gp2 or gp3.
  const best = scored.filter(([, d]) => d === scored[0]![1]).map(([c]) => `\`${c}\``);
  return ` (did you mean ${best.join(" or ")}?)`;
}
