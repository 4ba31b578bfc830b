import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { applyMigrations } from "../../src/store/migrate.js";
import { createEmptyDatabase, createTestDatabase } from "../helpers/db.js";

/*
 * Fails when prisma/schema.prisma and the database its migrations build disagree.
 *
 * The schema side is read from schema.prisma itself, offline, through the Prisma schema wasm
 * module the `prisma` CLI ships (`prisma/build/prisma_schema_build_bg.wasm`, the same
 * `get_dmmf` call `prisma generate` makes), so an edit to schema.prisma without a migration fails
 * here even before the client is regenerated. The database side is read from pg_catalog.
 * Both are reduced to the same list of facts (tables, columns with type, nullability and
 * default, primary keys, unique and plain indexes, foreign keys with their actions, enums,
 * check constraints) and compared in both directions.
 */

const SCHEMA_FILE = fileURLToPath(new URL("../../prisma/schema.prisma", import.meta.url));

// ---- the schema's data model, offline --------------------------------------------------------

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: "scalar" | "object" | "enum" | "unsupported";
  type: string;
  isList: boolean;
  isRequired: boolean;
  nativeType?: [string, string[]] | null;
  default?: unknown;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
  relationOnUpdate?: string;
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  schema?: string | null;
  fields: DmmfField[];
}
interface DmmfIndex {
  model: string;
  type: "id" | "normal" | "unique" | "fulltext";
  dbName?: string | null;
  algorithm?: string;
  fields: Array<{ name: string; sortOrder?: string; length?: number; operatorClass?: string }>;
}
interface DmmfEnum {
  name: string;
  dbName?: string | null;
  values: Array<{ name: string; dbName?: string | null }>;
}
interface Datamodel {
  models: DmmfModel[];
  enums: DmmfEnum[];
  indexes: DmmfIndex[];
}

