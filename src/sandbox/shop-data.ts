import pg from "pg";

/**
 * A realistic shop database of a chosen size, for rehearsals and the database benchmark:
 * users, products (jsonb attributes, tag arrays, Chinese and Japanese names and descriptions),
 * product images (small incompressible thumbnails in bytea), orders (an enum status, jsonb
 * addresses), order items (a composite primary key), inventory events and an audit log, with
 * primary keys, foreign keys and the secondary indexes a shop has.
 *
 * Every value is a function of the row number and the seed (hash-based, not `random()`), so
 * the same size and seed give the same rows, however the server schedules the work.
 */
export interface ShopOptions {
  /** approximate size of the database (pg_database_size) in MB; default 1024 */
  sizeMb?: number;
  /** changes every generated value; default 1 */
  seed?: number;
  /** connections loading tables side by side; default 2 */
  parallel?: number;
  /** told about each table as it is loaded */
  onProgress?: (message: string) => void;
}

export interface ShopResult {
  /** rows per table */
  rows: Record<string, number>;
  /** pg_database_size after loading, in bytes */
  bytes: number;
  ms: number;
}

/** Rows per MB of database, per table; calibrated on PostgreSQL 15 (heap, TOAST and indexes). */
const ROWS_PER_MB = {
  users: 320,
  products: 100,
  product_images: 92,
  orders: 700,
  order_items: 2_100,
  inventory_events: 1_170,
  audit_log: 850,
} as const;
type ShopTable = keyof typeof ROWS_PER_MB;

const WORDS_ZH = [
  "茶叶",
  "绿茶",
  "乌龙",
  "手工",
  "限定",
  "礼盒",
  "陶瓷",
  "杯子",
  "香港",
  "台湾",
  "新鲜",
  "有机",
  "经典",
  "特价",
  "丝绸",
  "围巾",
];
const WORDS_JA = [
  "抹茶",
  "和菓子",
  "限定品",
  "手作り",
  "東京",
  "京都",
  "お土産",
  "セット",
  "ラーメン",
  "醤油",
  "桜",
  "贈り物",
  "新作",
  "人気",
  "カップ",
  "タオル",
];
const WORDS_EN = ["tea", "cup", "gift", "box", "silk", "scarf", "set", "classic", "premium", "mini"];

const sqlArray = (words: readonly string[]) => `ARRAY[${words.map((w) => `'${w}'`).join(",")}]::text[]`;

/** h(n, k): a deterministic non-negative integer for row n and salt k. */
const h = (n: string, k: number) => `(hashint8extended((${n})::bigint, seed + ${k}) & 2147483647)`;
/** pick(words, n, k): one word chosen by hash */
const pick = (words: string, n: string, k: number) =>
  `(${words})[1 + ${h(n, k)} % array_length(${words}, 1)]`;

