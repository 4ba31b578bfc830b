import { formatBytes } from "../../../text/units.js";
import type { ShardPool } from "../../define-step.js";
import type { Difference } from "./verify-report.js";

/**
 * db.verify's table data compared in parts: the tables are dealt into groups of about equal size
 * (largest first, each to the lightest group), each group is a pg-boss job on the shard queue
 * (src/jobs/shards.ts) that any worker on any replica takes, and the step sums the groups'
 * progress into its one message and their results into its one report. A worker killed mid-group
 * fails its job's heartbeat; pg-boss hands the group to another worker, which compares it again
 * (a group's comparison is read-only and keeps nothing half-done). Definitions, sequences and
 * large objects stay in the step itself: they are one catalog read, not work that grows with rows.
 * (The comparison itself is db.verify's, src/jobs/steps/db/verify.ts, which imports this file and
 * not the other way round.)
 */

/** What comparing some tables' data found; row counts as text (a part's result travels as JSON). */
export interface TableDataResult {
  tables: number;
  sourceRows: string;
  targetRows: string;
  bytesRead: number;
  differences: Difference[];
}

/** One part: the tables it compares. */
export interface TablePart {
  tables: string[];
}

/** Deals tables into at most `groups` groups of about equal bytes, each in the catalog's order. */
export function groupTables(tables: Array<{ name: string; bytes: number }>, groups: number): string[][] {
  const n = Math.max(1, Math.min(groups, tables.length));
  const bins = Array.from({ length: n }, () => ({ bytes: 0, names: [] as string[] }));
  for (const t of [...tables].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name))) {
    const lightest = bins.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    lightest.bytes += t.bytes;
    lightest.names.push(t.name);
  }
  const order = new Map(tables.map((t, i) => [t.name, i]));
  return bins
    .filter((b) => b.names.length > 0)
    .map((b) => b.names.sort((x, y) => (order.get(x) ?? 0) - (order.get(y) ?? 0)));
}

/** db.verify's `inParts` over the step's shard pool: `groups` jobs at most. */
export function tablesInJobs(
  shards: ShardPool,
  groups: number,
): (tables: Array<{ name: string; bytes: number }>) => Promise<TableDataResult[]> {
  return (tables) => {
    const parts: TablePart[] = groupTables(tables, groups).map((names) => ({ tables: names }));
    return shards.run<TableDataResult>(
      parts,
      (each, finished) => {
        let done = 0;
        let total = 0;
        each.forEach((p, i) => {
          done += p?.done ?? 0;
          total += p?.total ?? 0;
          // a part not started yet counts with its tables' size from the catalog
          if (!p)
            for (const name of parts[i]!.tables) total += tables.find((t) => t.name === name)?.bytes ?? 0;
        });
        return {
          done,
          total: Math.max(total, done),
          unit: "bytes",
          message: `comparing ${tables.length} tables in ${parts.length} jobs, ${finished} done (${formatBytes(done)} of ${formatBytes(Math.max(total, done))})`,
        };
      },
      "tables",
    );
  };
}

/** The tables a part names, as the queue passed it. */
export function tablesOfPart(part: unknown): string[] {
  const tables = (part as Partial<TablePart> | undefined)?.tables;
  if (!Array.isArray(tables) || !tables.every((t) => typeof t === "string"))
    throw new Error("a db.verify part names no tables: run the step again to send its parts anew");
  return tables;
}
