import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import path from "node:path";
import type pg from "pg";
import { z } from "zod";
import {
  connect,
  describeUrl,
  type Endpoint,
  SYSTEM_SCHEMA_SQL,
  serverVersion,
} from "../../../cloud/postgres.js";
import { formatBytes } from "../../../text/units.js";
import { dbVerifyView } from "../../../views/db-verify.js";
import type { Progress, StepDefinition, StepDeps, StepOutcome } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { sourceEndpoint, targetEndpoint } from "./endpoints.js";
import { CommonOptions, jobsFor } from "./options.js";
import { compareDefinitions, type Definitions, readDefinitions } from "./verify-definitions.js";
import { compareLargeObjects } from "./verify-large-objects.js";
import { type DatabaseVerifyReport, type Difference, lookups, type ObjectTotals } from "./verify-report.js";
import { type TableDataResult, tablesInJobs, tablesOfPart } from "./verify-tables.js";

/**
 * `db.verify`: proves the target holds what the source holds, beyond row counts.
 *
 * - Data: every table (and materialized view) is read on each side in parallel block-range
 *   slices (TID range scans: sequential I/O, `jobs` connections per side). Each row's text form
 *   is hashed (64-bit) and the hashes are summed with the row count: exact (numeric), order-free
 *   and additive across slices, so memory stays constant however large the table. A changed,
 *   missing or duplicated row changes the count or the sum. Only for a table that differs, a
 *   second pass sums per primary-key bucket (ranges of an integer key, else a hash of the key)
 *   to say where ("id 1000–1999"), with a few thousand buckets at most per table.
 * - Sequences: last value and is_called.
 * - Schema: tables (with their columns), indexes, constraints, views, materialized views,
 *   functions, triggers, enums (with labels), extensions, sequences and schemas, by name and,
 *   where stable across servers, by definition.
 *
 * Both sessions are read-only and use the same settings (UTC, ISO dates, hex bytea), so a value's
 * text is the same on both servers. It can run at any time, also long after the cutover.
 */

const Input = CommonOptions.extend({
  /** rows per primary-key bucket: smaller buckets name a difference more precisely */
  bucketRows: z.number().int().min(100).max(10_000_000).default(10_000),
  /** size of the block-range slices tables are read in, in parallel */
  sliceMb: z.number().int().min(1).max(65_536).default(256),
  /**
   * the tables' data compared in this many pg-boss jobs (groups of tables of about equal size),
   * taken by any worker on any replica; 1: all in the step's own process
   */
  tableJobs: z.number().int().min(1).max(256).default(1),
});
export type VerifyInput = z.infer<typeof Input>;

export {
  type DatabaseVerifyReport,
  type Difference,
  lookups,
  type ObjectTotals,
} from "./verify-report.js";

export const dbVerify = defineStep({
  type: "db.verify",
  description:
    "compare every table's rows by content, every object's full definition, sequences and large objects on both sides",
  input: Input,
  configSections: ["source.database", "target.rds"],
  mutating: false,
  freshEachRun: true,
  checkpoints: { report: z.object({ identical: z.boolean(), summary: z.string() }) },
});

// ───────────────────────────── the catalog ─────────────────────────────

export interface TableInfo {
  name: string;
  kind: string;
  bytes: number;
  pages: number;
  estRows: number;
  columns: string;
  pk: Array<{ col: string; type: string; int: boolean }> | null;
  /** columns in order; `exact` when hashing the value itself is as strict as hashing its text */
  cols: Array<{ col: string; exact: boolean; fold: "" | "int8" | "ts" }> | null;
  /** false for a materialized view that has not been populated (its rows cannot be read) */
  populated: boolean;
}

/**
 * Column types whose hash function tells apart exactly the values their text tells apart:
 * integers, booleans, dates and timestamps, uuid, bytea, numeric with a fixed scale, and text
 * with a deterministic collation. Anything else (unconstrained numeric's scale, jsonb, floats' -0,
 * citext's case, enums hashed by OID, arrays' bounds, domains, time…) is hashed through its text.
 * `fold` marks the 8-byte types whose hash folds 64 bits into 32 (hashint8 XORs the halves, so 0
 * and 4294967297 hash alike): they get a second term that pins the other half.
 */
const EXACT_HASH_SQL = `(a.atttypid IN ('bool'::regtype, 'bytea'::regtype, 'int8'::regtype, 'int2'::regtype, 'int4'::regtype,
    'oid'::regtype, 'date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype, 'uuid'::regtype)
  OR (a.atttypid = 'numeric'::regtype AND a.atttypmod <> -1)
  OR (a.atttypid IN ('text'::regtype, 'varchar'::regtype)
      AND coalesce((SELECT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation), true)))`;
const FOLD_SQL = `CASE WHEN a.atttypid = 'int8'::regtype THEN 'int8'
  WHEN a.atttypid IN ('timestamp'::regtype, 'timestamptz'::regtype) THEN 'ts' ELSE '' END`;

