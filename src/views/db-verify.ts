import type { KnownBlock } from "@slack/types";
import { type DatabaseVerifyReport, lookups, type ObjectTotals } from "../jobs/steps/db/verify-report.js";
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

const TOTAL_LABELS: Array<[keyof ObjectTotals, string]> = [
  ["tables", "Tables"],
  ["rows", "Rows"],
  ["indexes", "Indexes"],
  ["constraints", "Constraints"],
  ["views", "Views"],
  ["materializedViews", "Materialized views"],
  ["functions", "Functions"],
  ["triggers", "Triggers"],
  ["enums", "Enums"],
  ["extensions", "Extensions"],
  ["sequences", "Sequences"],
  ["largeObjects", "Large objects"],
  ["schemas", "Schemas"],
];

// (a report saved before large objects were counted has none)
const n = (v: number | undefined) => (v ?? 0).toLocaleString("en-US");

/**
 * The report of `db.verify` / `/migrate verify database`: a clear "identical" with the totals,
 * or a table of the differences (what, object, source, target) with both sides' totals.
 */
export function dbVerifyView(report: DatabaseVerifyReport, opts: { maxRows?: number } = {}): Reply {
  const max = opts.maxRows ?? 20;
  const s = report.totals.source;
  const t = report.totals.target;
  const took = `compared in ${formatDuration(report.ms)} · ${report.tablesCompared} tables read on both sides, every row checksummed by primary key`;
  const sides = `source ${esc(report.source.where)} (PostgreSQL ${esc(report.source.version)}) · target ${esc(report.target.where)} (PostgreSQL ${esc(report.target.version)})`;
  const blocks: KnownBlock[] = [];
  let text: string;
  if (report.identical) {
    text = `Database verify: identical — ${n(s.tables)} tables, ${n(s.rows)} rows`;
    blocks.push(header("✅ Source and target databases are identical"));
    blocks.push({
      type: "section",
      fields: TOTAL_LABELS.map(([key, label]) => ({
        type: "mrkdwn" as const,
        text: `*${label}*\n${n(s[key])}`,
      })).slice(0, 10),
    });
    blocks.push(
      section(
        TOTAL_LABELS.slice(10)
          .map(([key, label]) => `*${label}*: ${n(s[key])}`)
          .join(" · "),
      ),
    );
  } else {
    const count = report.differences.length;
    text = `Database verify: ${count} difference${count === 1 ? "" : "s"} between source and target`;
    blocks.push(header(`❌ ${count} difference${count === 1 ? "" : "s"} between source and target`));
    const rows = [
      ["What", "Object", "Source", "Target"],
      ...report.differences.slice(0, max).map((d) => [d.what, d.object, d.source, d.target]),
    ];
    const more =
      count > max ? `\n… and ${count - max} more (the full report is in the data folder's reports/)` : "";
    blocks.push(section(clip(`\`\`\`${fixedWidthTable(rows, 40)}\`\`\`${more}`)));
    const look = lookups(report, max);
    if (look.length)
      blocks.push(
        section(clip(`*To see the rows that differ, on either side:*\n\`\`\`${look.join("\n")}\`\`\``)),
      );
    const totals = [
      ["", "Source", "Target"],
      ...TOTAL_LABELS.map(([key, label]) => [label, n(s[key]), n(t[key])]),
    ];
    blocks.push(section(`\`\`\`${fixedWidthTable(totals, 40)}\`\`\``));
  }
  if (report.notes.length) blocks.push(context(report.notes.map(esc).join("\n")));
  blocks.push(context(`${sides}\n${took}`));
  return { text, blocks };
}
