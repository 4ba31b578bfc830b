/**
 * A hostile source database for db.verify: what makes comparisons lie. Quoted and CJK names,
 * domains, composites, hstore, ranges, NaN/±Infinity/-0, infinity dates, identity and generated
 * columns, a 6 MB row, a table without a primary key holding duplicate rows, unlogged,
 * partitioned and inherited tables, an FK cycle, an exclusion constraint, RLS with policies,
 * triggers, a rule, views, a populated and an unpopulated materialized view, comments and large
 * objects.
 */
export const HOSTILE_SQL = String.raw`
CREATE EXTENSION hstore;
CREATE SCHEMA "顧客 Data";
COMMENT ON SCHEMA "顧客 Data" IS 'customers';
CREATE DOMAIN public.email AS text DEFAULT 'nobody@example.com' CHECK (VALUE LIKE '%@%');
CREATE TYPE public.addr AS (street text, city text);
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE public.floatrange AS RANGE (subtype = float8);

CREATE TABLE "顧客 Data"."人々" (
  id integer PRIMARY KEY,
  "名前" text NOT NULL DEFAULT 'anon',
  email public.email,
  home public.addr,
  mood public.mood,
  score float8,
  tags hstore,
  during tstzrange,
  band public.floatrange,
  born date,
  seen timestamptz,
  big int8,
  code text COLLATE "C"
);
INSERT INTO "顧客 Data"."人々"
SELECT g, '名前 ' || g, 'u' || g || '@example.com', ROW('Street ' || g, (ARRAY['香港', 'Tokyo', 'O''Hare'])[1 + g % 3])::public.addr,
  (enum_range(NULL::public.mood))[1 + g % 3],
  CASE g WHEN 1 THEN 'NaN'::float8 WHEN 2 THEN 'Infinity' WHEN 3 THEN '-Infinity' WHEN 4 THEN '-0' ELSE g / 7.0 END,
  hstore(ARRAY['k', 'n'], ARRAY['v' || g, g::text]),
  tstzrange(timestamptz '2024-01-01' + g * interval '1 hour', timestamptz '2024-01-01' + (g + 1) * interval '1 hour'),
  public.floatrange(g, g + 0.5),
  CASE g WHEN 5 THEN 'infinity'::date WHEN 6 THEN '-infinity'::date ELSE date '2000-01-01' + g END,
  timestamptz '2024-05-01 10:00:00+00' + g * interval '1 minute 1 microsecond',
  CASE g WHEN 7 THEN 0 ELSE g * 1000003 END,
  'code-' || g
FROM generate_series(1, 300) g;

-- 40 rows whose values two rows could swap
CREATE TABLE public.swap40 (id integer PRIMARY KEY, a integer NOT NULL, b text NOT NULL);
INSERT INTO public.swap40 SELECT g, g * 10, 'b' || g FROM generate_series(1, 40) g;

-- no primary key, duplicate rows
CREATE TABLE public.nopk (a integer, b text);
INSERT INTO public.nopk SELECT g % 10, 'x' || (g % 10) FROM generate_series(1, 50) g;

-- a 6 MB row
CREATE TABLE public.blobs (id integer PRIMARY KEY, body bytea NOT NULL);
INSERT INTO public.blobs SELECT 1, decode(repeat(md5('seed'), 6 * 1024 * 1024 / 16), 'hex') || decode(repeat('ab', 3 * 1024 * 1024), 'hex');
INSERT INTO public.blobs VALUES (2, '\x00ff');

CREATE UNLOGGED TABLE public.scratch (id integer PRIMARY KEY, v text);
INSERT INTO public.scratch SELECT g, 's' || g FROM generate_series(1, 20) g;

CREATE TABLE public.parent_t (id integer PRIMARY KEY, v text);
CREATE TABLE public.child_t (extra integer) INHERITS (public.parent_t);
INSERT INTO public.parent_t VALUES (1, 'p1'), (2, 'p2');
INSERT INTO public.child_t VALUES (10, 'c10', 1), (11, 'c11', 2);

CREATE TABLE public.events (id integer, at date, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + g, 'e' || g FROM generate_series(1, 600) g;

CREATE TABLE public.idt (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  v text NOT NULL,
  doubled integer GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO public.idt (v) SELECT 'v' || g FROM generate_series(1, 30) g;

-- an FK cycle
CREATE TABLE public.a_side (id integer PRIMARY KEY, b_id integer);
CREATE TABLE public.b_side (id integer PRIMARY KEY, a_id integer REFERENCES public.a_side (id));
ALTER TABLE public.a_side ADD CONSTRAINT a_side_b_fk FOREIGN KEY (b_id) REFERENCES public.b_side (id) DEFERRABLE INITIALLY DEFERRED;
BEGIN;
SET CONSTRAINTS ALL DEFERRED;
INSERT INTO public.a_side VALUES (1, 1);
INSERT INTO public.b_side VALUES (1, 1);
COMMIT;

CREATE TABLE public.booking (id integer PRIMARY KEY, during tstzrange NOT NULL, EXCLUDE USING gist (during WITH &&));
INSERT INTO public.booking VALUES (1, '[2024-01-01,2024-01-02)'), (2, '[2024-01-03,2024-01-04)');

CREATE TABLE public.amounts (id integer PRIMARY KEY, amount numeric(10,2) CHECK (amount >= 0), n numeric);
INSERT INTO public.amounts SELECT g, g * 1.25, g / 4.0 FROM generate_series(1, 50) g;

-- row level security
CREATE TABLE public.secrets (id integer PRIMARY KEY, owner text NOT NULL, v text);
ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON public.secrets USING (owner = current_user);
CREATE POLICY insert_own ON public.secrets FOR INSERT WITH CHECK (owner = current_user);
INSERT INTO public.secrets VALUES (1, 'alice', 's1'), (2, 'bob', 's2');

CREATE SEQUENCE public.ticket_seq START 100;
SELECT nextval('public.ticket_seq');

CREATE FUNCTION public.add1(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';
CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := upper(NEW.v); RETURN NEW; END $$;
CREATE FUNCTION public.stamp_b() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.b := upper(NEW.b); RETURN NEW; END $$;
CREATE TRIGGER swap40_stamp BEFORE INSERT ON public.swap40 FOR EACH ROW EXECUTE FUNCTION public.stamp_b();
CREATE TRIGGER secrets_stamp BEFORE UPDATE ON public.secrets FOR EACH ROW EXECUTE FUNCTION public.stamp();
CREATE RULE scratch_no_delete AS ON DELETE TO public.scratch WHERE OLD.id < 0 DO INSTEAD NOTHING;

CREATE INDEX swap40_b_idx ON public.swap40 (b);
CREATE INDEX people_mood_idx ON "顧客 Data"."人々" (mood) WHERE score > 0;

CREATE VIEW public.v_people AS SELECT id, "名前" FROM "顧客 Data"."人々" WHERE id > 10;
CREATE MATERIALIZED VIEW public.mv_counts AS SELECT mood, count(*) AS n FROM "顧客 Data"."人々" GROUP BY mood;
CREATE MATERIALIZED VIEW public.mv_empty AS SELECT id FROM public.swap40 WITH NO DATA;

COMMENT ON TABLE public.swap40 IS 'forty rows';
COMMENT ON COLUMN "顧客 Data"."人々"."名前" IS '表示名';
COMMENT ON FUNCTION public.add1(integer) IS 'adds one';

SELECT lo_from_bytea(424201, '\x0102030405060708'::bytea);
SELECT lo_from_bytea(424202, decode(repeat('cafe', 50000), 'hex'));
ANALYZE;
`;
