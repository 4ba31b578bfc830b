import { createHash } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import { runTool } from "../../../src/cloud/postgres.js";
import { parseMigrationFile } from "../../../src/config/load.js";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import { createDbSteps } from "../../../src/jobs/steps/db/index.js";
import { createLogger } from "../../../src/log.js";
import { createPorts } from "../../../src/ports.js";
import { createEmptyDatabase, databaseUrl, type TestDatabase, withAdmin } from "../../helpers/db.js";

/**
 * The source database the database tests copy: what a real app's database holds and what trips
 * copies up. Chinese and Japanese names, mixed case and spaces, several schemas, jsonb, arrays,
 * enums, bytea, numeric with precision, timestamptz, identity and serial columns with unusual
 * sequences, generated columns, a partitioned table, views and a materialized view, functions and
 * triggers, foreign keys in a cycle, comments, and the pgcrypto and citext extensions.
 */
export const FIXTURE_SQL = String.raw`
CREATE EXTENSION pgcrypto;
CREATE EXTENSION citext;
CREATE SCHEMA "販売 Sales";
CREATE SCHEMA inventory;
COMMENT ON SCHEMA inventory IS '在庫 stock levels';

CREATE TYPE public.order_status AS ENUM ('pending', 'paid', 'shipped', '已发货', 'キャンセル');
CREATE DOMAIN public.positive_qty AS integer CHECK (VALUE > 0);

CREATE TABLE public."Customers" (
  "CustomerID" bigint GENERATED ALWAYS AS IDENTITY (START WITH 1000 INCREMENT BY 7 MINVALUE 1000 MAXVALUE 9999999 CACHE 5) PRIMARY KEY,
  "E-mail Address" citext NOT NULL UNIQUE,
  "名前" text NOT NULL,
  "プロフィール" jsonb NOT NULL DEFAULT '{}',
  tags text[] NOT NULL DEFAULT '{}',
  api_secret text NOT NULL DEFAULT encode(gen_random_bytes(8), 'hex'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz
);
COMMENT ON TABLE public."Customers" IS '客户 customers / 顧客';
COMMENT ON COLUMN public."Customers"."名前" IS 'display name';

CREATE TABLE "販売 Sales"."商品" (
  "商品ID" serial PRIMARY KEY,
  "名称" text NOT NULL,
  "価格" numeric(12,2) NOT NULL,
  "重量 kg" numeric(8,3),
  "画像" bytea,
  attrs jsonb,
  ratio double precision,
  span interval
);

CREATE TABLE "販売 Sales"."注文" (
  id bigserial PRIMARY KEY,
  "CustomerID" bigint NOT NULL REFERENCES public."Customers" ("CustomerID"),
  status public.order_status NOT NULL DEFAULT 'pending',
  placed_at timestamptz NOT NULL,
  note text
);

CREATE TABLE "販売 Sales"."Order Lines" (
  order_id bigint NOT NULL REFERENCES "販売 Sales"."注文" (id) ON DELETE CASCADE,
  line_no integer NOT NULL,
  "商品ID" integer NOT NULL REFERENCES "販売 Sales"."商品" ("商品ID"),
  "数量" public.positive_qty NOT NULL,
  unit_price numeric(12,2) NOT NULL,
  line_total numeric(14,2) GENERATED ALWAYS AS ("数量" * unit_price) STORED,
  PRIMARY KEY (order_id, line_no)
);

-- a foreign-key cycle: a warehouse has a manager (an employee), an employee works in a warehouse
CREATE TABLE inventory.warehouses (code text PRIMARY KEY, name text NOT NULL, manager_id integer);
CREATE TABLE inventory.employees (id integer PRIMARY KEY, name text NOT NULL, warehouse text NOT NULL REFERENCES inventory.warehouses (code));
ALTER TABLE inventory.warehouses ADD CONSTRAINT warehouses_manager_fk FOREIGN KEY (manager_id) REFERENCES inventory.employees (id) DEFERRABLE INITIALLY DEFERRED;

CREATE SEQUENCE inventory.movement_seq AS integer START WITH -1 INCREMENT BY -3 MINVALUE -1000000 MAXVALUE -1 CYCLE;
CREATE TABLE inventory.movements (
  id integer NOT NULL DEFAULT nextval('inventory.movement_seq'),
  sku uuid NOT NULL DEFAULT gen_random_uuid(),
  moved_at timestamptz NOT NULL,
  qty integer NOT NULL,
  payload text,
  PRIMARY KEY (id, moved_at)
) PARTITION BY RANGE (moved_at);
CREATE TABLE inventory.movements_2024 PARTITION OF inventory.movements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE inventory.movements_2025 PARTITION OF inventory.movements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE inventory.movements_other PARTITION OF inventory.movements DEFAULT;
CREATE INDEX movements_sku_idx ON inventory.movements (sku);

-- no primary key: compared as one multiset
CREATE TABLE public.event_log (at timestamptz NOT NULL, kind text, body jsonb);
-- a text primary key: hash buckets
CREATE TABLE public.settings (key text PRIMARY KEY, value jsonb);

CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE UPDATE ON public."Customers" FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();
CREATE FUNCTION "販売 Sales"."注文合計"(p_order bigint) RETURNS numeric LANGUAGE sql STABLE AS
  $$ SELECT coalesce(sum(line_total), 0) FROM "販売 Sales"."Order Lines" WHERE order_id = p_order $$;
CREATE FUNCTION inventory.log_movement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.event_log VALUES (now(), 'movement', to_jsonb(NEW)); RETURN NEW; END $$;
CREATE TRIGGER movements_log AFTER INSERT ON inventory.movements FOR EACH ROW EXECUTE FUNCTION inventory.log_movement();

CREATE VIEW "販売 Sales"."Order Totals" AS
  SELECT o.id, o."CustomerID", "販売 Sales"."注文合計"(o.id) AS total FROM "販売 Sales"."注文" o;
CREATE MATERIALIZED VIEW public.customer_stats AS
  SELECT c."CustomerID", count(o.id) AS orders FROM public."Customers" c LEFT JOIN "販売 Sales"."注文" o USING ("CustomerID") GROUP BY 1;
CREATE UNIQUE INDEX customer_stats_id ON public.customer_stats ("CustomerID");
COMMENT ON MATERIALIZED VIEW public.customer_stats IS 'orders per customer';

-- rows
INSERT INTO public."Customers" ("E-mail Address", "名前", "プロフィール", tags, created_at)
SELECT 'User' || g || '@Example.COM',
  (ARRAY['王小明', '佐藤 花子', 'Zoë "Q" O''Brien', E'tab\there', E'line\nbreak \\ back'])[1 + g % 5] || g,
  jsonb_build_object('lang', (ARRAY['zh', 'ja', 'en'])[1 + g % 3], 'score', g * 1.5, 'nested', jsonb_build_object('a', ARRAY[g, g + 1])),
  CASE WHEN g % 7 = 0 THEN '{}'::text[] ELSE ARRAY['vip', '常连客', NULL] END,
  timestamptz '2024-03-01 12:00:00+08' + g * interval '37 minutes'
FROM generate_series(1, 400) g;
UPDATE public."Customers" SET "名前" = "名前" WHERE "CustomerID" % 3 = 0;

INSERT INTO "販売 Sales"."商品" ("名称", "価格", "重量 kg", "画像", attrs, ratio, span)
SELECT '抹茶ラテ ' || g, round((g * 13.37)::numeric % 1000, 2), CASE WHEN g % 4 = 0 THEN NULL ELSE g / 7.0 END,
  decode(md5(g::text) || md5((g * 2)::text), 'hex'),
  CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_object('色', 'green', 'sizes', jsonb_build_array('S', 'M', g)) END,
  g / 3.0, make_interval(days => g % 40, hours => g % 24)
FROM generate_series(1, 120) g;

INSERT INTO "販売 Sales"."注文" ("CustomerID", status, placed_at, note)
SELECT 1000 + 7 * (g % 400), (enum_range(NULL::public.order_status))[1 + g % 5],
  timestamptz '2024-06-01 00:00:00+00' + g * interval '3 hours', CASE WHEN g % 3 = 0 THEN 'ギフト包装 🎁' END
FROM generate_series(1, 1500) g;

INSERT INTO "販売 Sales"."Order Lines" (order_id, line_no, "商品ID", "数量", unit_price)
SELECT o, l, 1 + (o * l) % 120, 1 + (o + l) % 4, ((o * 7 + l) % 500) / 10.0
FROM generate_series(1, 1500) o, generate_series(1, 3) l;

INSERT INTO inventory.warehouses VALUES ('HKG-1', '香港倉庫', NULL), ('TYO-1', '東京倉庫', NULL);
INSERT INTO inventory.employees VALUES (1, '陳大文', 'HKG-1'), (2, '山田太郎', 'TYO-1');
UPDATE inventory.warehouses SET manager_id = CASE code WHEN 'HKG-1' THEN 1 ELSE 2 END;

INSERT INTO inventory.movements (moved_at, qty, payload)
SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '20 minutes', (g % 21) - 10, repeat(md5(g::text), 1 + g % 5)
FROM generate_series(1, 20000) g;

INSERT INTO public.settings VALUES ('site.name', '"ショップ"'), ('site.currency', '"HKD"'), ('feature flags', '{"beta": true}');
REFRESH MATERIALIZED VIEW public.customer_stats;
SELECT setval('"販売 Sales"."商品_商品ID_seq"', 500);
ANALYZE;
`;

