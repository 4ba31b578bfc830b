import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import type { StepDefinition } from "../../../src/jobs/define-step.js";
import { createDbSteps, runDatabaseVerify } from "../../../src/jobs/steps/db/index.js";
import { dumpRoot } from "../../../src/jobs/steps/db/options.js";
import { dbVerifyView } from "../../../src/views/db-verify.js";
import { queryOnce, type TestDatabase } from "../../helpers/db.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { createFixtureSource, createRdsLikeTarget, fingerprint, makeDeps } from "./fixture.js";

let source: TestDatabase;
let target: TestDatabase & { role: string };
let deps: StepDeps;
let steps: Map<string, StepDefinition<unknown>>;
let before: Awaited<ReturnType<typeof fingerprint>>;

const step = (type: string) => steps.get(type)!;
const input = (type: string) => step(type).parse({ jobs: 2, sliceMb: 1, bucketRows: 500 });

const sql = queryOnce;

beforeAll(async () => {
  source = await createFixtureSource("pipe_src");
  target = await createRdsLikeTarget("pipe_dst");
  deps = await makeDeps(source.url, target.url, {
    config: undefined,
  });
  steps = new Map(createDbSteps(deps).map((s) => [s.type, s]));
  before = await fingerprint(source.url);
}, 60_000);

afterAll(async () => {
  await source?.drop();
  await target?.drop();
});