function loadSql(table: ShopTable, count: number): string {
  const zh = sqlArray(WORDS_ZH);
  const ja = sqlArray(WORDS_JA);
  const en = sqlArray(WORDS_EN);
  const n = Math.max(1, Math.round(count));
  const ts = (n: string, k: number) =>
    `timestamptz '2023-01-01 00:00:00+00' + (${h(n, k)} % 70000000) * interval '1 second'`;
  switch (table) {
    case "users":
      return `INSERT INTO shop.users (id, email, display_name, country, created_at, profile)
        SELECT g, 'user' || g || '@example.com',
          ${pick(zh, "g", 1)} || ${pick(ja, "g", 2)} || g,
          (ARRAY['HK','TW','JP','SG','CN','US'])[1 + ${h("g", 3)} % 6],
          ${ts("g", 4)},
          jsonb_build_object('newsletter', ${h("g", 5)} % 2 = 0, 'lang', (ARRAY['zh-HK','zh-TW','ja-JP','en'])[1 + ${h("g", 6)} % 4],
            'points', ${h("g", 7)} % 10000)
        FROM shop_params, generate_series(1, ${n}) g`;
    case "products":
      return `INSERT INTO shop.products (id, sku, name, description, price, attrs, tags, created_at)
        SELECT g, 'SKU-' || lpad(g::text, 8, '0'),
          ${pick(zh, "g", 11)} || ${pick(zh, "g", 12)} || ' ' || ${pick(ja, "g", 13)} || ${pick(ja, "g", 14)} || ' ' || ${pick(en, "g", 15)},
          (SELECT string_agg(${pick(zh, "g * 31 + i", 16)} || ${pick(ja, "g * 37 + i", 17)} || ${pick(en, "g * 41 + i", 18)}, '，') FROM generate_series(1, 40) i),
          round((${h("g", 19)} % 100000) / 100.0 + 1, 2),
          jsonb_build_object('colour', (ARRAY['red','green','black','white','抹茶色'])[1 + ${h("g", 20)} % 5],
            'weight_g', ${h("g", 21)} % 5000, 'origin', ${pick(ja, "g", 22)},
            'dimensions', jsonb_build_array(${h("g", 23)} % 100, ${h("g", 24)} % 100, ${h("g", 25)} % 100)),
          ARRAY[${pick(en, "g", 26)}, ${pick(zh, "g", 27)}, ${pick(ja, "g", 28)}],
          ${ts("g", 29)}
        FROM shop_params, generate_series(1, ${n}) g`;
    case "product_images":
      return `INSERT INTO shop.product_images (id, product_id, url, width, height, thumbnail)
        SELECT g, 1 + ${h("g", 31)} % nproducts, 'https://cdn.example.com/img/' || g || '.jpg',
          400 + ${h("g", 32)} % 800, 300 + ${h("g", 33)} % 600,
          (SELECT string_agg(sha256(int8send(g * 64 + i + seed)), ''::bytea) FROM generate_series(1, 40) i)
        FROM shop_params, generate_series(1, ${n}) g`;
    case "orders":
      return `INSERT INTO shop.orders (id, user_id, status, total, currency, shipping_address, created_at)
        SELECT g, 1 + ${h("g", 41)} % nusers,
          (enum_range(NULL::shop.order_status))[1 + ${h("g", 42)} % 5],
          round((${h("g", 43)} % 500000) / 100.0, 2), 'HKD',
          jsonb_build_object('city', ${pick(zh, "g", 44)}, 'line1', ${pick(ja, "g", 45)} || ' ' || (${h("g", 46)} % 999) || '号', 'postcode', lpad((${h("g", 47)} % 99999)::text, 5, '0')),
          ${ts("g", 48)}
        FROM shop_params, generate_series(1, ${n}) g`;
    case "order_items":
      // three lines per order on average: order = (g + 2) / 3
      return `INSERT INTO shop.order_items (order_id, line_no, product_id, quantity, unit_price)
        SELECT 1 + (g - 1) / 3, 1 + (g - 1) % 3, 1 + ${h("g", 51)} % nproducts, 1 + ${h("g", 52)} % 5,
          round((${h("g", 53)} % 20000) / 100.0 + 1, 2)
        FROM shop_params, generate_series(1, ${n}) g`;
    case "inventory_events":
      return `INSERT INTO shop.inventory_events (product_id, delta, reason, created_at)
        SELECT 1 + ${h("g", 61)} % nproducts, (${h("g", 62)} % 41) - 20,
          (ARRAY['sale','restock','return','adjustment','盘点'])[1 + ${h("g", 63)} % 5], ${ts("g", 64)}
        FROM shop_params, generate_series(1, ${n}) g`;
    case "audit_log":
      return `INSERT INTO shop.audit_log (id, actor_id, action, entity, entity_id, details, at)
        SELECT g, 1 + ${h("g", 71)} % nusers,
          (ARRAY['create','update','delete','login','export'])[1 + ${h("g", 72)} % 5],
          (ARRAY['order','product','user','coupon'])[1 + ${h("g", 73)} % 4], ${h("g", 74)} % 100000,
          jsonb_build_object('ip', '10.' || (${h("g", 75)} % 256) || '.' || (${h("g", 76)} % 256) || '.1',
            'ua', 'Mozilla/5.0 (' || ${pick(en, "g", 77)} || ')', 'note', ${pick(zh, "g", 78)} || ${pick(ja, "g", 79)}),
          ${ts("g", 80)}
        FROM shop_params, generate_series(1, ${n}) g`;
  }
}

const SCHEMA_SQL = `
CREATE SCHEMA shop;
CREATE TYPE shop.order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'refunded');
CREATE TABLE shop.users (
  id bigint PRIMARY KEY, email text NOT NULL, display_name text NOT NULL, country char(2) NOT NULL,
  created_at timestamptz NOT NULL, profile jsonb NOT NULL);
CREATE TABLE shop.products (
  id integer PRIMARY KEY, sku text NOT NULL, name text NOT NULL, description text NOT NULL,
  price numeric(12,2) NOT NULL, attrs jsonb NOT NULL, tags text[] NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE shop.product_images (
  id bigint PRIMARY KEY, product_id integer NOT NULL, url text NOT NULL, width integer NOT NULL,
  height integer NOT NULL, thumbnail bytea NOT NULL);
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY, user_id bigint NOT NULL, status shop.order_status NOT NULL,
  total numeric(12,2) NOT NULL, currency char(3) NOT NULL, shipping_address jsonb NOT NULL,
  created_at timestamptz NOT NULL);
CREATE TABLE shop.order_items (
  order_id bigint NOT NULL, line_no integer NOT NULL, product_id integer NOT NULL,
  quantity integer NOT NULL, unit_price numeric(12,2) NOT NULL, PRIMARY KEY (order_id, line_no));
CREATE TABLE shop.inventory_events (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, product_id integer NOT NULL,
  delta integer NOT NULL, reason text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE shop.audit_log (
  id bigint PRIMARY KEY, actor_id bigint NOT NULL, action text NOT NULL, entity text NOT NULL,
  entity_id bigint NOT NULL, details jsonb NOT NULL, at timestamptz NOT NULL);
`;

