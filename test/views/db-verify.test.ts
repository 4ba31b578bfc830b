import { describe, expect, it } from "vitest";
import { formatDifferences } from "../../src/jobs/steps/db/verify.js";
import { dbVerifyView } from "../../src/views/db-verify.js";
import { EXAMPLE_TOTALS, verifyReport } from "../helpers/db-verify-report.js";

const totals = EXAMPLE_TOTALS;
const report = verifyReport;

describe("the database verify report", () => {
  it("says identical, with the totals", () => {
    const view = dbVerifyView(report());
    expect(view.text).toBe("Database verify: identical — 12 tables, 1,234,567 rows");
    const json = JSON.stringify(view.blocks);
    expect(json).toContain("Source and target databases are identical");
    for (const label of [
      "Tables",
      "Rows",
      "Indexes",
      "Constraints",
      "Views",
      "Materialized views",
      "Functions",
      "Triggers",
      "Enums",
      "Extensions",
      "Sequences",
    ])
      expect(json).toContain(`*${label}*`);
    expect(json).toContain("1,234,567");
    expect(json).not.toContain("differences");
  });

  it("shows a table of differences and both sides' totals, cut to a size Slack takes", () => {
    const differences = Array.from({ length: 30 }, (_, i) => ({
      what: "rows",
      object: `shop."表 ${i}"`,
      source: String(1000 + i),
      target: String(999 + i),
    }));
    differences.unshift({
      what: "content",
      object: 'public."Customers"',
      source: "12 buckets checksummed",
      target: "1 differ: id 1000–1999",
    });
    const r = report({
      identical: false,
      differences,
      totals: { source: totals, target: { ...totals, rows: totals.rows - 30 } },
    });
    const view = dbVerifyView(r, { maxRows: 10 });
    expect(view.text).toBe("Database verify: 31 differences between source and target");
    const json = JSON.stringify(view.blocks);
    expect(json).toContain("31 differences between source and target");
    expect(json).toContain("id 1000–1999");
    expect(json).toContain("… and 21 more");
    expect(json).toContain("1,234,537");
    for (const b of view.blocks)
      if (b.type === "section" && "text" in b && b.text) expect(b.text.text.length).toBeLessThanOrEqual(3000);
    expect(formatDifferences(r, 2)).toMatch(/^what +object +source +target\n-+/);
  });

  it("escapes what Slack would read as markup in object names", () => {
    const r = report({
      identical: false,
      differences: [{ what: "table", object: "public.<a&b>", source: "present", target: "missing" }],
    });
    expect(JSON.stringify(dbVerifyView(r).blocks)).toContain("public.&lt;a&amp;b&gt;");
  });

  it("shows the query that finds the differing rows, and the rows of a table without a key", () => {
    const r = report({
      identical: false,
      differences: [
        {
          what: "content",
          object: "public.orders",
          source: "1 of 40 key ranges differs; rows that differ:",
          target: "id = '17' changed",
          query: "SELECT * FROM ONLY public.orders WHERE (id = '17')",
        },
        {
          what: "content",
          object: "public.event_log",
          source: "no primary key: 1 of 4 row-hash buckets differs; rows that differ:",
          target: "(1,x): 1 on the source, 2 on the target",
          rows: ["(1,x) — source ×1, target ×2"],
        },
      ],
    });
    const json = JSON.stringify(dbVerifyView(r).blocks);
    expect(json).toContain("SELECT * FROM ONLY public.orders WHERE (id = '17');");
    expect(json).toContain("public.event_log: (1,x) — source ×1, target ×2");
    expect(formatDifferences(r)).toContain(
      "To see the rows that differ, on either side:\n  SELECT * FROM ONLY public.orders",
    );
  });
});
