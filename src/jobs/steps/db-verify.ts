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
} from "../../cloud/postgres.js";
import { dbVerifyView } from "../../views/db-verify.js";
import type { StepDeps } from "../index.js";
import type { Progress, StepDefinition, StepOutcome } from "../types.js";
import {
  CommonOptions,
  formatBytes,
  jobsFor,
  parseWith,
  sourceEndpoint,
  targetEndpoint,
} from "./db-common.js";

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
});
export type VerifyInput = z.infer<typeof Input>;

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
}

/** One line of the differences table. */
export interface Difference {
  /** "rows", "content", "missing table", "index", "sequence", … */
  what: string;
  object: string;
  source: string;
  target: string;
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

// ───────────────────────────── the catalog ─────────────────────────────

interface TableInfo {
  name: string;
  kind: string;
  bytes: number;
  pages: number;
  estRows: number;
  columns: string;
  pk: Array<{ col: string; type: string; int: boolean }> | null;
  /** columns in order; `exact` when hashing the value itself is as strict as hashing its text */
  cols: Array<{ col: string; exact: boolean }> | null;
}

/**
 * Column types whose hash function tells exactly the values their text tells apart: integers,
 * booleans, dates and times, uuid, bytea, numeric with a fixed scale, and text with a
 * deterministic collation. Anything else (unconstrained numeric's scale, jsonb, floats' -0,
 * citext's case, enums hashed by OID, arrays' bounds, domains…) is hashed through its text form.
 */
const EXACT_HASH_SQL = `(a.atttypid IN ('bool'::regtype, 'bytea'::regtype, 'int8'::regtype, 'int2'::regtype, 'int4'::regtype,
    'oid'::regtype, 'date'::regtype, 'time'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype, 'uuid'::regtype)
  OR (a.atttypid = 'numeric'::regtype AND a.atttypmod <> -1)
  OR (a.atttypid IN ('text'::regtype, 'varchar'::regtype)
      AND coalesce((SELECT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation), true)))`;

/**
 * The 64-bit hash of one row (alias _cv), the same expression on both sides: the exact
 * columns' own hashes, and the text form of the others, combined by hash_record_extended (14+);
 * the row's whole text form on older servers or when the two sides' columns differ.
 */
function rowHashExpr(s: TableInfo, t: TableInfo, major: number): string {
  if (major < 14 || !s.cols || s.columns !== t.columns || s.cols.length === 0)
    return "hashtextextended(_cv::text, 0)";
  const exact = s.cols.filter((c) => c.exact).map((c) => `_cv.${c.col}`);
  const other = s.cols.filter((c) => !c.exact).map((c) => `_cv.${c.col}`);
  if (exact.length === 0) return "hashtextextended(_cv::text, 0)";
  const parts = [...exact, ...(other.length ? [`ROW(${other.join(", ")})::text`] : [])];
  return `hash_record_extended(ROW(${parts.join(", ")}), 0)`;
}

interface Catalog {
  tables: Map<string, TableInfo>;
  /** kind → name → definition */
  objects: Record<string, Map<string, string>>;
  sequences: Map<string, string>;
  extensions: Map<string, string>;
  major: number;
  version: string;
}

const USER_NS = SYSTEM_SCHEMA_SQL("n.nspname");
const notMember = (catalog: string, col: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${col} AND d.deptype = 'e')`;

const OBJECT_SQL: Record<string, string> = {
  schema: `SELECT quote_ident(n.nspname) AS name, '' AS def FROM pg_namespace n WHERE ${USER_NS} AND ${notMember("pg_namespace", "n.oid")}`,
  index: `SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_get_indexdef(c.oid) AS def FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('i','I') AND ${USER_NS} AND ${notMember("pg_class", "c.oid")}`,
  constraint: `SELECT CASE WHEN k.conrelid <> 0 THEN format('%I.%I', n.nspname, c.relname) ELSE format('domain %I.%I', tn.nspname, t.typname) END
      || ' ' || quote_ident(k.conname) AS name, pg_get_constraintdef(k.oid) AS def
    FROM pg_constraint k LEFT JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_type t ON t.oid = k.contypid LEFT JOIN pg_namespace tn ON tn.oid = t.typnamespace
    WHERE coalesce(n.nspname, tn.nspname) NOT IN ('pg_catalog','information_schema') AND coalesce(n.nspname, tn.nspname) !~ '^pg_'
      AND k.conparentid = 0 AND ${notMember("pg_constraint", "k.oid")}
      AND (c.oid IS NULL OR ${notMember("pg_class", "c.oid")})`,
  view: `SELECT format('%I.%I', n.nspname, c.relname) AS name, '' AS def FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'v' AND ${USER_NS} AND ${notMember("pg_class", "c.oid")}`,
  "materialized view": `SELECT format('%I.%I', n.nspname, c.relname) AS name, '' AS def FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'm' AND ${USER_NS} AND ${notMember("pg_class", "c.oid")}`,
  function: `SELECT p.oid::regprocedure::text AS name, p.prokind::text || ':' || md5(coalesce(p.prosrc, '')) AS def FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_NS} AND ${notMember("pg_proc", "p.oid")}`,
  trigger: `SELECT format('%I.%I', n.nspname, c.relname) || ' ' || quote_ident(t.tgname) AS name, t.tgenabled::text AS def FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND ${USER_NS}`,
  enum: `SELECT format('%I.%I', n.nspname, t.typname) AS name,
      (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) AS def
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'e' AND ${USER_NS} AND ${notMember("pg_type", "t.oid")}`,
};

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
  }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind AS kind, pg_relation_size(c.oid) AS bytes,
      pg_relation_size(c.oid) / current_setting('block_size')::int AS pages, c.reltuples AS est,
      (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
      (SELECT json_agg(json_build_object('col', quote_ident(a.attname), 'type', format_type(a.atttypid, a.atttypmod),
           'int', a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) ORDER BY k.ord)
         FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
      (SELECT json_agg(json_build_object('col', quote_ident(a.attname), 'exact', ${EXACT_HASH_SQL}) ORDER BY a.attnum)
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
    });
  }
  const objects: Catalog["objects"] = {};
  for (const [kind, sql] of Object.entries(OBJECT_SQL)) {
    const rows = await client.query<{ name: string; def: string | null }>(sql);
    objects[kind] = new Map(rows.rows.map((r) => [r.name, r.def ?? ""]));
  }
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

function totalsOf(c: Catalog, rows: number): ObjectTotals {
  return {
    schemas: c.objects.schema!.size,
    tables: [...c.tables.values()].filter((t) => t.kind !== "m").length,
    rows,
    indexes: c.objects.index!.size,
    constraints: c.objects.constraint!.size,
    views: c.objects.view!.size,
    materializedViews: c.objects["materialized view"]!.size,
    functions: c.objects.function!.size,
    triggers: c.objects.trigger!.size,
    enums: c.objects.enum!.size,
    extensions: c.extensions.size,
    sequences: c.sequences.size,
  };
}

// ───────────────────────────── the data ─────────────────────────────

/** How a table's rows are put into buckets: the same expression on both sides. */
interface BucketPlan {
  expr: string;
  count: number;
  /** words for bucket i, for the report */
  describe(i: number): string;
}

async function bucketPlan(source: pg.Client, t: TableInfo, bucketRows: number): Promise<BucketPlan> {
  const est = t.estRows > 0 ? t.estRows : t.bytes / 100;
  const k = Math.max(1, Math.min(4096, Math.ceil(est / bucketRows)));
  if (!t.pk || t.pk.length === 0) {
    return { expr: "0", count: 1, describe: () => "the whole table (it has no primary key)" };
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
    return {
      expr,
      count,
      describe: (i) => {
        const from = i === 0 ? "…" : String(lo + BigInt(i) * width);
        const to = i === count - 1 ? "…" : String(lo + BigInt(i + 1) * width - 1n);
        return `${first.col} ${from}–${to}`;
      },
    };
  }
  const key = t.pk.map((p) => p.col).join(", ");
  return {
    expr: `((hashtextextended(ROW(${key})::text, 0) & 2147483647) % ${k})::int`,
    count: k,
    describe: (i) => `primary-key hash bucket ${i + 1} of ${k} (${key})`,
  };
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
  const source = sourceEndpoint(deps);
  const target = await targetEndpoint(deps);
  const timeoutSeconds = opts.connectTimeoutSeconds ?? 10;
  const jobs = Math.max(1, opts.jobs ?? availableParallelism());
  const open = (ep: Endpoint) =>
    connect(ep, { timeoutSeconds, readOnly: true, canonical: true, appName: "cutover-verify" });

  const [sc, tc] = await Promise.all([open(source), open(target)]);
  const pools: Record<"source" | "target", pg.Client[]> = { source: [sc], target: [tc] };
  try {
    const [s, t] = await Promise.all([readCatalog(sc), readCatalog(tc)]);
    const differences: Difference[] = [];
    const notes: string[] = [];

    // Schema objects by name and definition.
    const compareMaps = (what: string, a: Map<string, string>, b: Map<string, string>, defs: boolean) => {
      for (const [name, def] of a) {
        if (!b.has(name)) differences.push({ what, object: name, source: "present", target: "missing" });
        else if (defs && b.get(name) !== def)
          differences.push({
            what,
            object: name,
            source: def || "(definition)",
            target: b.get(name) || "(definition)",
          });
      }
      for (const name of b.keys())
        if (!a.has(name)) differences.push({ what, object: name, source: "missing", target: "present" });
    };
    for (const kind of Object.keys(OBJECT_SQL)) {
      compareMaps(kind, s.objects[kind]!, t.objects[kind]!, kind !== "view");
    }
    compareMaps("sequence", s.sequences, t.sequences, true);
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

    // Tables: presence and columns; then the data of those on both sides.
    const both: Array<{ s: TableInfo; t: TableInfo }> = [];
    for (const [name, st] of s.tables) {
      const tt = t.tables.get(name);
      const what = st.kind === "m" ? "materialized view" : "table";
      if (!tt) {
        if (st.kind !== "m") differences.push({ what, object: name, source: "present", target: "missing" });
        continue;
      }
      if (st.columns !== tt.columns)
        differences.push({ what: "columns", object: name, source: st.columns, target: tt.columns });
      if (st.kind !== "p") both.push({ s: st, t: tt });
    }
    for (const [name, tt] of t.tables)
      if (!s.tables.has(name) && tt.kind !== "m")
        differences.push({ what: "table", object: name, source: "missing", target: "present" });

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
    const runTasks = async (
      tasks: Record<Side, Task[]>,
      plans?: Map<string, BucketPlan>,
    ): Promise<Results> => {
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
      for (const pair of differ) plans.set(pair.s.name, await bucketPlan(sc, pair.s, bucketRows));
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
        const first = differing
          .slice(0, 3)
          .map((i) => plan.describe(i))
          .join("; ");
        differences.push({
          what: "content",
          object: pair.s.name,
          source: `${plan.count} bucket${plan.count === 1 ? "" : "s"} checksummed`,
          target: differing.length
            ? `${differing.length} differ: ${first}${differing.length > 3 ? " …" : ""}`
            : "changed while being compared",
        });
      }
    }
    report(true);
    const byKind = (d: Difference) => ["table", "rows", "content", "columns"].indexOf(d.what);
    differences.sort((x, y) => (byKind(x) === -1 ? 99 : byKind(x)) - (byKind(y) === -1 ? 99 : byKind(y)));
    return {
      identical: differences.length === 0,
      checkedAt: new Date().toISOString(),
      ms: Date.now() - started,
      source: { where: describeUrl(source.url), version: s.version },
      target: { where: describeUrl(target.url), version: t.version },
      totals: { source: totalsOf(s, Number(sourceRows)), target: totalsOf(t, Number(targetRows)) },
      bytesRead: Math.round(totalBytes),
      tablesCompared: both.length,
      differences,
      notes,
    };
  } finally {
    for (const client of [...pools.source, ...pools.target]) await client.end().catch(() => undefined);
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
  return lines.join("\n");
}

export function summarise(report: DatabaseVerifyReport): string {
  const t = report.totals.source;
  return report.identical
    ? `identical: ${t.tables} tables, ${t.rows} rows checksummed, ${t.indexes} indexes, ${t.constraints} constraints, ${t.views} views, ${t.materializedViews} materialized views, ${t.functions} functions, ${t.triggers} triggers, ${t.enums} enums, ${t.extensions} extensions, ${t.sequences} sequences (${(report.ms / 1000).toFixed(1)} s)`
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
  return {
    type: "db.verify",
    description: "compare row counts, content checksums, sequences and object counts on both sides",
    mutating: false,
    parse: (raw) => parseWith("db.verify", Input, raw),
    async plan(input) {
      const source = sourceEndpoint(deps);
      const target = await targetEndpoint(deps);
      return {
        summary: `would compare ${describeUrl(source.url)} with ${describeUrl(target.url)}: every table's rows and content checksums by primary key, sequences and schema objects (reads only)`,
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
        jobs: jobsFor(deps, input),
        connectTimeoutSeconds: input.connectTimeoutSeconds,
        bucketRows: input.bucketRows,
        sliceMb: input.sliceMb,
        signal: ctx.signal,
        onProgress: (p) => ctx.progress(p),
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
    async verify(_input, ctx) {
      const saved = await ctx.checkpoint.get<{ identical: boolean; summary: string }>("report");
      if (!saved) return { ok: false, summary: "no comparison has run" };
      return {
        ok: saved.identical,
        summary: saved.identical ? "source and target are identical" : saved.summary,
      };
    },
  };
}