/**
 * Mixes a 64-bit value through a strong hash (lookup3 over its digits). hash_record_extended
 * combines column hashes linearly (h * 31 + next), so a plain sum over rows keeps only per-column
 * sums and two rows swapping values in a column would leave it unchanged; mixed first, the sum
 * is a multiset hash of whole rows.
 */
const mix = (h: string) => `hashtextextended((${h})::text, 0)`;

/**
 * The 64-bit hash of one row (alias _cv), the same expression on both sides: the exact columns'
 * own hashes and the text form of the others, combined by hash_record_extended (14+) and mixed;
 * the row's whole text form on older servers or when the two sides' columns differ.
 */
export function rowHashExpr(s: TableInfo, t: TableInfo, major: number): string {
  if (major < 14 || !s.cols || s.columns !== t.columns || s.cols.length === 0)
    return "hashtextextended(_cv::text, 0)";
  const exact = s.cols.filter((c) => c.exact);
  const other = s.cols.filter((c) => !c.exact).map((c) => `_cv.${c.col}`);
  if (exact.length === 0) return "hashtextextended(_cv::text, 0)";
  const terms = exact.flatMap((c) =>
    c.fold === "int8"
      ? [`_cv.${c.col}`, `_cv.${c.col} >> 32`]
      : c.fold === "ts"
        ? [`_cv.${c.col}`, `date_part('epoch', _cv.${c.col})`]
        : [`_cv.${c.col}`],
  );
  const parts = [...terms, ...(other.length ? [`ROW(${other.join(", ")})::text`] : [])];
  return mix(`hash_record_extended(ROW(${parts.join(", ")}), 0)`);
}

interface Catalog {
  tables: Map<string, TableInfo>;
  /** kind → name → attribute → value (src/jobs/steps/db/verify-definitions.ts) */
  objects: Definitions;
  sequences: Map<string, string>;
  extensions: Map<string, string>;
  major: number;
  version: string;
}