describe("the database move, step by step, on real PostgreSQL", () => {
  it("preflight passes with one checklist naming versions, extensions, sizes, disk and an empty target", async () => {
    const ctx = makeStepContext();
    const outcome = await step("db.preflight").run(input("db.preflight"), ctx);
    const text = outcome.summary;
    expect(text).toContain("✅ *Source connection*");
    expect(text).toContain("✅ *Target connection*");
    expect(text).toMatch(/PostgreSQL 1\d\./);
    expect(text).toMatch(/✅ \*Client tools\*: pg_dump and pg_restore 1\d/);
    expect(text).toMatch(/citext [\d.]+, pgcrypto [\d.]+: all available on the target/);
    expect(text).toMatch(/Source size\*: .* in 3 schemas .*販売 Sales/);
    expect(text).toContain("inventory.movements_2024");
    expect(text).toMatch(/✅ \*Dump folder\*: .* free, the dump needs about/);
    expect(text).toContain("✅ *Target is empty*");
    // the same checklist went into the run's thread
    expect(ctx.posted).toHaveLength(1);
    expect(ctx.posted[0]!.text).toMatch(/^\*Database preflight\*: ready to copy\n✅ \*Source connection\*/);
    const plan = await step("db.preflight").plan(input("db.preflight"), ctx);
    expect(plan.changes.map((c) => c.target)).toContain("Target is empty");
    expect((await step("db.preflight").verify(input("db.preflight"), ctx)).ok).toBe(true);
  });

  it("dumps in one snapshot, reporting tables dumped of the total and bytes written", async () => {
    const ctx = makeStepContext();
    const plan = await step("db.dump").plan(input("db.dump"), ctx);
    expect(plan.summary).toMatch(/would dump \d+ tables/);
    const outcome = await step("db.dump").run(input("db.dump"), ctx);
    expect(outcome.summary).toMatch(/dumped \d+ tables/);
    const last = ctx.reports.at(-1)!;
    expect(last.unit).toBe("tables");
    expect(last.done).toBe(last.total);
    expect(last.total).toBeGreaterThanOrEqual(10);
    expect(ctx.reports.some((r) => /written/.test(r.message ?? ""))).toBe(true);
    const verified = await step("db.dump").verify(input("db.dump"), ctx);
    expect(verified.ok, verified.summary).toBe(true);
    const root = dumpRoot(deps, {});
    const files = await readdir(root);
    expect(files.some((f) => f.startsWith("dump-") && !f.includes("."))).toBe(true);
    expect(files.some((f) => f.endsWith(".partial"))).toBe(false);
    // a retry of the same execution does not dump again
    const again = await step("db.dump").run(input("db.dump"), ctx);
    expect(again.figures?.reused).toBe(true);
  });

  it("restores as a non-superuser owner (like RDS), reporting objects restored of the total", async () => {
    const ctx = makeStepContext();
    const plan = await step("db.restore").plan(input("db.restore"), ctx);
    expect(plan.summary).toMatch(/would restore dump-/);
    const outcome = await step("db.restore").run(input("db.restore"), ctx);
    expect(outcome.summary).toMatch(/restored \d+ entries/);
    const objects = ctx.reports.filter((r) => r.unit === "objects");
    expect(objects.length).toBeGreaterThan(3);
    expect(objects.at(-1)!.done).toBe(objects.at(-1)!.total);
    // progress only grows
    for (let i = 1; i < objects.length; i++)
      expect(objects[i]!.done).toBeGreaterThanOrEqual(objects[i - 1]!.done);
    const verified = await step("db.restore").verify(input("db.restore"), ctx);
    expect(verified.ok, verified.summary).toBe(true);
    const owners = await sql<{ owner: string }>(
      target.url,
      `SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'inventory'`,
    );
    expect(owners.map((o) => o.owner)).toEqual([target.role]);
  });

  it("verify finds the two databases identical, with the totals", async () => {
    const ctx = makeStepContext();
    const outcome = await step("db.verify").run(input("db.verify"), ctx);
    expect(outcome.figures?.identical, outcome.summary).toBe(true);
    expect(outcome.summary).toMatch(/^identical: 1[0-9] tables, \d+ rows checksummed/);
    expect(outcome.figures?.rows).toBeGreaterThan(40_000);
    expect((await step("db.verify").verify(input("db.verify"), ctx)).ok).toBe(true);
    // the report goes into the run's thread as Block Kit, with the totals
    expect(ctx.posted).toHaveLength(1);
    expect(ctx.posted[0]!.text).toMatch(/identical/i);
    expect(JSON.stringify(ctx.posted[0]!.blocks)).toContain("Rows");
    const bytes = ctx.reports.filter((r) => r.unit === "bytes");
    expect(bytes.at(-1)!.done).toBe(bytes.at(-1)!.total);
    const report = await runDatabaseVerify(deps, { bucketRows: 500, sliceMb: 1 });
    expect(report.totals.source).toEqual(report.totals.target);
    expect(report.totals.source).toMatchObject({
      schemas: 3,
      enums: 1,
      extensions: 3,
      materializedViews: 1,
      views: 1,
      triggers: 2,
    });
    const view = dbVerifyView(report);
    expect(view.text).toContain("identical");
    expect(JSON.stringify(view.blocks)).toContain("Materialized views");
  });

  it("never wrote to the source", async () => {
    expect(await fingerprint(source.url)).toEqual(before);
  });

  it("catches a changed value, a missing row, a duplicated row, a sequence and a dropped index", async () => {
    await sql(
      target.url,
      `UPDATE "販売 Sales"."商品" SET "価格" = "価格" + 0.01 WHERE "商品ID" = 17;
       DELETE FROM inventory.movements_2024 WHERE id = (SELECT max(id) FROM inventory.movements_2024);
       INSERT INTO public.event_log SELECT * FROM public.event_log LIMIT 1;
       SELECT setval('"販売 Sales"."注文_id_seq"', 99999);
       DROP INDEX inventory.movements_sku_idx;
       UPDATE public."Customers" SET "E-mail Address" = upper("E-mail Address") WHERE "CustomerID" = 1007;`,
    );
    const report = await runDatabaseVerify(deps, { bucketRows: 500, sliceMb: 1 });
    expect(report.identical).toBe(false);
    const find = (what: string, object: string) =>
      report.differences.find((d) => d.what === what && d.object === object);
    const price = find("content", '"販売 Sales"."商品"')!;
    expect(price.target).toBe(`"商品ID" = '17' changed`);
    expect(price.query).toBe(`SELECT * FROM ONLY "販売 Sales"."商品" WHERE ("商品ID" = '17')`);
    const lost = find("rows", "inventory.movements_2024")!;
    expect(Number(lost.source) - Number(lost.target)).toBe(1);
    expect(find("rows", "public.event_log")).toBeDefined();
    // without a primary key, the rows themselves: the duplicated one is there twice on the target
    const log = find("content", "public.event_log")!;
    expect(log.source).toMatch(/^no primary key: 1 of \d+ row-hash buckets differs/);
    expect(log.rows).toHaveLength(1);
    expect(log.rows![0]).toMatch(/^\("\d{4}-.*movement.* — source ×1, target ×2$/);
    // citext compares equal ignoring case, but the text differs: the checksum sees it
    expect(find("content", 'public."Customers"')?.target).toMatch(/"CustomerID" /);
    expect(find("sequence", '"販売 Sales"."注文_id_seq"')?.target).toContain("last value 99999");
    expect(report.differences.some((d) => d.what === "index" && d.object.includes("movements_sku_idx"))).toBe(
      true,
    );
    const view = dbVerifyView(report);
    const text = JSON.stringify(view.blocks);
    expect(view.text).toMatch(/\d+ differences between source and target/);
    expect(text).toContain("movements_2024");
    expect(text).toContain(lost.source);
  });
});