const INDEX_SQL = `
CREATE UNIQUE INDEX users_email_key ON shop.users (email);
CREATE UNIQUE INDEX products_sku_key ON shop.products (sku);
CREATE INDEX product_images_product_id_idx ON shop.product_images (product_id);
CREATE INDEX orders_user_id_created_at_idx ON shop.orders (user_id, created_at);
CREATE INDEX order_items_product_id_idx ON shop.order_items (product_id);
CREATE INDEX inventory_events_product_id_idx ON shop.inventory_events (product_id, created_at);
CREATE INDEX audit_log_at_idx ON shop.audit_log (at);
ALTER TABLE shop.product_images ADD FOREIGN KEY (product_id) REFERENCES shop.products (id);
ALTER TABLE shop.orders ADD FOREIGN KEY (user_id) REFERENCES shop.users (id);
ALTER TABLE shop.order_items ADD FOREIGN KEY (order_id) REFERENCES shop.orders (id);
ALTER TABLE shop.order_items ADD FOREIGN KEY (product_id) REFERENCES shop.products (id);
ALTER TABLE shop.inventory_events ADD FOREIGN KEY (product_id) REFERENCES shop.products (id);
SELECT setval(pg_get_serial_sequence('shop.inventory_events', 'id'), (SELECT max(id) FROM shop.inventory_events));
`;

/**
 * Fills an EMPTY database with the shop (schema `shop`). Refuses a database that already has
 * the schema, so it never mixes into real data.
 *
 * @example await generateShopDatabase(url, { sizeMb: 100, seed: 7 });
 */
export async function generateShopDatabase(url: string, opts: ShopOptions = {}): Promise<ShopResult> {
  const started = Date.now();
  const sizeMb = opts.sizeMb ?? 1024;
  const seed = opts.seed ?? 1;
  const parallel = Math.max(1, opts.parallel ?? 2);
  const rows = Object.fromEntries(
    Object.entries(ROWS_PER_MB).map(([t, perMb]) => [t, Math.max(3, Math.round(perMb * sizeMb))]),
  ) as Record<ShopTable, number>;
  // order_items reference orders: keep three lines per order
  rows.order_items = rows.orders * 3;

  const connect = async () => {
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => undefined);
    await client.connect();
    await client.query("SET synchronous_commit = off");
    return client;
  };
  const admin = await connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = 'shop'");
    if (exists.rowCount) throw new Error("this database already has a `shop` schema; use an empty database");
    await admin.query(SCHEMA_SQL);
  } finally {
    await admin.end();
  }

  const queue = (Object.keys(ROWS_PER_MB) as ShopTable[]).sort((a, b) => rows[b] - rows[a]);
  const prefix = (client: pg.Client) =>
    client.query(
      `CREATE TEMP TABLE IF NOT EXISTS shop_params AS SELECT ${seed}::bigint AS seed, ${rows.products}::bigint AS nproducts, ${rows.users}::bigint AS nusers`,
    );
  const worker = async () => {
    const client = await connect();
    try {
      await prefix(client);
      for (;;) {
        const table = queue.shift();
        if (!table) return;
        opts.onProgress?.(`loading ${table} (${rows[table]} rows)`);
        // seed, nproducts and nusers come from the one-row parameter table
        await client.query(loadSql(table, rows[table]));
      }
    } finally {
      await client.end();
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));

  opts.onProgress?.("building indexes and foreign keys");
  const statements = INDEX_SQL.split(";\n")
    .map((s) => s.trim())
    .filter(Boolean);
  const indexes = statements.filter((s) => s.startsWith("CREATE"));
  const after = statements.filter((s) => !s.startsWith("CREATE"));
  const iq = [...indexes];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      const client = await connect();
      try {
        for (;;) {
          const sql = iq.shift();
          if (!sql) return;
          await client.query(sql);
        }
      } finally {
        await client.end();
      }
    }),
  );
  const last = await connect();
  try {
    for (const sql of after) await last.query(sql);
    await last.query("ANALYZE");
    const size = await last.query<{ bytes: string }>("SELECT pg_database_size(current_database()) AS bytes");
    return { rows, bytes: Number(size.rows[0]!.bytes), ms: Date.now() - started };
  } finally {
    await last.end();
  }
}