const USER_NS = SYSTEM_SCHEMA_SQL("n.nspname");
const notMember = (catalog: string, col: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${col} AND d.deptype = 'e')`;

async function readCatalog(client: pg.Client): Promise<Catalog> {
  const v = await serverVersion(client);
  const tables = new Map<string, TableInfo>();
  const res = await client.query<{
    name: string;
    kind: string;
    bytes: string;
    pages: string;
    est: string;
    columns: string | null;
    pk: TableInfo["pk"];
    cols: TableInfo["cols"];
    populated: boolean;
  }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind AS kind, pg_relation_size(c.oid) AS bytes,
      pg_relation_size(c.oid) / current_setting('block_size')::int AS pages, c.reltuples AS est, c.relispopulated AS populated,
      (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
      (SELECT json_agg(json_build_object('col', quote_ident(a.attname), 'type', format_type(a.atttypid, a.atttypmod),
           'int', a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) ORDER BY k.ord)
         FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
      (SELECT json_agg(json_build_object('col', quote_ident(a.attname), 'exact', ${EXACT_HASH_SQL}, 'fold', ${FOLD_SQL}) ORDER BY a.attnum)
         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r','p','m') AND ${USER_NS} AND ${notMember("pg_class", "c.oid")}`);
  for (const r of res.rows) {
    tables.set(r.name, {
      name: r.name,
      kind: r.kind,
      bytes: Number(r.bytes),
      pages: Number(r.pages),
      estRows: Number(r.est),
      columns: r.columns ?? "",
      pk: r.pk,
      cols: r.cols,
      populated: r.populated,
    });
  }
  const objects = await readDefinitions(client, v.major);
  const ext = await client.query<{ name: string; version: string }>(
    "SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY 1",
  );
  const extensions = new Map(ext.rows.map((r) => [r.name, r.version]));

  // Sequences: definition and current value, read in batches.
  const seqs = await client.query<{ name: string; def: string }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS name,
      format('%s start %s increment %s min %s max %s cache %s%s', format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
        s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END) AS def
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_NS} AND ${notMember("pg_class", "c.oid")}`);
  const sequences = new Map<string, string>();
  for (let i = 0; i < seqs.rows.length; i += 200) {
    const batch = seqs.rows.slice(i, i + 200);
    const sql = batch
      .map((s, j) => `SELECT ${j} AS i, last_value::text AS last, is_called FROM ${s.name}`)
      .join(" UNION ALL ");
    const vals = await client.query<{ i: number; last: string; is_called: boolean }>(sql);
    for (const val of vals.rows) {
      const s = batch[val.i]!;
      sequences.set(
        s.name,
        `${val.is_called ? `last value ${val.last}` : `unused, starts at ${val.last}`} (${s.def})`,
      );
    }
  }
  return { tables, objects, sequences, extensions, major: v.major, version: v.version };
}

function totalsOf(c: Catalog, rows: number, largeObjects: number): ObjectTotals {
  const count = (kind: string) => c.objects.get(kind)?.size ?? 0;
  return {
    schemas: count("schema"),
    tables: [...c.tables.values()].filter((t) => t.kind !== "m").length,
    rows,
    indexes: count("index"),
    constraints: count("constraint"),
    views: count("view"),
    materializedViews: count("materialized view"),
    functions: count("function"),
    triggers: count("trigger"),
    enums: count("enum"),
    extensions: c.extensions.size,
    sequences: c.sequences.size,
    largeObjects,
  };
}

// ───────────────────────────── the data ─────────────────────────────

/** How a table's rows are put into buckets: the same expression on both sides. */
interface BucketPlan {
  expr: string;
  count: number;
  /** words for bucket i, for the report */
  describe(i: number): string;
  /** the rows of bucket i, as a WHERE condition over `_cv` (an index range where the key is an integer) */
  region(i: number): Region;
}

/**
 * A part of a table being narrowed down: rows matching `pred`. An integer key's region is a key
 * range (lo–hi, open where null); any other region splits by a hash of the key, or of the row.
 */
interface Region {
  pred: string;
  depth: number;
  lo?: bigint | null;
  hi?: bigint | null;
}

async function bucketPlan(
  source: pg.Client,
  t: TableInfo,
  bucketRows: number,
  hash: string,
): Promise<BucketPlan> {
  const est = t.estRows > 0 ? t.estRows : t.bytes / 100;
  const k = Math.max(1, Math.min(4096, Math.ceil(est / bucketRows)));
  if (!t.pk || t.pk.length === 0) {
    // no key: the rows are bucketed by their own hash, so a bucket holds equal rows together
    const expr = `(((${hash}) & 2147483647) % ${k})::int`;
    return {
      expr,
      count: k,
      describe: (i) => `row-hash bucket ${i + 1} of ${k} (the table has no primary key)`,
      region: (i) => ({ pred: `${expr} = ${i}`, depth: 0 }),
    };
  }
  const first = t.pk[0]!;
  if (first.int) {
    const mm = await source.query<{ lo: string | null; hi: string | null }>(
      `SELECT min(${first.col})::text AS lo, max(${first.col})::text AS hi FROM ONLY ${t.name}`,
    );
    const lo = BigInt(mm.rows[0]?.lo ?? "0");
    const hi = BigInt(mm.rows[0]?.hi ?? "0");
    const width = (hi - lo + 1n + BigInt(k) - 1n) / BigInt(k) || 1n;
    const count = Number((hi - lo) / width) + 1;
    // rows outside the source's range (only on the target) land in the end buckets; bigint arithmetic
    // where it cannot overflow, numeric otherwise
    const safe = lo >= 0n && hi < 2n ** 62n;
    const expr = safe
      ? `least((greatest(${first.col}::int8, ${lo}) - ${lo}) / ${width}, ${count - 1})::int`
      : `least(greatest(div(${first.col}::numeric - ${lo}, ${width}), 0), ${count - 1})::int`;
    const bounds = (i: number) => ({
      lo: i === 0 ? null : lo + BigInt(i) * width,
      hi: i === count - 1 ? null : lo + BigInt(i + 1) * width - 1n,
    });
    return {
      expr,
      count,
      describe: (i) => {
        const b = bounds(i);
        return `${first.col} ${b.lo ?? "…"}–${b.hi ?? "…"}`;
      },
      region: (i) => ({ ...bounds(i), pred: rangePred(first.col, bounds(i).lo, bounds(i).hi), depth: 0 }),
    };
  }
  const key = t.pk.map((p) => p.col).join(", ");
  const expr = `((hashtextextended(ROW(${key})::text, 0) & 2147483647) % ${k})::int`;
  return {
    expr,
    count: k,
    describe: (i) => `primary-key hash bucket ${i + 1} of ${k} (${key})`,
    region: (i) => ({ pred: `${expr} = ${i}`, depth: 0 }),
  };
}

function rangePred(col: string, lo: bigint | null | undefined, hi: bigint | null | undefined): string {
  const parts = [
    ...(lo === null || lo === undefined ? [] : [`${col} >= ${lo}`]),
    ...(hi === null || hi === undefined ? [] : [`${col} <= ${hi}`]),
  ];
  return parts.length ? parts.join(" AND ") : "true";
}

/** What narrowing a table's differing buckets found: keys (or, without a key, rows) that differ. */
interface Located {
  /** "\"id\" = '17' changed", … */
  items: string[];
  /** conditions a person can paste after WHERE to see those rows on either side */
  conditions: string[];
  /** rows (text form) only on one side, for a table without a primary key */
  rows: string[];
  truncated: boolean;
}

/** a region with at most this many rows on each side is listed row by row */
const LIST_ROWS = 20_000;
/** keys or rows named per table */
const MAX_ITEMS = 10;
const SPLIT = 16;

/**
 * Narrows a differing bucket down to the rows that differ: lists the region's keys and row hashes
 * on both sides when it is small enough, else splits it 16 ways (key range or hash) and recurses
 * into the parts that differ. Only the differing table is read again, and for an integer key only
 * the key range (an index range scan).
 */
async function locateRows(
  sc: pg.Client,
  tc: pg.Client,
  t: TableInfo,
  hash: string,
  start: Region[],
  signal?: AbortSignal,
): Promise<Located> {
  const found: Located = { items: [], conditions: [], rows: [], truncated: false };
  const pk = t.pk?.length ? t.pk : null;
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const keyText = pk
    ? `concat_ws(' AND ', ${pk.map((p) => `format('%s = %L', ${lit(p.col)}, _cv.${p.col})`).join(", ")})`
    : "";
  const both = <R extends pg.QueryResultRow>(sql: string) =>
    Promise.all([sc.query<R>(sql), tc.query<R>(sql)]).then(([a, b]) => [a.rows, b.rows] as const);
  const queue = [...start];
  let regions = 0;
  while (queue.length && found.items.length < MAX_ITEMS && regions++ < 64) {
    signal?.throwIfAborted();
    const r = queue.shift()!;
    const from = `FROM ONLY ${t.name} AS _cv WHERE ${r.pred}`;
    const listSql = pk
      ? `SELECT ${keyText} AS k, (${hash})::text AS h ${from} LIMIT ${LIST_ROWS + 1}`
      : `SELECT _cv::text AS k, count(*)::text AS h ${from} GROUP BY 1 LIMIT ${LIST_ROWS + 1}`;
    const [a, b] = await both<{ k: string; h: string }>(listSql);
    if ((a.length <= LIST_ROWS && b.length <= LIST_ROWS) || r.depth >= 8) {
      const ma = new Map(a.map((x) => [x.k, x.h]));
      const mb = new Map(b.map((x) => [x.k, x.h]));
      const keys = [...new Set([...ma.keys(), ...mb.keys()])].sort();
      for (const k of keys) {
        const x = ma.get(k);
        const y = mb.get(k);
        if (x === y) continue;
        if (found.items.length >= MAX_ITEMS) {
          found.truncated = true;
          break;
        }
        if (pk) {
          found.items.push(
            `${k} ${x === undefined ? "only on the target" : y === undefined ? "missing on the target" : "changed"}`,
          );
          found.conditions.push(k);
        } else {
          const row = k.length > 200 ? `${k.slice(0, 199)}…` : k;
          found.items.push(`${row}: ${x ?? 0} on the source, ${y ?? 0} on the target`);
          found.rows.push(`${row} — source ×${x ?? 0}, target ×${y ?? 0}`);
        }
      }
      continue;
    }
    // too many rows to list: split and keep the parts that differ
    let sub: string;
    let child: (j: number) => Region;
    if (pk?.[0]?.int) {
      const col = pk[0].col;
      const [ma, mb] = await both<{ lo: string | null; hi: string | null }>(
        `SELECT min(${col})::text AS lo, max(${col})::text AS hi ${from}`,
      );
      const vals = [ma[0]?.lo, ma[0]?.hi, mb[0]?.lo, mb[0]?.hi]
        .filter((v): v is string => v != null)
        .map(BigInt);
      if (!vals.length) continue;
      vals.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
      const lo = vals[0]!;
      const hi = vals[vals.length - 1]!;
      const width = (hi - lo + BigInt(SPLIT)) / BigInt(SPLIT) || 1n;
      sub = `div(${col}::numeric - ${lo}, ${width})::int`;
      child = (j) => {
        const clo = lo + BigInt(j) * width;
        const chi = clo + width - 1n;
        return { lo: clo, hi: chi, pred: rangePred(col, clo, chi), depth: r.depth + 1 };
      };
    } else {
      const of = pk ? `ROW(${pk.map((p) => `_cv.${p.col}`).join(", ")})::text` : "_cv::text";
      sub = `(hashtextextended(${of}, ${r.depth + 1}) & ${SPLIT - 1})::int`;
      child = (j) => ({ pred: `${r.pred} AND ${sub} = ${j}`, depth: r.depth + 1 });
    }
    const [pa, pb] = await both<{ j: number; n: string; h: string | null }>(
      `SELECT ${sub} AS j, count(*)::text AS n, sum(${hash})::text AS h ${from} GROUP BY 1`,
    );
    const key = (x: { n: string; h: string | null }) => `${x.n}/${x.h ?? "0"}`;
    const ka = new Map(pa.map((x) => [x.j, key(x)]));
    const kb = new Map(pb.map((x) => [x.j, key(x)]));
    const parts = [...new Set([...ka.keys(), ...kb.keys()])]
      .filter((j) => ka.get(j) !== kb.get(j))
      .sort((x, y) => x - y);
    for (const j of parts.slice(0, 3)) queue.push(child(j));
    if (parts.length > 3) found.truncated = true;
  }
  if (queue.length) found.truncated = true;
  return found;
}

interface Bucket {
  n: bigint;
  h: bigint;
}

/** Block-range slices of a table on one side (one slice where TID range scans are missing, before 14). */
function slices(pages: number, major: number, sliceBlocks: number): string[] {
  if (major < 14 || pages <= sliceBlocks) return [""];
  const out: string[] = [];
  for (let from = 0; from < pages; from += sliceBlocks) {
    const to = from + sliceBlocks;
    out.push(
      to >= pages
        ? `WHERE ctid >= '(${from},0)'::tid`
        : `WHERE ctid >= '(${from},0)'::tid AND ctid < '(${to},0)'::tid`,
    );
  }
  return out;
}

export interface VerifyRunOptions {
  jobs?: number;
  connectTimeoutSeconds?: number;
  bucketRows?: number;
  sliceMb?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /**
   * compares the tables' data elsewhere (as pg-boss jobs, src/jobs/steps/db/verify-tables.ts)
   * instead of on this process's connections; given the tables to compare with their sizes
   */
  inParts?: (tables: Array<{ name: string; bytes: number }>) => Promise<TableDataResult[]>;
  /**
   * compare the rows of only these tables (`schema.table` as format('%I.%I') spells them);
   * definitions, sequences and large objects are compared whatever this says. The live switch's
   * fast verify: the tables replication changed.
   */
  tables?: ReadonlySet<string>;
}

export type { TableDataResult };

/** Both databases open, their catalogs read, and the connections each side's readers use. */
interface Sides {
  source: Endpoint;
  target: Endpoint;
  sc: pg.Client;
  tc: pg.Client;
  s: Catalog;
  t: Catalog;
  pools: Record<"source" | "target", pg.Client[]>;
  open: (ep: Endpoint) => Promise<pg.Client>;
  jobs: number;
}

type TablePair = { s: TableInfo; t: TableInfo };

async function openSides(deps: StepDeps, opts: VerifyRunOptions): Promise<Sides> {
  const source = sourceEndpoint(deps);
  const target = await targetEndpoint(deps);
  const timeoutSeconds = opts.connectTimeoutSeconds ?? 10;
  const open = (ep: Endpoint) =>
    connect(ep, { timeoutSeconds, readOnly: true, canonical: true, appName: "cutover-verify" });
  const [sc, tc] = await Promise.all([open(source), open(target)]);
  const pools: Sides["pools"] = { source: [sc], target: [tc] };
  try {
    const [s, t] = await Promise.all([readCatalog(sc), readCatalog(tc)]);
    return {
      source,
      target,
      sc,
      tc,
      s,
      t,
      pools,
      open,
      jobs: Math.max(1, opts.jobs ?? availableParallelism()),
    };
  } catch (err) {
    await Promise.all([sc.end(), tc.end()].map((p) => p.catch(() => undefined)));
    throw err;
  }
}

async function closeSides(sides: Sides): Promise<void> {
  for (const client of [...sides.pools.source, ...sides.pools.target])
    await client.end().catch(() => undefined);
}

/**
 * The tables (and materialized views) whose data both sides hold (presence and columns are
 * definitions). An unpopulated materialized view has no rows to read: its state is a definition
 * attribute.
 */
function tablePairs(s: Catalog, t: Catalog, notes: string[]): TablePair[] {
  const both: TablePair[] = [];
  for (const [name, st] of s.tables) {
    const tt = t.tables.get(name);
    if (!tt || st.kind === "p") continue;
    if (st.kind === "m" && (!st.populated || !tt.populated)) {
      if (!st.populated && !tt.populated)
        notes.push(
          `materialized view ${name} is not populated on either side, so it holds no rows to compare`,
        );
      continue;
    }
    both.push({ s: st, t: tt });
  }
  return both;
}

/**
 * Compares the data of the tables given, on connections of `sides`: a count and hash sum per
 * table, then, for a table that differs, per primary-key bucket and down to the rows.
 */
async function compareTableData(
  sides: Sides,
  both: TablePair[],
  opts: VerifyRunOptions,
): Promise<TableDataResult> {
  const { source, target, sc, tc, s, t, pools, open, jobs } = sides;
  const differences: Difference[] = [];
  interface Task {
    table: string;
    where: string;
    bytes: number;
  }
  type Side = "source" | "target";
  type Results = Record<Side, Map<string, Map<number, Bucket>>>;
  const sliceBlocks = Math.max(1, Math.floor(((opts.sliceMb ?? 256) * 1024 * 1024) / 8192));
  const tasksFor = (pairs: typeof both) => {
    const tasks: Record<Side, Task[]> = { source: [], target: [] };
    for (const pair of pairs) {
      for (const [side, info, cat] of [
        ["source", pair.s, s],
        ["target", pair.t, t],
      ] as const) {
        const parts = slices(info.pages, cat.major, sliceBlocks);
        for (const where of parts)
          tasks[side].push({ table: info.name, where, bytes: info.bytes / parts.length });
      }
    }
    for (const side of ["source", "target"] as const) tasks[side].sort((a, b) => b.bytes - a.bytes);
    return tasks;
  };
  let totalBytes = 0;
  let bytesDone = 0;
  let lastReport = 0;
  let phase = "checksumming rows on both sides";
  const report = (force = false) => {
    if (!opts.onProgress || (!force && Date.now() - lastReport < 500)) return;
    lastReport = Date.now();
    opts.onProgress({
      done: Math.round(bytesDone),
      total: Math.round(totalBytes),
      unit: "bytes",
      message: `${phase} (${formatBytes(bytesDone)} of ${formatBytes(totalBytes)})`,
    });
  };

  /**
   * Reads every task's rows, `jobs` connections per side, both sides at once. Without `plans`
   * a slice gives one count and hash sum; with them, one per primary-key bucket.
   */
  const runTasks = async (tasks: Record<Side, Task[]>, plans?: Map<string, BucketPlan>): Promise<Results> => {
    const results: Results = { source: new Map(), target: new Map() };
    const worker = async (side: Side, client: pg.Client) => {
      for (;;) {
        opts.signal?.throwIfAborted();
        const task = tasks[side].shift();
        if (!task) return;
        const plan = plans?.get(task.table);
        const hash = rowHash.get(task.table)!;
        const res = await client.query<{ b: number; n: string; h: string | null }>(
          plan
            ? `SELECT ${plan.expr} AS b, count(*) AS n, sum(${hash}) AS h FROM ONLY ${task.table} AS _cv ${task.where} GROUP BY 1`
            : `SELECT 0 AS b, count(*) AS n, sum(${hash}) AS h FROM ONLY ${task.table} AS _cv ${task.where}`,
        );
        const buckets = results[side].get(task.table) ?? new Map<number, Bucket>();
        results[side].set(task.table, buckets);
        for (const row of res.rows) {
          const cur = buckets.get(row.b) ?? { n: 0n, h: 0n };
          buckets.set(row.b, { n: cur.n + BigInt(row.n), h: cur.h + BigInt(row.h ?? "0") });
        }
        bytesDone += task.bytes;
        report();
      }
    };
    const workers: Promise<void>[] = [];
    for (const [side, ep] of [
      ["source", source],
      ["target", target],
    ] as const) {
      const n = Math.min(jobs, Math.max(1, tasks[side].length));
      while (pools[side].length < n) pools[side].push(await open(ep));
      for (let i = 0; i < n; i++) workers.push(worker(side, pools[side][i]!));
    }
    const settled = await Promise.allSettled(workers);
    const failure = settled.find((r) => r.status === "rejected");
    if (failure) throw (failure as PromiseRejectedResult).reason;
    return results;
  };
  const rowHash = new Map(both.map((p) => [p.s.name, rowHashExpr(p.s, p.t, Math.min(s.major, t.major))]));
  const rowsOf = (m: Map<number, Bucket> | undefined) =>
    [...(m?.values() ?? [])].reduce((x, y) => x + y.n, 0n);
  const hashOf = (m: Map<number, Bucket> | undefined) =>
    [...(m?.values() ?? [])].reduce((x, y) => x + y.h, 0n);

  // Pass 1: one count and one hash sum per table, read in block-range slices (sequential I/O,
  // parallel, constant memory). Identical tables are done after this pass.
  totalBytes = both.reduce((sum, p) => sum + p.s.bytes + p.t.bytes, 0);
  report(true);
  const whole = await runTasks(tasksFor(both));
  let sourceRows = 0n;
  let targetRows = 0n;
  const differ: typeof both = [];
  for (const pair of both) {
    const a = whole.source.get(pair.s.name);
    const b = whole.target.get(pair.s.name);
    const rowsA = rowsOf(a);
    const rowsB = rowsOf(b);
    sourceRows += rowsA;
    targetRows += rowsB;
    if (rowsA !== rowsB)
      differences.push({ what: "rows", object: pair.s.name, source: String(rowsA), target: String(rowsB) });
    if (rowsA !== rowsB || hashOf(a) !== hashOf(b)) differ.push(pair);
  }

  // Pass 2, only for tables that differ: the same sums per primary-key bucket, to say where.
  if (differ.length) {
    const bucketRows = opts.bucketRows ?? 10_000;
    const plans = new Map<string, BucketPlan>();
    for (const pair of differ)
      plans.set(pair.s.name, await bucketPlan(sc, pair.s, bucketRows, rowHash.get(pair.s.name)!));
    phase = "locating the differences by primary key";
    totalBytes += differ.reduce((sum, p) => sum + p.s.bytes + p.t.bytes, 0);
    const located = await runTasks(tasksFor(differ), plans);
    for (const pair of differ) {
      const plan = plans.get(pair.s.name)!;
      const a = located.source.get(pair.s.name) ?? new Map<number, Bucket>();
      const b = located.target.get(pair.s.name) ?? new Map<number, Bucket>();
      const differing: number[] = [];
      for (const i of new Set([...a.keys(), ...b.keys()])) {
        const x = a.get(i) ?? { n: 0n, h: 0n };
        const y = b.get(i) ?? { n: 0n, h: 0n };
        if (x.n !== y.n || x.h !== y.h) differing.push(i);
      }
      differing.sort((p, q) => p - q);
      if (differing.length === 0) {
        differences.push({
          what: "content",
          object: pair.s.name,
          source: "differed in the first pass",
          target: "equal in the second: the data changed while being compared; run verify again",
        });
        continue;
      }
      // narrow the first few differing buckets down to the rows themselves
      phase = `finding the rows that differ in ${pair.s.name}`;
      report(true);
      const found = await locateRows(
        sc,
        tc,
        pair.s,
        rowHash.get(pair.s.name)!,
        differing.slice(0, 3).map((i) => plan.region(i)),
        opts.signal,
      );
      const unit = pair.s.pk?.length ? "key range" : "row-hash bucket";
      const ranges = `${pair.s.pk?.length ? "" : "no primary key: "}${differing.length} of ${plan.count} ${unit}${plan.count === 1 ? "" : "s"} ${differing.length === 1 ? "differs" : "differ"}`;
      const more = found.truncated || differing.length > 3 ? " …" : "";
      differences.push({
        what: "content",
        object: pair.s.name,
        source: found.items.length ? `${ranges}; rows that differ:` : ranges,
        target: found.items.length
          ? `${found.items.join("; ")}${more}`
          : `${differing
              .slice(0, 3)
              .map((i) => plan.describe(i))
              .join("; ")}${more}`,
        ...(found.conditions.length
          ? {
              query: `SELECT * FROM ONLY ${pair.s.name} WHERE ${found.conditions.map((c) => `(${c})`).join(" OR ")}`,
            }
          : {}),
        ...(found.rows.length ? { rows: found.rows } : {}),
      });
    }
  }
  report(true);
  return {
    tables: both.length,
    sourceRows: String(sourceRows),
    targetRows: String(targetRows),
    bytesRead: Math.round(totalBytes),
    differences,
  };
}

/**
 * Compares the data of the named tables only, with connections of its own: one part of a
 * comparison split across workers (src/jobs/steps/db/verify-tables.ts).
 */
export async function verifyTableData(
  deps: StepDeps,
  tables: string[],
  opts: VerifyRunOptions = {},
): Promise<TableDataResult> {
  const sides = await openSides(deps, opts);
  try {
    const wanted = new Set(tables);
    const both = tablePairs(sides.s, sides.t, []).filter((p) => wanted.has(p.s.name));
    return await compareTableData(sides, both, opts);
  } finally {
    await closeSides(sides);
  }
}

/**
 * Compares the source and target databases of the migration file. Read-only on both sides.
 *
 * @example const report = await runDatabaseVerify(deps); // then dbVerifyView(report)
 */
export async function runDatabaseVerify(
  deps: StepDeps,
  opts: VerifyRunOptions = {},
): Promise<DatabaseVerifyReport> {
  const started = Date.now();
  const sides = await openSides(deps, opts);
  const { source, target, sc, tc, s, t } = sides;
  try {
    const differences: Difference[] = [];
    const notes: string[] = [];

    // Every object's full definition, attribute by attribute (tables and columns included).
    differences.push(...compareDefinitions(s.objects, t.objects));
    const compareMaps = (what: string, a: Map<string, string>, b: Map<string, string>) => {
      for (const [name, def] of a) {
        if (!b.has(name)) differences.push({ what, object: name, source: "present", target: "missing" });
        else if (b.get(name) !== def)
          differences.push({ what, object: name, source: def, target: b.get(name)! });
      }
      for (const name of b.keys())
        if (!a.has(name)) differences.push({ what, object: name, source: "missing", target: "present" });
    };
    compareMaps("sequence", s.sequences, t.sequences);
    for (const [name, version] of s.extensions) {
      const other = t.extensions.get(name);
      if (other === undefined)
        differences.push({ what: "extension", object: name, source: version, target: "missing" });
      else if (other !== version)
        notes.push(`extension ${name} is version ${version} on the source and ${other} on the target`);
    }
    for (const name of t.extensions.keys())
      if (!s.extensions.has(name))
        differences.push({ what: "extension", object: name, source: "missing", target: "present" });

    // Large objects, OID by OID.
    const lo = await compareLargeObjects(sc, tc);
    differences.push(...lo.differences);

    // The data of the tables on both sides, here or in parts taken by any worker.
    const both = tablePairs(s, t, notes).filter((p) => !opts.tables || opts.tables.has(p.s.name));
    const parts =
      opts.inParts && both.length > 1
        ? await opts.inParts(both.map((p) => ({ name: p.s.name, bytes: p.s.bytes + p.t.bytes })))
        : [await compareTableData(sides, both, opts)];
    let sourceRows = 0n;
    let targetRows = 0n;
    let totalBytes = 0;
    for (const part of parts) {
      sourceRows += BigInt(part.sourceRows);
      targetRows += BigInt(part.targetRows);
      totalBytes += part.bytesRead;
      differences.push(...part.differences);
    }
    // data differences by kind, then by table: the same order whichever worker compared which
    // table and in what order (in table jobs the groups' results come in group order)
    const byKind = (d: Difference) => {
      const k = ["table", "rows", "content", "column"].indexOf(d.what);
      return k === -1 ? 99 : k;
    };
    differences.sort(
      (x, y) =>
        byKind(x) - byKind(y) ||
        (byKind(x) === 99 ? 0 : x.object < y.object ? -1 : x.object > y.object ? 1 : 0),
    );
    return {
      identical: differences.length === 0,
      checkedAt: new Date().toISOString(),
      ms: Date.now() - started,
      source: { where: describeUrl(source.url), version: s.version },
      target: { where: describeUrl(target.url), version: t.version },
      totals: {
        source: totalsOf(s, Number(sourceRows), lo.count),
        target: totalsOf(t, Number(targetRows), lo.targetCount),
      },
      bytesRead: Math.round(totalBytes),
      tablesCompared: both.length,
      differences,
      notes,
    };
  } finally {
    await closeSides(sides);
  }
}

/** The differences as a fixed-width text table (for a thread note or a terminal). */
export function formatDifferences(report: DatabaseVerifyReport, max = 15): string {
  const rows = report.differences.slice(0, max).map((d) => [d.what, d.object, d.source, d.target]);
  const header = ["what", "object", "source", "target"];
  const cut = (s: string) => (s.length > 48 ? `${s.slice(0, 47)}…` : s);
  const all = [header, ...rows].map((r) => r.map(cut));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const lines = all.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  if (report.differences.length > max) lines.push(`… and ${report.differences.length - max} more`);
  const look = lookups(report, max);
  if (look.length)
    lines.push("", "To see the rows that differ, on either side:", ...look.map((l) => `  ${l}`));
  return lines.join("\n");
}

export function summarise(report: DatabaseVerifyReport): string {
  const t = report.totals.source;
  return report.identical
    ? `identical: ${t.tables} tables, ${t.rows} rows checksummed, ${t.indexes} indexes, ${t.constraints} constraints, ${t.views} views, ${t.materializedViews} materialized views, ${t.functions} functions, ${t.triggers} triggers, ${t.enums} enums, ${t.extensions} extensions, ${t.sequences} sequences, ${t.largeObjects ?? 0} large objects (${(report.ms / 1000).toFixed(1)} s)`
    : `${report.differences.length} difference${report.differences.length === 1 ? "" : "s"} between source and target:\n${formatDifferences(report)}`;
}

/** Where the latest report is kept (JSON), for `/migrate verify database` and the rehearsal. */
export function verifyReportPath(dataDir: string, env: string): string {
  return path.join(dataDir, "reports", `db-verify-${env.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`);
}

export async function saveVerifyReport(
  dataDir: string,
  env: string,
  report: DatabaseVerifyReport,
): Promise<void> {
  const file = verifyReportPath(dataDir, env);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify(report, null, 2)}\n`);
  await rename(tmp, file);
}

