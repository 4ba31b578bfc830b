import type { KnownBlock } from "@slack/types";
import { type CheckStatus, headline, type VerificationReport } from "../jobs/steps/verify/report.js";
import {
  clip,
  context,
  esc,
  fixedWidthTable,
  formatDuration,
  header,
  type Reply,
  section,
} from "./blocks.js";

const MARK: Record<CheckStatus, string> = { pass: "✓", fail: "✗", skip: "–" };
const TITLE: Record<VerificationReport["kind"], string> = {
  functional: "Functional verification",
  performance: "Performance verification",
  reliability: "Reliability verification",
};

/**
 * The report of a verification step (`/migrate verify functional|performance|reliability`): a
 * table of every check (check, measured, target, ✓/✗) and, under it, what to look at for each
 * failing row.
 */
export function verificationView(report: VerificationReport, opts: { maxCell?: number } = {}): Reply {
  const failing = report.rows.filter((r) => r.status === "fail");
  const icon = report.ok ? "✅" : "❌";
  const blocks: KnownBlock[] = [
    header(`${icon} ${TITLE[report.kind]}: ${headline(report).replace(/^\w+: /, "")}`),
  ];
  const rows = [
    ["Check", "Measured", "Target", ""],
    ...report.rows.map((r) => [r.title, r.measured, r.target, MARK[r.status]]),
  ];
  blocks.push(section(`\`\`\`${fixedWidthTable(rows, opts.maxCell ?? 48)}\`\`\``));
  if (failing.length > 0) {
    blocks.push(
      section(
        clip(
          `*What to look at*\n${failing
            .map((r) => `✗ *${esc(r.title)}*: ${esc(r.measured)} — ${esc(r.hint ?? "see the step's log")}`)
            .join("\n")}`,
        ),
      ),
    );
  }
  const skippedRows = report.rows.filter((r) => r.status === "skip");
  if (skippedRows.length > 0) {
    blocks.push(
      context(
        `Skipped: ${skippedRows.map((r) => `${esc(r.title)} (${esc(r.measured)}${r.hint ? `; ${esc(r.hint)}` : ""})`).join(" · ")}`,
      ),
    );
  }
  blocks.push(
    context(
      `measured in ${formatDuration(report.ms)}${report.baseUrl ? ` · API at ${esc(report.baseUrl)}` : ""} · ${report.startedAt.replace("T", " ").slice(0, 19)} UTC`,
    ),
  );
  return { text: `${TITLE[report.kind]}: ${headline(report).replace(/^\w+: /, "")}`, blocks };
}