// The slice of the WebAssembly API used here: the project's `lib` (ES2023, no DOM) does not type it.
interface WasmTable {
  get(index: number): unknown;
  set(index: number, value: unknown): void;
  grow(delta: number): number;
}
interface WasmExports {
  memory: { buffer: ArrayBuffer };
  __wbindgen_externrefs: WasmTable;
  __wbindgen_start(): void;
  __wbindgen_malloc(len: number, align: number): number;
  __wbindgen_free(ptr: number, len: number, align: number): void;
  /** wasm-bindgen's multi-value return: [ptr, len, error ref, is error] */
  get_dmmf(ptr: number, len: number): [number, number, number, number];
}
interface WasmApi {
  Module: {
    new (bytes: Uint8Array): object;
    imports(module: object): Array<{ module: string; name: string }>;
  };
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/** `get_dmmf` from the prisma-schema wasm module inside the installed `prisma` package. */
function readDatamodel(schemaText: string): Datamodel {
  const { WebAssembly: wa } = globalThis as unknown as { WebAssembly: WasmApi };
  const prismaDir = path.dirname(createRequire(import.meta.url).resolve("prisma/package.json"));
  const module = new wa.Module(readFileSync(path.join(prismaDir, "build", "prisma_schema_build_bg.wasm")));
  let wasm: WasmExports | undefined;
  const bytes = () => new Uint8Array(wasm!.memory.buffer);
  const text = (ptr: number, len: number) =>
    new TextDecoder().decode(bytes().subarray(ptr >>> 0, (ptr >>> 0) + len));
  // The four imports wasm-bindgen generated for it, matched by name (their suffixes are hashes).
  const imports: Record<string, Record<string, unknown>> = {};
  for (const imp of wa.Module.imports(module)) {
    let fn: unknown;
    if (imp.name.startsWith("__wbg_Error_")) fn = (ptr: number, len: number) => new Error(text(ptr, len));
    else if (imp.name.startsWith("__wbg_set_message_"))
      fn = (target: Error, message: string) => {
        target.message = message;
      };
    else if (imp.name.startsWith("__wbg___wbindgen_throw_"))
      fn = (ptr: number, len: number) => {
        throw new Error(text(ptr, len));
      };
    else if (imp.name === "__wbindgen_init_externref_table")
      fn = () => {
        const table = wasm!.__wbindgen_externrefs;
        const offset = table.grow(4);
        table.set(0, undefined);
        table.set(offset, undefined);
        table.set(offset + 1, null);
        table.set(offset + 2, true);
        table.set(offset + 3, false);
      };
    else throw new Error(`the prisma-schema wasm wants an import this test does not know: ${imp.name}`);
    imports[imp.module] ??= {};
    imports[imp.module]![imp.name] = fn;
  }
  const exports = new wa.Instance(module, imports).exports as WasmExports;
  wasm = exports;
  exports.__wbindgen_start();

  const params = new TextEncoder().encode(
    JSON.stringify({ prismaSchema: [["schema.prisma", schemaText]], noColor: true }),
  );
  const ptr = exports.__wbindgen_malloc(params.length, 1) >>> 0;
  bytes().set(params, ptr);
  const [outPtr, outLen, errRef, isErr] = exports.get_dmmf(ptr, params.length);
  if (isErr) throw exports.__wbindgen_externrefs.get(errRef);
  const json = text(outPtr, outLen);
  exports.__wbindgen_free(outPtr, outLen, 1);
  return (JSON.parse(json) as { datamodel: Datamodel }).datamodel;
}

// ---- facts: key → description ------------------------------------------------------------------

type Facts = Map<string, string>;

const ACTIONS: Record<string, string> = {
  Cascade: "cascade",
  Restrict: "restrict",
  NoAction: "no action",
  SetNull: "set null",
  SetDefault: "set default",
};

/** Prisma's default constraint names, trimmed to PostgreSQL's 63 bytes as Prisma trims them. */
function constraintName(table: string, columns: string[], suffix: string): string {
  const base = columns.length ? `${table}_${columns.join("_")}` : table;
  return `${base.slice(0, 63 - suffix.length - 1)}_${suffix}`;
}

function columnType(model: DmmfModel, field: DmmfField, enums: DmmfEnum[]): string {
  const [native, args = []] = field.nativeType ?? [undefined, []];
  const unsupported = () => {
    throw new Error(
      `drift test: teach it the PostgreSQL type of ${model.name}.${field.name} (${field.type} ${native})`,
    );
  };
  let type: string;
  if (field.kind === "enum") {
    const e = enums.find((x) => x.name === field.type);
    type = e?.dbName ?? field.type;
  } else {
    switch (field.type) {
      case "String":
        type =
          native === undefined || native === "Text"
            ? "text"
            : native === "Uuid"
              ? "uuid"
              : native === "VarChar"
                ? args.length
                  ? `character varying(${args[0]})`
                  : "character varying"
                : native === "Char"
                  ? `character(${args[0] ?? 1})`
                  : unsupported();
        break;
      case "Boolean":
        type = "boolean";
        break;
      case "Int":
        type =
          native === undefined || native === "Integer"
            ? "integer"
            : native === "SmallInt"
              ? "smallint"
              : unsupported();
        break;
      case "BigInt":
        type = "bigint";
        break;
      case "Float":
        type =
          native === undefined || native === "DoublePrecision"
            ? "double precision"
            : native === "Real"
              ? "real"
              : unsupported();
        break;
      case "Decimal":
        type = native === undefined ? "numeric(65,30)" : `numeric(${args.join(",")})`;
        break;
      case "DateTime": {
        const precision = args[0] ?? "3";
        type =
          native === undefined
            ? "timestamp(3) without time zone"
            : native === "Timestamptz"
              ? `timestamp(${precision}) with time zone`
              : native === "Timestamp"
                ? `timestamp(${precision}) without time zone`
                : native === "Date"
                  ? "date"
                  : unsupported();
        break;
      }
      case "Json":
        type =
          native === undefined || native === "JsonB" ? "jsonb" : native === "Json" ? "json" : unsupported();
        break;
      case "Bytes":
        type = "bytea";
        break;
      default:
        type = unsupported();
    }
  }
  return field.isList ? `${type}[]` : type;
}

/** The default PostgreSQL reports (pg_get_expr) for a Prisma @default, or null for none in the database. */
function columnDefault(table: string, column: string, field: DmmfField, sqlType: string): string | null {
  const d = field.default;
  if (d === undefined || d === null) return null;
  if (typeof d === "object" && !Array.isArray(d) && "name" in d) {
    const fn = (d as { name: string; args: unknown[] }).name;
    if (["uuid", "cuid", "nanoid", "ulid"].includes(fn)) return null; // generated by the client
    if (fn === "now") return "CURRENT_TIMESTAMP";
    if (fn === "autoincrement") return `nextval('${table}_${column}_seq'::regclass)`;
    throw new Error(`drift test: teach it the default @default(${fn}()) of ${table}.${column}`);
  }
  if (typeof d === "boolean" || typeof d === "number") return String(d);
  if (typeof d === "string") {
    const literal = `'${d.replace(/'/g, "''")}'`;
    if (sqlType === "text") return `${literal}::text`;
    if (sqlType === "jsonb") return `${literal}::jsonb`;
    if (field.kind === "enum") return `${literal}::"${sqlType}"`;
    return `${literal}::${sqlType}`;
  }
  throw new Error(`drift test: teach it the default ${JSON.stringify(d)} of ${table}.${column}`);
}

function describeColumn(type: string, nullable: boolean, def: string | null): string {
  return `${type}, ${nullable ? "nullable" : "not null"}, ${def === null ? "no default" : `default ${def}`}`;
}

/** What schema.prisma says the database should hold. */
function schemaFacts(dm: Datamodel): Facts {
  const facts: Facts = new Map();
  const tableOf = new Map(dm.models.map((m) => [m.name, m.dbName ?? m.name]));
  const columnOf = (modelName: string, fieldName: string) => {
    const field = dm.models.find((m) => m.name === modelName)?.fields.find((f) => f.name === fieldName);
    if (!field) throw new Error(`drift test: no field ${modelName}.${fieldName}`);
    return field.dbName ?? field.name;
  };
  for (const e of dm.enums) {
    facts.set(`enum ${e.dbName ?? e.name}`, e.values.map((v) => v.dbName ?? v.name).join(", "));
  }
  for (const model of dm.models) {
    const table = tableOf.get(model.name)!;
    facts.set(`table ${table}`, "table");
    for (const field of model.fields) {
      if (field.kind === "object") {
        if (!field.relationFromFields?.length) continue;
        const columns = field.relationFromFields.map((f) => columnOf(model.name, f));
        const target = tableOf.get(field.type)!;
        const targetColumns = (field.relationToFields ?? []).map((f) => columnOf(field.type, f));
        const required = field.relationFromFields.every(
          (f) => model.fields.find((x) => x.name === f)?.isRequired ?? false,
        );
        const onDelete = ACTIONS[field.relationOnDelete ?? (required ? "Restrict" : "SetNull")];
        const onUpdate = ACTIONS[field.relationOnUpdate ?? "Cascade"];
        facts.set(
          `foreign key ${constraintName(table, columns, "fkey")}`,
          `${table}(${columns.join(", ")}) references ${target}(${targetColumns.join(", ")}) on delete ${onDelete} on update ${onUpdate}`,
        );
        continue;
      }
      if (field.kind === "unsupported")
        throw new Error(`drift test: teach it Unsupported fields (${model.name}.${field.name})`);
      const column = field.dbName ?? field.name;
      const type = columnType(model, field, dm.enums);
      facts.set(
        `column ${table}.${column}`,
        describeColumn(type, !field.isRequired, columnDefault(table, column, field, type)),
      );
    }
  }
  for (const index of dm.indexes) {
    const table = tableOf.get(index.model)!;
    const columns = index.fields.map((f) => {
      if (f.length !== undefined || f.operatorClass !== undefined) {
        throw new Error(`drift test: teach it index options on ${index.model}.${f.name}`);
      }
      return `${columnOf(index.model, f.name)}${f.sortOrder === "desc" ? " desc" : ""}`;
    });
    const plain = index.fields.map((f) => columnOf(index.model, f.name));
    const algorithm = (index.algorithm ?? "BTree").toLowerCase();
    if (index.type === "id") {
      facts.set(
        `primary key ${index.dbName ?? constraintName(table, [], "pkey")}`,
        `${table}(${columns.join(", ")})`,
      );
    } else if (index.type === "unique") {
      facts.set(
        `unique index ${index.dbName ?? constraintName(table, plain, "key")}`,
        `${table}(${columns.join(", ")})`,
      );
    } else if (index.type === "normal") {
      facts.set(
        `index ${index.dbName ?? constraintName(table, plain, "idx")}`,
        `${table}(${columns.join(", ")}) using ${algorithm}`,
      );
    } else {
      throw new Error(`drift test: teach it ${index.type} indexes (${index.model})`);
    }
  }
  return facts;
}

/** What the database holds, in the same terms. */
async function databaseFacts(url: string): Promise<Facts> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const facts: Facts = new Map();
    const scope = `n.nspname = current_schema() AND c.relname <> '_prisma_migrations'`;
    const enums = await client.query<{ name: string; labels: string[] }>(`
      SELECT t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = current_schema() GROUP BY t.typname`);
    for (const e of enums.rows) facts.set(`enum ${e.name}`, e.labels.join(", "));

