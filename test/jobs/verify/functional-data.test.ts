import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FunctionalCheckSchema, type MigrationFile } from "../../../src/config/schema.js";
import { createVerifyFunctionalStep } from "../../../src/jobs/steps/verify/functional.js";
import { TEST_OBJECT_PREFIX } from "../../../src/jobs/steps/verify/object-round-trip.js";
import type { VerificationReport } from "../../../src/jobs/steps/verify/report.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { tempDir } from "../host/fixtures.js";
import { type DataWorld, depsFor, fileWith, keysUnder, row, sql, startDataWorld } from "./world.js";

let w: DataWorld;
let data: { dir: string; remove: () => Promise<void> };

beforeAll(async () => {
  [w, data] = await Promise.all([startDataWorld(), tempDir("cutover-verify-data-")]);
  await sql(
    w.target,
    "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 3) g",
  );
  await sql(
    w.source,
    "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 4) g",
  );
});
afterAll(async () => {
  await Promise.all([w?.stop(), data?.remove()]);
});

async function run(
  list: unknown[],
  raw: Record<string, unknown> = {},
  edit: (f: MigrationFile) => void = () => undefined,
) {
  const file = await fileWith((f, v) => {
    v.baseUrl = "http://127.0.0.1:9"; // no HTTP checks here
    v.functional = list.map((c) => FunctionalCheckSchema.parse(c));
    w.point(f);
    edit(f);
  });
  const step = createVerifyFunctionalStep(depsFor(file, data.dir, w.env));
  const ctx = makeStepContext();
  const input = step.parse(raw);
  const outcome = await step.run(input, ctx);
  const verified = await step.verify(input, ctx);
  return { outcome, verified, report: ctx.checkpoints.get("report") as VerificationReport };
}

describe("verify.functional: SQL on the target database", () => {
  it("counts the rows a read-only query returns and times it", async () => {
    const { report, outcome } = await run([
      { id: "user-data", kind: "sql", query: "SELECT id FROM users WHERE id <= 2", minRows: 2 },
    ]);
    expect(row(report, "user-data")).toMatchObject({
      status: "pass",
      target: "≥ 2 rows within 50 ms",
      figures: { rows: 2 },
    });
    expect(outcome.figures?.["user-data.ms"]).toBeGreaterThan(0);
    expect(outcome.figures?.["user-data.ms"]).toBeLessThan(50);
  });

  it("fails too few rows, a slow query, and a difference from the source", async () => {
    const { report, verified } = await run([
      { id: "few", kind: "sql", query: "SELECT id FROM users", minRows: 10 },
      { id: "slow", kind: "sql", query: "SELECT pg_sleep(0.08)" },
      {
        id: "compare",
        kind: "sql",
        query: "SELECT id, name FROM users ORDER BY id",
        compareWithSource: true,
      },
      {
        id: "same",
        kind: "sql",
        query: "SELECT id, name FROM users WHERE id <= 3 ORDER BY id",
        compareWithSource: true,
      },
    ]);
    expect(verified.ok).toBe(false);
    expect(row(report, "few")).toMatchObject({
      status: "fail",
      figures: { rows: 3 },
      hint: expect.stringMatching(/fewer rows/),
    });
    expect(row(report, "slow")).toMatchObject({
      status: "fail",
      hint: expect.stringMatching(/EXPLAIN ANALYZE/),
    });
    expect(row(report, "slow").figures.ms).toBeGreaterThanOrEqual(80);
    expect(row(report, "compare")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/source has 4 rows \(different\)$/),
      figures: { rows: 3, sourceRows: 4, matchesSource: false },
    });
    expect(row(report, "same")).toMatchObject({
      status: "pass",
      figures: { rows: 3, sourceRows: 3, matchesSource: true },
    });
  });

  it("bounds a query that does not finish, and refuses writes (the session is read-only)", async () => {
    const started = Date.now();
    const { report } = await run(
      [
        { id: "hang", kind: "sql", query: "SELECT pg_sleep(30)" },
        {
          id: "write",
          kind: "sql",
          query: "WITH x AS (INSERT INTO users VALUES (99, 'x') RETURNING id) SELECT * FROM x",
        },
      ],
      { queryTimeoutMs: 300 },
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(row(report, "hang")).toMatchObject({ status: "fail", measured: "error" });
    expect(row(report, "hang").hint).toMatch(/did not finish within 300 ms/);
    expect(row(report, "write").hint).toMatch(/read-only transaction/);
  });

  it("says which variable to set when the target database's URL is missing", async () => {
    const file = await fileWith((f, v) => {
      v.functional = [FunctionalCheckSchema.parse({ id: "q", kind: "sql", query: "SELECT 1" })];
      w.point(f);
    });
    const { TARGET_DB_URL: _, ...env } = w.env;
    const step = createVerifyFunctionalStep(depsFor(file, data.dir, env));
    const ctx = makeStepContext();
    await step.run(step.parse({}), ctx);
    expect(row(ctx.checkpoints.get("report") as VerificationReport, "q").hint).toMatch(
      /TARGET_DB_URL is not set/,
    );
  });
});

describe("verify.functional: a test object through the bucket and the CDN", () => {
  it("uploads to the bucket, reads it back through the CDN identical, and deletes it", async () => {
    const before = w.cdn.stats();
    const { report } = await run([{ id: "upload-download", kind: "upload", sizeKb: 256 }], {
      cdnBaseUrl: w.cdn.url,
    });
    expect(row(report, "upload-download")).toMatchObject({
      status: "pass",
      figures: { bytes: 256 * 1024, identical: true, cleanedUp: true },
    });
    expect(row(report, "upload-download").figures.uploadMBps).toBeGreaterThan(0);
    expect(row(report, "upload-download").figures.downloadMBps).toBeGreaterThan(0);
    expect(w.cdn.stats().misses).toBe(before.misses + 1);
    expect(await keysUnder(w.store, TEST_OBJECT_PREFIX)).toEqual([]);
  });

  it("fails when the CDN cannot serve the object, and still deletes it", async () => {
    const dead = "http://127.0.0.1:9"; // nothing listens on the discard port
    const { report } = await run([{ id: "upload-download", kind: "upload", sizeKb: 8 }], {
      cdnBaseUrl: dead,
    });
    expect(row(report, "upload-download")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/down through the CDN connection refused/),
      hint: expect.stringMatching(/origin access control/),
      figures: { identical: false, cleanedUp: true },
    });
    expect(await keysUnder(w.store, TEST_OBJECT_PREFIX)).toEqual([]);
  });
});
