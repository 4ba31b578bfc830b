/**
 * The report the three verification steps produce: one row per check, its figures, and its
 * headline. A plain data module, so the steps (which measure) and views/verification.ts (which
 * renders) both depend on it and not on each other.
 */

export type VerificationKind = "functional" | "performance" | "reliability";
export type CheckStatus = "pass" | "fail" | "skip";
export type Figure = number | string | boolean;

/** One line of the verification report: a measured figure held against its target. */
export interface CheckRow {
  /** short and stable: `health`, `db.query`, `api.health`; prefixes the row's figures */
  id: string;
  /** what was checked, in words: "API health (/health)" */
  title: string;
  /** what was measured: "200 in 34 ms" */
  measured: string;
  /** what was wanted: "200 within 10 s" */
  target: string;
  status: CheckStatus;
  /** for a failing (or skipped) row: what to look at */
  hint?: string;
  /** the row's own figures, keys without the id (`ms`, `status`) */
  figures: Record<string, Figure>;
}

/** What one verification step measured. Kept as the step's checkpoint and rendered by views/verification.ts. */
export interface VerificationReport {
  kind: VerificationKind;
  /** the run that measured it: a rerun measures again instead of reusing an older report */
  runId: string;
  startedAt: string;
  ms: number;
  /** where API checks were sent (no secret: a base URL) */
  baseUrl?: string;
  rows: CheckRow[];
  /** no row failed (skipped rows do not count against it) */
  ok: boolean;
}

/** The report's rows as flat figures: `health.ok`, `health.ms`, …, plus the totals. */
export function reportFigures(report: VerificationReport): Record<string, Figure> {
  const out: Record<string, Figure> = {};
  for (const row of report.rows) {
    if (row.status === "skip") out[`${row.id}.skipped`] = true;
    else out[`${row.id}.ok`] = row.status === "pass";
    for (const [k, v] of Object.entries(row.figures)) out[`${row.id}.${k}`] = v;
  }
  const count = (s: CheckStatus) => report.rows.filter((r) => r.status === s).length;
  out["checks.passed"] = count("pass");
  out["checks.failed"] = count("fail");
  out["checks.skipped"] = count("skip");
  out["checks.ms"] = report.ms;
  if (report.baseUrl) out.baseUrl = report.baseUrl;
  return out;
}

const ICON: Record<CheckStatus, string> = { pass: "✓", fail: "✗", skip: "–" };

/** "5 of 6 checks passed, 1 failed" */
export function headline(report: VerificationReport): string {
  const ran = report.rows.filter((r) => r.status !== "skip");
  const passed = ran.filter((r) => r.status === "pass").length;
  const failed = ran.length - passed;
  const skipped = report.rows.length - ran.length;
  return `${report.kind}: ${passed} of ${ran.length} check${ran.length === 1 ? "" : "s"} passed${failed ? `, ${failed} failed` : ""}${skipped ? `, ${skipped} skipped` : ""}`;
}

/** The report as text, one row a line (the run's thread shows it when the step finishes or fails). */
export function reportText(report: VerificationReport): string {
  const lines = report.rows.map((r) => {
    const hint = r.status !== "pass" && r.hint ? ` → ${r.hint}` : "";
    return `${ICON[r.status]} ${r.title}: ${r.measured} (want ${r.target})${hint}`;
  });
  return [headline(report), ...lines].join("\n");
}
