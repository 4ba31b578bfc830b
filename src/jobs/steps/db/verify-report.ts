/**
 * What db.verify found, as data: the totals of each side and the differences. The step writes it
 * and views/db-verify.ts renders it; both depend on this module and not on each other.
 */

/** Counts of one side. */
export interface ObjectTotals {
  schemas: number;
  tables: number;
  rows: number;
  indexes: number;
  constraints: number;
  views: number;
  materializedViews: number;
  functions: number;
  triggers: number;
  enums: number;
  extensions: number;
  sequences: number;
  largeObjects: number;
}

/** One line of the differences table. */
export interface Difference {
  /** the kind of object: "rows", "content", "table", "column", "view", "policy", "large object", … */
  what: string;
  object: string;
  /** the source's side of it, in words ("not null: NOT NULL", "present", "3 rows") */
  source: string;
  target: string;
  /** for a content difference: a query that shows the differing rows on either side */
  query?: string;
  /** for a table without a primary key: the rows that differ, in their text form */
  rows?: string[];
}

/** What db.verify found; the Block Kit view (src/views/db-verify.ts) renders it. */
export interface DatabaseVerifyReport {
  identical: boolean;
  checkedAt: string;
  ms: number;
  source: { where: string; version: string };
  target: { where: string; version: string };
  totals: { source: ObjectTotals; target: ObjectTotals };
  /** bytes of table data read on both sides */
  bytesRead: number;
  /** tables whose content was compared bucket by bucket */
  tablesCompared: number;
  differences: Difference[];
  /** remarks that do not make the sides differ (e.g. an extension's version) */
  notes: string[];
}

/** The queries (and, without a primary key, the rows) that show where content differs. */
export function lookups(report: DatabaseVerifyReport, max = 15): string[] {
  const out: string[] = [];
  for (const d of report.differences.slice(0, max)) {
    if (d.query) out.push(`${d.query};`);
    for (const row of d.rows ?? []) out.push(`${d.object}: ${row}`);
  }
  return out;
}
