import type { DatabaseVerifyReport, ObjectTotals } from "../../src/jobs/steps/db/verify.js";

/** One side's object totals, as db.verify counts them on a small shop database. */
export const EXAMPLE_TOTALS: ObjectTotals = {
  schemas: 3,
  tables: 12,
  rows: 1_234_567,
  indexes: 20,
  constraints: 18,
  views: 1,
  materializedViews: 1,
  functions: 3,
  triggers: 2,
  enums: 1,
  extensions: 3,
  sequences: 4,
  largeObjects: 2,
};

/** A db.verify report that found both sides identical ({@link EXAMPLE_TOTALS} each), with `over` on top. */
export function verifyReport(over: Partial<DatabaseVerifyReport> = {}): DatabaseVerifyReport {
  return {
    identical: true,
    checkedAt: "2026-01-01T00:00:00Z",
    ms: 4_200,
    source: { where: "app@ep.neon.tech:5432/shop", version: "16.4" },
    target: { where: "admin@db.rds.amazonaws.com:5432/shop", version: "16.4" },
    totals: { source: EXAMPLE_TOTALS, target: EXAMPLE_TOTALS },
    bytesRead: 2_000_000_000,
    tablesCompared: 12,
    differences: [],
    notes: [],
    ...over,
  };
}