/** A fresh source database holding the fixture. */
export async function createFixtureSource(label: string): Promise<TestDatabase> {
  const db = await createEmptyDatabase(label);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(FIXTURE_SQL);
  } finally {
    await client.end();
  }
  return db;
}

/**
 * An empty target owned by a role that is NOT a superuser, like the RDS master user: the
 * restore must work with what such a user may do (trusted extensions, its own objects).
 */
export async function createRdsLikeTarget(
  label: string,
): Promise<TestDatabase & { role: string; url: string }> {
  const db = await createEmptyDatabase(label);
  const role = `${db.name}_owner`.slice(0, 63);
  await withAdmin(async (client) => {
    await client.query(`CREATE ROLE ${client.escapeIdentifier(role)} LOGIN CREATEDB NOSUPERUSER`);
    await client.query(
      `ALTER DATABASE ${client.escapeIdentifier(db.name)} OWNER TO ${client.escapeIdentifier(role)}`,
    );
  });
  // PostgreSQL 15: public belongs to pg_database_owner, so the owner may create in it
  const url = new URL(databaseUrl(db.name));
  url.username = role;
  return {
    ...db,
    role,
    url: url.toString(),
    async drop() {
      await db.drop();
      await withAdmin((client) => client.query(`DROP ROLE IF EXISTS ${client.escapeIdentifier(role)}`));
    },
  };
}