    const tables = await client.query<{ name: string; kind: string }>(`
      SELECT c.relname AS name, c.relkind AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE ${scope} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`);
    for (const t of tables.rows)
      facts.set(`table ${t.name}`, t.kind === "r" || t.kind === "p" ? "table" : `relkind ${t.kind}`);

    const columns = await client.query<{
      tbl: string;
      col: string;
      type: string;
      notnull: boolean;
      def: string | null;
    }>(`
      SELECT c.relname AS tbl, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type,
             a.attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS def
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE ${scope} AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`);
    for (const c of columns.rows)
      facts.set(`column ${c.tbl}.${c.col}`, describeColumn(c.type, !c.notnull, c.def));

    const indexes = await client.query<{
      tbl: string;
      name: string;
      primary: boolean;
      unique: boolean;
      method: string;
      columns: string[];
      expression: boolean;
      partial: boolean;
    }>(`
      SELECT c.relname AS tbl, i.relname AS name, x.indisprimary AS primary, x.indisunique AS unique,
             am.amname AS method, x.indexprs IS NOT NULL AS expression, x.indpred IS NOT NULL AS partial,
             ARRAY(SELECT a.attname || CASE WHEN (x.indoption[k.ord - 1] & 1) = 1 THEN ' desc' ELSE '' END
                     FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                    ORDER BY k.ord)::text[] AS columns
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_am am ON am.oid = i.relam
       WHERE ${scope}`);
    for (const ix of indexes.rows) {
      const on = `${ix.tbl}(${ix.columns.join(", ")})${ix.expression ? " with expressions" : ""}${ix.partial ? " partial" : ""}`;
      if (ix.primary) facts.set(`primary key ${ix.name}`, on);
      else if (ix.unique)
        facts.set(`unique index ${ix.name}`, ix.method === "btree" ? on : `${on} using ${ix.method}`);
      else facts.set(`index ${ix.name}`, `${on} using ${ix.method}`);
    }