export async function readVerifyReport(
  dataDir: string,
  env: string,
): Promise<DatabaseVerifyReport | undefined> {
  try {
    return JSON.parse(await readFile(verifyReportPath(dataDir, env), "utf8")) as DatabaseVerifyReport;
  } catch {
    return undefined;
  }
}

export function createDbVerifyStep(deps: StepDeps): StepDefinition<VerifyInput> {
  const readOptions = (input: VerifyInput) => ({
    jobs: jobsFor(deps, input),
    connectTimeoutSeconds: input.connectTimeoutSeconds,
    bucketRows: input.bucketRows,
    sliceMb: input.sliceMb,
  });
  return dbVerify.implement({
    async plan(input) {
      const source = sourceEndpoint(deps);
      const target = await targetEndpoint(deps);
      return {
        summary: `would compare ${describeUrl(source.url)} with ${describeUrl(target.url)}: every table's rows by content, every object's full definition, sequences and large objects (reads only)`,
        changes: [
          {
            action: "check",
            target: describeUrl(target.url),
            detail: `${jobsFor(deps, input)} jobs per side`,
          },
        ],
      };
    },
    async run(input, ctx): Promise<StepOutcome> {
      const report = await runDatabaseVerify(deps, {
        ...readOptions(input),
        signal: ctx.signal,
        onProgress: (p) => ctx.progress(p),
        ...(input.tableJobs > 1 && ctx.shards ? { inParts: tablesInJobs(ctx.shards, input.tableJobs) } : {}),
      });
      await saveVerifyReport(deps.dataDir, deps.file.environment, report);
      await ctx.checkpoint.set("report", { identical: report.identical, summary: summarise(report) });
      ctx.report?.(dbVerifyView(report));
      const t = report.totals.source;
      return {
        summary: summarise(report),
        figures: {
          identical: report.identical,
          differences: report.differences.length,
          tables: t.tables,
          rows: t.rows,
          indexes: t.indexes,
          constraints: t.constraints,
          sequences: t.sequences,
          ms: report.ms,
        },
      };
    },
    // one group of tables, in whichever worker took it, with connections of its own
    shard: (input, part, ctx) =>
      verifyTableData(deps, tablesOfPart(part), {
        ...readOptions(input),
        signal: ctx.signal,
        onProgress: (p) => ctx.progress(p),
      }),
    async verify(_input, ctx) {
      const saved = await ctx.checkpoint.get("report");
      if (!saved) return { ok: false, summary: "no comparison has run" };
      return {
        ok: saved.identical,
        summary: saved.identical ? "source and target are identical" : saved.summary,
        // a difference is what the comparison found: comparing again finds it again
        final: !saved.identical,
      };
    },
  });
}
