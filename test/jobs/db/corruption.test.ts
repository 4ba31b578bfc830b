import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDbSteps } from "../../../src/jobs/steps/db/index.js";
import {
  type DatabaseVerifyReport,
  rowHashExpr,
  runDatabaseVerify,
  type TableInfo,
} from "../../../src/jobs/steps/db/verify.js";
import { createDatabaseFrom, createEmptyDatabase, queryOnce, type TestDatabase } from "../../helpers/db.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { createRdsLikeTarget, makeDeps } from "./fixture.js";
import { HOSTILE_SQL } from "./hostile.js";

/**
 * The corruption suite: a hostile source database is copied byte for byte (CREATE DATABASE …
 * TEMPLATE), the copy is changed in one way, and db.verify must say it differs and name the
 * object that was changed. Every kind of difference the issue lists has a case here.
 */

interface Case {
  name: string;
  sql: string;
  what: string;
  object: string;
  /** matched against "source → target" of that difference */
  says?: RegExp;
}

const P = `"顧客 Data"."人々"`;

const CASES: Case[] = [
  // ── data ──
  {
    name: "two rows swap their values in one column",
    sql: "UPDATE public.swap40 SET a = CASE id WHEN 1 THEN 20 ELSE 10 END WHERE id IN (1, 2)",
    what: "content",
    object: "public.swap40",
    says: /id = '1' changed; id = '2' changed/,
  },
  {
    name: "one text value changes",
    sql: `UPDATE ${P} SET "名前" = '名前 X' WHERE id = 50`,
    what: "content",
    object: P,
    says: /id = '50' changed/,
  },
  {
    name: "a row is deleted",
    sql: "DELETE FROM public.swap40 WHERE id = 17",
    what: "content",
    object: "public.swap40",
    says: /id = '17' missing on the target/,
  },
  {
    name: "a row is added",
    sql: "INSERT INTO public.swap40 VALUES (41, 410, 'b41')",
    what: "content",
    object: "public.swap40",
    says: /id = '41' only on the target/,
  },
  {
    name: "a duplicate row is added to a table without a primary key",
    sql: "INSERT INTO public.nopk VALUES (3, 'x3')",
    what: "content",
    object: "public.nopk",
    says: /\(3,x3\): 5 on the source, 6 on the target/,
  },
  {
    name: "one of the duplicate rows of a table without a primary key changes",
    sql: "UPDATE public.nopk SET b = 'y4' WHERE ctid = (SELECT min(ctid) FROM public.nopk WHERE a = 4)",
    what: "content",
    object: "public.nopk",
    says: /\(4,y4\): 0 on the source, 1 on the target/,
  },
  {
    name: "-0 becomes 0",
    sql: `UPDATE ${P} SET score = 0 WHERE id = 4`,
    what: "content",
    object: P,
    says: /id = '4' changed/,
  },
  {
    name: "NaN becomes Infinity",
    sql: `UPDATE ${P} SET score = 'Infinity' WHERE id = 1`,
    what: "content",
    object: P,
    says: /id = '1' changed/,
  },
  {
    name: "an infinity date becomes -infinity",
    sql: `UPDATE ${P} SET born = '-infinity' WHERE id = 5`,
    what: "content",
    object: P,
    says: /id = '5' changed/,
  },
  {
    name: "an hstore value changes",
    sql: `UPDATE ${P} SET tags = tags || hstore('k', 'changed') WHERE id = 8`,
    what: "content",
    object: P,
    says: /id = '8' changed/,
  },
  {
    name: "a range bound moves by a microsecond",
    sql: `UPDATE ${P} SET during = tstzrange(lower(during), upper(during) + interval '1 microsecond') WHERE id = 9`,
    what: "content",
    object: P,
    says: /id = '9' changed/,
  },
  {
    name: "a composite value's field changes",
    sql: `UPDATE ${P} SET home.street = 'Elsewhere' WHERE id = 10`,
    what: "content",
    object: P,
    says: /id = '10' changed/,
  },
  {
    name: "a bigint changes to a value its hash folds onto (0 → 4294967297)",
    sql: `UPDATE ${P} SET big = 4294967297 WHERE id = 7`,
    what: "content",
    object: P,
    says: /id = '7' changed/,
  },
  {
    name: "a row of an inherited table changes",
    sql: "UPDATE ONLY public.child_t SET v = 'changed' WHERE id = 10",
    what: "content",
    object: "public.child_t",
  },
  {
    name: "a row of a partition changes",
    sql: "UPDATE public.events SET what = 'changed' WHERE id = 3",
    what: "content",
    object: "public.events_2024",
    says: /id = '3' AND at = '2024-01-04' changed/,
  },
  {
    name: "one byte of a 6 MB row changes",
    sql: "UPDATE public.blobs SET body = overlay(body placing '\\x00'::bytea from 3000000 for 1) WHERE id = 1",
    what: "content",
    object: "public.blobs",
    says: /id = '1' changed/,
  },
  {
    name: "a row of an unlogged table changes",
    sql: "UPDATE public.scratch SET v = 'changed' WHERE id = 3",
    what: "content",
    object: "public.scratch",
  },
  {
    name: "a numeric's scale changes (0.25 → 0.250)",
    sql: "UPDATE public.amounts SET n = 0.250 WHERE id = 1",
    what: "content",
    object: "public.amounts",
  },
  {
    name: "a sequence moves on",
    sql: "SELECT setval('public.ticket_seq', 500)",
    what: "sequence",
    object: "public.ticket_seq",
    says: /last value 100 .* → last value 500/,
  },
  {
    name: "one byte of a large object changes",
    sql: "SELECT lo_put(424201, 3, '\\xff')",
    what: "large object",
    object: "OID 424201",
    says: /content differs/,
  },
  {
    name: "a large object is deleted",
    sql: "SELECT lo_unlink(424202)",
    what: "large object",
    object: "OID 424202",
    says: /→ missing/,
  },
  {
    name: "a large object is added",
    sql: "SELECT lo_from_bytea(424299, '\\x00')",
    what: "large object",
    object: "OID 424299",
    says: /^missing →/,
  },
  // ── definitions ──
  {
    name: "a view's definition changes",
    sql: `CREATE OR REPLACE VIEW public.v_people AS SELECT id, "名前" FROM ${P} WHERE id > 11`,
    what: "view",
    object: "public.v_people",
    says: /definition: .*> 10.* → definition: .*> 11/,
  },
  { name: "a view is dropped", sql: "DROP VIEW public.v_people", what: "view", object: "public.v_people" },
  {
    name: "a view gains an option",
    sql: "ALTER VIEW public.v_people SET (security_barrier = true)",
    what: "view",
    object: "public.v_people",
    says: /options: none → options: security_barrier=true/,
  },
  {
    name: "a trigger is redefined",
    sql: "DROP TRIGGER swap40_stamp ON public.swap40; CREATE TRIGGER swap40_stamp BEFORE UPDATE ON public.swap40 FOR EACH ROW EXECUTE FUNCTION public.stamp()",
    what: "trigger",
    object: "public.swap40 swap40_stamp",
    says: /BEFORE INSERT.* → .*BEFORE UPDATE/,
  },
  {
    name: "a trigger is disabled",
    sql: "ALTER TABLE public.swap40 DISABLE TRIGGER swap40_stamp",
    what: "trigger",
    object: "public.swap40 swap40_stamp",
    says: /state: enabled → state: DISABLED/,
  },
  {
    name: "a function's body changes",
    sql: "CREATE OR REPLACE FUNCTION public.add1(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + 2'",
    what: "function",
    object: "public.add1(integer)",
    says: /x \+ 1.* → .*x \+ 2/,
  },
  {
    name: "a function becomes SECURITY DEFINER",
    sql: "ALTER FUNCTION public.add1(integer) SECURITY DEFINER",
    what: "function",
    object: "public.add1(integer)",
    says: /→ .*SECURITY DEFINER/,
  },
  {
    name: "a function is dropped",
    sql: "DROP FUNCTION public.add1(integer)",
    what: "function",
    object: "public.add1(integer)",
  },
  {
    name: "a NOT NULL is dropped",
    sql: "ALTER TABLE public.swap40 ALTER b DROP NOT NULL",
    what: "column",
    object: "public.swap40.b",
    says: /not null: NOT NULL → not null: nullable/,
  },
  {
    name: "a default is dropped",
    sql: `ALTER TABLE ${P} ALTER "名前" DROP DEFAULT`,
    what: "column",
    object: `${P}."名前"`,
    says: /default: 'anon'::text → default: none/,
  },
  {
    name: "an identity changes from ALWAYS to BY DEFAULT",
    sql: "ALTER TABLE public.idt ALTER id SET GENERATED BY DEFAULT",
    what: "column",
    object: "public.idt.id",
    says: /identity: GENERATED ALWAYS → identity: GENERATED BY DEFAULT/,
  },
  {
    name: "a generated column loses its expression",
    sql: "ALTER TABLE public.idt ALTER doubled DROP EXPRESSION",
    what: "column",
    object: "public.idt.doubled",
    says: /generated: ALWAYS AS \(\(id \* 2\)\) STORED → generated: no/,
  },
  {
    name: "a column's collation changes",
    sql: `ALTER TABLE ${P} ALTER code TYPE text COLLATE "POSIX"`,
    what: "column",
    object: `${P}.code`,
    says: /collation: pg_catalog."C" → collation: pg_catalog."POSIX"/,
  },
  {
    name: "a column's type changes",
    sql: "ALTER TABLE public.swap40 ALTER a TYPE bigint",
    what: "column",
    object: "public.swap40.a",
    says: /type: integer → type: bigint/,
  },
  {
    name: "a column is added",
    sql: "ALTER TABLE public.swap40 ADD COLUMN c integer",
    what: "column",
    object: "public.swap40.c",
    says: /missing → present/,
  },
  {
    name: "a column's storage changes",
    sql: "ALTER TABLE public.swap40 ALTER b SET STORAGE EXTERNAL",
    what: "column",
    object: "public.swap40.b",
    says: /storage: x → storage: e/,
  },
  {
    name: "an UNLOGGED table is made LOGGED",
    sql: "ALTER TABLE public.scratch SET LOGGED",
    what: "table",
    object: "public.scratch",
    says: /persistence: UNLOGGED → persistence: LOGGED/,
  },
  {
    name: "an inheritance link is removed",
    sql: "ALTER TABLE public.child_t NO INHERIT public.parent_t",
    what: "table",
    object: "public.child_t",
    says: /inherits: public.parent_t → inherits: nothing/,
  },
  {
    name: "a partition's bounds change",
    sql: "ALTER TABLE public.events DETACH PARTITION public.events_2025; ALTER TABLE public.events ATTACH PARTITION public.events_2025 FOR VALUES FROM ('2025-01-01') TO ('2027-01-01')",
    what: "table",
    object: "public.events_2025",
    says: /TO \('2026-01-01'\) → .*TO \('2027-01-01'\)/,
  },
  {
    name: "a table's storage options change",
    sql: "ALTER TABLE public.swap40 SET (fillfactor = 50)",
    what: "table",
    object: "public.swap40",
    says: /options: none → options: fillfactor=50/,
  },
  {
    name: "a table's replica identity changes",
    sql: "ALTER TABLE public.swap40 REPLICA IDENTITY FULL",
    what: "table",
    object: "public.swap40",
    says: /replica identity: default → replica identity: full/,
  },
  { name: "a table is dropped", sql: "DROP TABLE public.booking", what: "table", object: "public.booking" },
  {
    name: "a composite type's attribute is renamed",
    sql: "ALTER TYPE public.addr RENAME ATTRIBUTE city TO town",
    what: "attribute",
    object: "public.addr.city",
    says: /present → missing/,
  },
  {
    name: "a table's comment changes",
    sql: "COMMENT ON TABLE public.swap40 IS 'forty-one rows'",
    what: "comment",
    object: "table public.swap40",
    says: /text: forty rows → text: forty-one rows/,
  },
  {
    name: "a column's comment is removed",
    sql: `COMMENT ON COLUMN ${P}."名前" IS NULL`,
    what: "comment",
    object: `table column ${P}."名前"`,
  },
  {
    name: "a function's comment changes",
    sql: "COMMENT ON FUNCTION public.add1(integer) IS 'adds two'",
    what: "comment",
    object: "function public.add1(integer)",
  },
  {
    name: "a schema's comment changes",
    sql: `COMMENT ON SCHEMA "顧客 Data" IS 'clients'`,
    what: "comment",
    object: `schema "顧客 Data"`,
    says: /text: customers → text: clients/,
  },
  {
    name: "an index is dropped",
    sql: "DROP INDEX public.swap40_b_idx",
    what: "index",
    object: "public.swap40_b_idx",
  },
  {
    name: "a partial index's condition changes",
    sql: `DROP INDEX "顧客 Data".people_mood_idx; CREATE INDEX people_mood_idx ON ${P} (mood) WHERE score > 1`,
    what: "index",
    object: `"顧客 Data".people_mood_idx`,
    says: /> \(0\)::double precision.* → .*> \(1\)::double precision/,
  },
  {
    name: "a CHECK constraint changes",
    sql: "ALTER TABLE public.amounts DROP CONSTRAINT amounts_amount_check, ADD CONSTRAINT amounts_amount_check CHECK (amount > 0)",
    what: "constraint",
    object: "public.amounts amounts_amount_check",
    says: />= .* → .*> /,
  },
  {
    name: "a foreign key of the cycle is dropped",
    sql: "ALTER TABLE public.a_side DROP CONSTRAINT a_side_b_fk",
    what: "constraint",
    object: "public.a_side a_side_b_fk",
  },
  {
    name: "a foreign key stops being deferrable",
    sql: "ALTER TABLE public.a_side ALTER CONSTRAINT a_side_b_fk NOT DEFERRABLE",
    what: "constraint",
    object: "public.a_side a_side_b_fk",
    says: /DEFERRABLE INITIALLY DEFERRED → /,
  },
  {
    name: "an exclusion constraint is dropped",
    sql: "ALTER TABLE public.booking DROP CONSTRAINT booking_during_excl",
    what: "constraint",
    object: "public.booking booking_during_excl",
  },
  {
    name: "an enum gains a label",
    sql: "ALTER TYPE public.mood ADD VALUE 'angry'",
    what: "enum",
    object: "public.mood",
    says: /labels: sad, ok, happy → labels: sad, ok, happy, angry/,
  },
  {
    name: "a domain's CHECK changes",
    sql: "ALTER DOMAIN public.email DROP CONSTRAINT email_check; ALTER DOMAIN public.email ADD CONSTRAINT email_check CHECK (VALUE LIKE '%@%.%')",
    what: "constraint",
    object: "domain public.email email_check",
  },
  {
    name: "a domain's default changes",
    sql: "ALTER DOMAIN public.email SET DEFAULT 'x@y.z'",
    what: "domain",
    object: "public.email",
    says: /default: 'nobody@example.com'::text → default: 'x@y.z'::text/,
  },
  {
    name: "an unpopulated materialized view is populated on the target",
    sql: "REFRESH MATERIALIZED VIEW public.mv_empty",
    what: "materialized view",
    object: "public.mv_empty",
    says: /state: not populated .* → state: populated/,
  },
  {
    name: "a materialized view is left unpopulated on the target",
    sql: "REFRESH MATERIALIZED VIEW public.mv_counts WITH NO DATA",
    what: "materialized view",
    object: "public.mv_counts",
    says: /state: populated → state: not populated \(REFRESH MATERIALIZED VIEW has not run\)/,
  },
  {
    name: "a materialized view's query changes",
    sql: `DROP MATERIALIZED VIEW public.mv_counts; CREATE MATERIALIZED VIEW public.mv_counts AS SELECT mood, count(*) + 0 AS n FROM ${P} GROUP BY mood`,
    what: "materialized view",
    object: "public.mv_counts",
    says: /definition: .*count\(\*\) \+ 0/,
  },
  {
    name: "a rule is dropped",
    sql: "DROP RULE scratch_no_delete ON public.scratch",
    what: "rule",
    object: "public.scratch scratch_no_delete",
  },
  {
    name: "a sequence gets an owning column",
    sql: "ALTER SEQUENCE public.ticket_seq OWNED BY public.swap40.id",
    what: "sequence",
    object: "public.ticket_seq",
    says: /owned by: nothing → owned by: public.swap40.id/,
  },
  {
    name: "a column's statistics target changes",
    sql: "ALTER TABLE public.swap40 ALTER a SET STATISTICS 500",
    what: "column",
    object: "public.swap40.a",
    says: /statistics target: default → statistics target: 500/,
  },
  {
    name: "a column's planner option is set",
    sql: "ALTER TABLE public.swap40 ALTER a SET (n_distinct = 5)",
    what: "column",
    object: "public.swap40.a",
    says: /options: none → options: n_distinct=5/,
  },
  {
    name: "a table is clustered on an index",
    sql: "CLUSTER public.swap40 USING swap40_b_idx",
    what: "index",
    object: "public.swap40_b_idx",
    says: /clustered: no → clustered: CLUSTER ON this index/,
  },
  {
    name: "a collation is added",
    sql: `CREATE COLLATION public.plain (provider = libc, locale = 'C')`,
    what: "collation",
    object: "public.plain",
    says: /missing → present/,
  },
  {
    name: "a schema is added",
    sql: "CREATE SCHEMA extra",
    what: "schema",
    object: "extra",
    says: /missing → present/,
  },
  // ── security ──
  {
    name: "an RLS policy is dropped",
    sql: "DROP POLICY own_rows ON public.secrets",
    what: "policy",
    object: "public.secrets own_rows",
  },
  {
    name: "an RLS policy's condition changes",
    sql: "ALTER POLICY own_rows ON public.secrets USING (true)",
    what: "policy",
    object: "public.secrets own_rows",
    says: /using: \(owner = CURRENT_USER\) → using: true/,
  },
  {
    name: "an RLS policy's roles change",
    sql: "ALTER POLICY insert_own ON public.secrets TO postgres",
    what: "policy",
    object: "public.secrets insert_own",
    says: /to: PUBLIC → to: postgres/,
  },
  {
    name: "row level security is disabled",
    sql: "ALTER TABLE public.secrets DISABLE ROW LEVEL SECURITY",
    what: "table",
    object: "public.secrets",
    says: /row level security: enabled → row level security: disabled/,
  },
  {
    name: "FORCE ROW LEVEL SECURITY is turned on",
    sql: "ALTER TABLE public.secrets FORCE ROW LEVEL SECURITY",
    what: "table",
    object: "public.secrets",
    says: /forced row level security: not forced → /,
  },
  {
    name: "a row of a table under row level security changes",
    sql: "UPDATE public.secrets SET v = 'leaked' WHERE id = 2",
    what: "content",
    object: "public.secrets",
    says: /id = '2' changed/,
  },
];