    const constraints = await client.query<{
      name: string;
      tbl: string;
      type: string;
      target: string | null;
      columns: string[];
      target_columns: string[];
      on_delete: string;
      on_update: string;
      definition: string;
    }>(`
      SELECT con.conname AS name, c.relname AS tbl, con.contype AS type, t.relname AS target,
             ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns,
             ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS target_columns,
             con.confdeltype AS on_delete, con.confupdtype AS on_update, pg_get_constraintdef(con.oid) AS definition
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_class t ON t.oid = con.confrelid
       WHERE ${scope} AND con.contype IN ('f', 'c', 'x', 't')`);
    const action: Record<string, string> = {
      a: "no action",
      r: "restrict",
      c: "cascade",
      n: "set null",
      d: "set default",
    };
    for (const con of constraints.rows) {
      if (con.type === "f") {
        facts.set(
          `foreign key ${con.name}`,
          `${con.tbl}(${con.columns.join(", ")}) references ${con.target}(${con.target_columns.join(", ")}) on delete ${action[con.on_delete]} on update ${action[con.on_update]}`,
        );
      } else {
        facts.set(`constraint ${con.name}`, `${con.tbl}: ${con.definition}`);
      }
    }
    return facts;
  } finally {
    await client.end();
  }
}

/** Every disagreement, one sentence each; empty when schema and database agree. */
function compare(schema: Facts, database: Facts): string[] {
  const problems: string[] = [];
  for (const [key, want] of schema) {
    const have = database.get(key);
    if (have === undefined) problems.push(`${key} (${want}) is in schema.prisma but not in the database`);
    else if (have !== want)
      problems.push(`${key} differs: schema.prisma says ${want}; the database has ${have}`);
  }
  for (const [key, have] of database) {
    if (!schema.has(key)) problems.push(`${key} (${have}) is in the database but not in schema.prisma`);
  }
  return problems.sort();
}