/**
 * An independent fingerprint of a database (not the code under test): the schema as pg_dump
 * prints it, every table's rows sorted and hashed, and every sequence's state. Equal before and
 * after means nothing was written.
 */
export async function fingerprint(
  url: string,
): Promise<{ schema: string; tables: Record<string, string>; sequences: Record<string, string> }> {
  const u = new URL(url);
  const res = await runTool("pg_dump", ["--schema-only", "--no-owner", `--dbname=${u.pathname.slice(1)}`], {
    env: {
      PGHOST: u.hostname,
      PGPORT: u.port || "5432",
      PGUSER: decodeURIComponent(u.username) || "postgres",
    },
  });
  if (res.code !== 0) throw new Error(`pg_dump failed: ${res.stderrTail.join("\n")}`);
  const schemaText = res.stdout
    .split("\n")
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .join("\n");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables: Record<string, string> = {};
    const rels = await client.query<{
      name: string;
    }>(`SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema')
      AND n.nspname !~ '^pg_' ORDER BY 1`);
    for (const { name } of rels.rows) {
      const r = await client.query<{ h: string | null; n: string }>(
        `SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS h, count(*) AS n FROM ONLY ${name} t`,
      );
      tables[name] = `${r.rows[0]!.n}:${r.rows[0]!.h}`;
    }
    const sequences: Record<string, string> = {};
    const seqs = await client.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, sequencename) AS name FROM pg_sequences ORDER BY 1`,
    );
    for (const { name } of seqs.rows) {
      const r = await client.query<{ v: string; c: boolean }>(
        `SELECT last_value::text AS v, is_called AS c FROM ${name}`,
      );
      sequences[name] = `${r.rows[0]!.v}/${r.rows[0]!.c}`;
    }
    return { schema: createHash("sha256").update(schemaText).digest("hex"), tables, sequences };
  } finally {
    await client.end();
  }
}

/** A migration file with the database sections and the data phase. */
export function dbConfig(opts: { withBlock?: string; extraSteps?: string } = {}): string {
  const w = opts.withBlock ?? "{ jobs: 2 }";
  return `version: 1