let source: TestDatabase;
let pristine: TestDatabase;

beforeAll(async () => {
  source = await createEmptyDatabase("hostile_src");
  const client = new pg.Client({ connectionString: source.url });
  await client.connect();
  try {
    await client.query(HOSTILE_SQL);
  } finally {
    await client.end();
  }
  // nobody ever connects to this one, so each case's copy is made from it at once
  pristine = await createDatabaseFrom("hostile_pristine", source.name);
}, 120_000);

afterAll(async () => {
  await pristine?.drop();
  await source?.drop();
});

async function verifyCopy(corrupt?: string): Promise<DatabaseVerifyReport> {
  const target = await createDatabaseFrom("hostile_dst", pristine.name);
  try {
    if (corrupt) await queryOnce(target.url, corrupt);
    const deps = await makeDeps(source.url, target.url);
    return await runDatabaseVerify(deps, { jobs: 1, bucketRows: 100, sliceMb: 1 });
  } finally {
    await target.drop();
  }
}

describe("db.verify on a hostile database", () => {
  it("finds an exact copy identical, with large objects and both materialized views", async () => {
    const report = await verifyCopy();
    expect(report.differences).toEqual([]);
    expect(report.identical).toBe(true);
    expect(report.notes).toContain(
      "materialized view public.mv_empty is not populated on either side, so it holds no rows to compare",
    );
    expect(report.totals.source).toMatchObject({
      materializedViews: 2,
      views: 1,
      triggers: 2,
      enums: 1,
      largeObjects: 2,
    });
    expect(report.totals.target).toEqual(report.totals.source);
  });

  it("finds a real copy (pg_dump, pg_restore as a non-superuser owner) identical", async () => {
    const target = await createRdsLikeTarget("hostile_copy");
    try {
      const deps = await makeDeps(source.url, target.url);
      const steps = new Map(createDbSteps(deps).map((x) => [x.type, x]));
      for (const type of ["db.dump", "db.restore"]) {
        const step = steps.get(type)!;
        const ctx = makeStepContext();
        const input = step.parse({ jobs: 2 });
        await step.run(input, ctx);
        expect((await step.verify(input, ctx)).ok).toBe(true);
      }
      const report = await runDatabaseVerify(deps, { jobs: 2, bucketRows: 100, sliceMb: 1 });
      expect(report.differences).toEqual([]);
      expect(report.identical).toBe(true);
    } finally {
      await target.drop();
    }
  }, 120_000);

  it("sees every one of the 780 ways two of 40 rows can swap a column's values", async () => {
    // the row hash db.verify sums, over every table with two rows' values of "a" swapped
    const info: TableInfo = {
      name: "public.swap40",
      kind: "r",
      bytes: 0,
      pages: 0,
      estRows: 40,
      columns: "id integer, a integer, b text",
      pk: [{ col: "id", type: "integer", int: true }],
      cols: [
        { col: "id", exact: true, fold: "" },
        { col: "a", exact: true, fold: "" },
        { col: "b", exact: true, fold: "" },
      ],
      populated: true,
    };
    const hash = rowHashExpr(info, info, 15);
    const [row] = await queryOnce<{ pairs: string; invisible: string }>(
      source.url,
      `WITH base AS (SELECT sum(${hash}) AS h FROM public.swap40 _cv),
        pairs AS (SELECT x.id AS i, y.id AS j, x.a AS ai, y.a AS aj FROM public.swap40 x JOIN public.swap40 y ON x.id < y.id),
        sums AS (SELECT p.i, p.j, (SELECT sum(${hash}) FROM (SELECT r.id, CASE r.id WHEN p.i THEN p.aj WHEN p.j THEN p.ai ELSE r.a END AS a, r.b
          FROM public.swap40 r) _cv) AS h FROM pairs p)
      SELECT count(*) AS pairs, count(*) FILTER (WHERE sums.h = base.h) AS invisible FROM sums, base`,
    );
    expect(row).toEqual({ pairs: "780", invisible: "0" });
  });

  it(`has at least 40 corruptions to try (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  for (const c of CASES) {
    it(`names ${c.what} ${c.object} when ${c.name}`, async () => {
      const report = await verifyCopy(c.sql);
      expect(report.identical).toBe(false);
      const hit = report.differences.find((d) => d.what === c.what && d.object === c.object);
      expect(hit, JSON.stringify(report.differences, null, 1)).toBeDefined();
      if (c.says) expect(`${hit!.source} → ${hit!.target}`).toMatch(c.says);
    });
  }
});