function expectedFacts(schemaText = readFileSync(SCHEMA_FILE, "utf8")): Facts {
  return schemaFacts(readDatamodel(schemaText));
}

// ---- the tests ---------------------------------------------------------------------------------

describe("schema.prisma and prisma/migrations", () => {
  it("build the same database", async () => {
    const db = await createEmptyDatabase("drift");
    try {
      await applyMigrations(db.url);
      const expected = expectedFacts();
      // The comparison covers the whole model, not a part of it.
      expect(expected.get("column runs.options")).toBe("jsonb, not null, default '{}'::jsonb");
      expect(expected.get("foreign key approvals_run_id_fkey")).toBe(
        "approvals(run_id) references runs(id) on delete set null on update cascade",
      );
      expect(compare(expected, await databaseFacts(db.url))).toEqual([]);
    } finally {
      await db.drop();
    }
  });

  it("reports a column the database has and the schema does not", async () => {
    const db = await createEmptyDatabase("drift_extra");
    try {
      await applyMigrations(db.url);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query("ALTER TABLE runs ADD COLUMN x int");
      await client.end();
      expect(compare(expectedFacts(), await databaseFacts(db.url))).toEqual([
        "column runs.x (integer, nullable, no default) is in the database but not in schema.prisma",
      ]);
    } finally {
      await db.drop();
    }
  });

  it("reports what the schema has and the database lost or changed", async () => {
    const db = await createTestDatabase("drift_missing");
    try {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query(`DROP INDEX "runs_status_idx"`);
      await client.query(`ALTER TABLE "approvals" DROP CONSTRAINT "approvals_run_id_fkey",
        ADD CONSTRAINT "approvals_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "runs"("id") ON DELETE CASCADE ON UPDATE CASCADE`);
      await client.query(`ALTER TABLE "kpi_samples" ALTER COLUMN "ok" DROP NOT NULL`);
      await client.end();
      expect(compare(expectedFacts(), await databaseFacts(db.url))).toEqual([
        "column kpi_samples.ok differs: schema.prisma says boolean, not null, no default; the database has boolean, nullable, no default",
        "foreign key approvals_run_id_fkey differs: schema.prisma says approvals(run_id) references runs(id) on delete set null on update cascade; the database has approvals(run_id) references runs(id) on delete cascade on update cascade",
        "index runs_status_idx (runs(status) using btree) is in schema.prisma but not in the database",
      ]);
    } finally {
      await db.drop();
    }
  });

  it("reports a schema.prisma edit that has no migration", async () => {
    const edited = readFileSync(SCHEMA_FILE, "utf8").replace(
      /(model KpiSample \{[^}]*?)(\n\s*@@index\(\[target, at\]\))/,
      '$1\n  region String @default("eu")$2\n  @@index([ok])',
    );
    const db = await createTestDatabase("drift_edit");
    try {
      expect(compare(expectedFacts(edited), await databaseFacts(db.url))).toEqual([
        "column kpi_samples.region (text, not null, default 'eu'::text) is in schema.prisma but not in the database",
        "index kpi_samples_ok_idx (kpi_samples(ok) using btree) is in schema.prisma but not in the database",
      ]);
    } finally {
      await db.drop();
    }
  });
});