project: testco
environment: test
slack:
  channel: C0MIGRATE
access:
  operators: [U0OPERATOR]
  approvers: [U0APPROVER]
  channels: [C0MIGRATE]
engine:
  attempts: 2
  backoffMs: 50
source:
  database:
    provider: Neon
    urlEnv: SOURCE_DATABASE_URL
target:
  aws:
    region: ap-southeast-1
  rds:
    identifier: test-db
    engineVersion: "15"
    instanceClass: db.t4g.micro
    allocatedStorageGb: 20
    ingress:
      fromLightsailStaticIp: false
    masterUsername: app_admin
    masterPasswordEnv: RDS_MASTER_PASSWORD
    dbName: app
    urlEnv: TARGET_DATABASE_URL
runbook:
  phases:
    - id: data
      title: Data migration
      steps:
        - id: db-preflight
          uses: db.preflight
          with: ${w}
        - id: db-dump
          uses: db.dump
          with: ${w}
        - id: db-restore
          uses: db.restore
          with: ${w}
        - id: db-verify
          uses: db.verify
          with: ${w}
${opts.extraSteps ?? ""}`;
}

/** StepDeps for the database steps over a source and a target URL. */
export async function makeDeps(
  source: string,
  target: string,
  opts: { config?: string; dataDir?: string; env?: Record<string, string> } = {},
): Promise<StepDeps & { logs: string[] }> {
  const env = {
    PATH: process.env.PATH ?? "",
    SOURCE_DATABASE_URL: source,
    TARGET_DATABASE_URL: target,
    RDS_MASTER_PASSWORD: "not-used-in-tests",
    ...opts.env,
  };
  const file = parseMigrationFile(opts.config ?? dbConfig(), { env });
  const logs: string[] = [];
  const log = createLogger({
    secrets: [],
    level: "debug",
    destination: new Writable({
      write(chunk, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  });
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), "cutover-db-")));
  return { env, ports: createPorts({ env }, file), file, dataDir, log, logs };
}

/** The database steps over `source` and `target` ({@link makeDeps}), by type, with their deps. */
export async function dbStepsFor(source: string, target: string, opts: Parameters<typeof makeDeps>[2] = {}) {
  const deps = await makeDeps(source, target, opts);
  const steps = new Map(createDbSteps(deps).map((s) => [s.type, s]));
  return {
    deps,
    step: (type: string) => steps.get(type)!,
    input: (type: string, raw: unknown = {}) => steps.get(type)!.parse(raw),
  };
}
