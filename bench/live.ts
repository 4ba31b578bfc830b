import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import pg from "pg";
import { createDbSteps } from "../src/jobs/steps/db.js";
import { type LedgerReport, ledgerReport, setShopAppWrites, type Traffic } from "../src/sandbox/live-shop.js";
import { type LiveWorld, startLiveWorld } from "../src/sandbox/live-world.js";
import {
  checkWalLevel,
  createOwnedDatabase,
  dropReplicationFor,
  type LogicalServer,
  startLogicalServer,
  withDatabase,
} from "../src/sandbox/logical-server.js";
import { type S3Server, startMoto } from "../src/sandbox/s3-servers.js";
import { dbStepDeps, runDbStep } from "./_db-steps.js";

/**
 * `npm run bench -- live [--writes 5000] [--rate 50] [--orders 20000] [--methods snapshot,live]
 * [--jobs 2] [--seed 1] [--concurrency 4]`: the same data (a shop database of `--orders` orders) and the same
 * traffic (`--rate` writes/s at most, from `--concurrency` customers at once, until `--writes`
 * writes were acknowledged: orders, payments, cancellations, uploads, with reads after each) through
 *   (a) the snapshot method: the product's own db.dump + db.restore while the shop writes, one
 *       object sync, then the switch (what Cutover does today);
 *   (b) the live method: {@link liveMethod}, today a PLACEHOLDER in raw SQL (publication,
 *       subscription, REVOKE freeze, drain, sequences, switch with CDN failover, object copy),
 *       reported as `"method": "placeholder"` until the product's steps replace it.
 * Source: the machine's PostgreSQL 15; target: an embedded PostgreSQL 17 (wal_level = logical),
 * as Neon and RDS differ. Prints one JSON object: lost, duplicated, misapplied, failed writes,
 * write outage at the switch, read availability, objects, replication lag p99, slots left, and
 * the targets met or not. Progress on stderr.
 */

const say = (msg: string) => process.stderr.write(`[bench live] ${msg}\n`);
const sh = promisify(execFile);
const MACHINE_PG = process.env.BENCH_PG ?? "postgresql://postgres@127.0.0.1:5432/postgres";

/** What a method may use besides the world and the traffic. */
export interface LiveMethodHooks {
  log(line: string): void;
  /** acknowledged writes the run aims at: a method places its copy and switch by fractions of it */
  writes: number;
  /** `pg_dump`/`pg_restore` parallelism */
  jobs: number;
  /** the product's database steps (db.preflight, db.dump, db.restore, db.verify) over this pair */
  runDbStep(type: string, input?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /**
   * Samples replication lag: every 250 ms a row into `bench_heartbeat` on the source and the time
   * until it shows on the target (polled every 10 ms). Needs that table replicated.
   */
  startLagProbe(): { stop(): Promise<number[]> };
  /** copies `media/` objects the target bucket lacks from the source bucket; returns how many */
  copyMissingObjects(): Promise<number>;
}

/** What a method reports; the bench adds the ledger's verdict. */
export interface LiveMethodResult {
  /** "snapshot"; "placeholder" for the bench's own raw-SQL live method; "product" once it is Cutover's */
  method: "snapshot" | "placeholder" | "product";
  /** when DNS moved the traffic to the new app (epoch ms) */
  switchedAt: number;
  /** when the source's writes were frozen, if they were */
  frozenAt?: number;
  /** replication lag samples (ms), where measurable */
  lagSamplesMs?: number[];
  /** the objects copied after the switch, if any */
  objectsCopiedAfterSwitch?: number;
  notes?: string[];
}

/**
 * The seam: a cutover method runs while `traffic` flows through `world.dns`, moves the data from
 * `world.source` to `world.target` (and the bucket), and switches with `world.switchTo("new")`.
 * It returns once switched; the bench lets the traffic reach its count, then checks the ledger.
 */
export type LiveMethod = (
  world: LiveWorld,
  traffic: Traffic,
  hooks: LiveMethodHooks,
) => Promise<LiveMethodResult>;

/** (a) Today's product: db.dump + db.restore under traffic, one object sync, then the switch. */
export const snapshotMethod: LiveMethod = async (world, traffic, hooks) => {
  await traffic.acknowledged(Math.round(hooks.writes * 0.1));
  hooks.log("snapshot: db.dump + db.restore while the shop writes");
  await hooks.runDbStep("db.dump", { jobs: hooks.jobs });
  await hooks.runDbStep("db.restore", { jobs: hooks.jobs });
  await world.grantTarget();
  const copied = await hooks.copyMissingObjects(); // the data phase's storage sync
  hooks.log(`snapshot: ${copied} objects synced; the shop goes on writing to the old side until the switch`);
  await traffic.acknowledged(Math.round(hooks.writes * 0.5));
  const switchedAt = world.switchTo("new");
  return { method: "snapshot", switchedAt };
};

/**
 * (b) PLACEHOLDER for the product's live cutover, in raw SQL: schema by pg_dump --schema-only, a
 * publication and a subscription (copy_data = true), lag probes, then at half the writes: the
 * REVOKE freeze, a drain up to a marker row written after the freeze, the sequences set from the
 * source, CDN failover on, DNS switched, the subscription dropped, missing objects copied. To be
 * replaced by the product's steps (report `"method": "product"` then).
 */
export const liveMethod: LiveMethod = async (world, traffic, hooks) => {
  const src = world.source;
  const dst = world.target;
  hooks.log("placeholder live: schema, publication, subscription (copy_data = true)");
  await sh("sh", [
    "-c",
    'pg_dump --schema-only --no-owner --no-privileges "$1" | psql -q -v ON_ERROR_STOP=1 "$2"',
    "schema",
    src.adminUrl,
    dst.url,
  ]);
  await world.grantTarget();
  await sql(src.adminUrl, "CREATE PUBLICATION bench_pub FOR ALL TABLES");
  await sql(dst.adminUrl, `CREATE SUBSCRIPTION bench_sub CONNECTION '${src.adminUrl}' PUBLICATION bench_pub`);
  await until("the subscription's initial copy", 300_000, async () => {
    const rows = await sql(dst.adminUrl, "SELECT srsubstate FROM pg_subscription_rel");
    return rows.length > 0 && rows.every((r) => r.srsubstate === "r");
  });
  const probe = hooks.startLagProbe();
  await traffic.acknowledged(Math.round(hooks.writes * 0.5));
  const lagSamplesMs = await probe.stop();

  // the cutover: freeze, drain, sequences, switch
  const frozenAt = Date.now();
  await setShopAppWrites(src.adminUrl, false);
  const marker = await sql(src.adminUrl, "INSERT INTO bench_heartbeat DEFAULT VALUES RETURNING id");
  await until("the drain up to the freeze", 60_000, async () => {
    const rows = await sql(dst.adminUrl, "SELECT 1 FROM bench_heartbeat WHERE id = $1", [marker[0]!.id]);
    return rows.length === 1;
  });
  const seqs = await sql(
    src.adminUrl,
    "SELECT format('%I.%I', schemaname, sequencename) AS name, last_value, last_value IS NOT NULL AS called FROM pg_sequences",
  );
  for (const s of seqs)
    if (s.called) await sql(dst.adminUrl, "SELECT setval($1::regclass, $2, true)", [s.name, s.last_value]);
  world.newCdn.setFailover(world.sourceStore);
  const switchedAt = world.switchTo("new");
  hooks.log(`placeholder live: switched ${switchedAt - frozenAt} ms after the freeze`);
  await sql(dst.adminUrl, "ALTER SUBSCRIPTION bench_sub DISABLE");
  await sql(dst.adminUrl, "DROP SUBSCRIPTION bench_sub"); // drops its slot on the source too
  await sql(src.adminUrl, "DROP PUBLICATION bench_pub");
  const objectsCopiedAfterSwitch = await hooks.copyMissingObjects();
  return { method: "placeholder", switchedAt, frozenAt, lagSamplesMs, objectsCopiedAfterSwitch };
};

const METHODS: Record<string, LiveMethod> = { snapshot: snapshotMethod, live: liveMethod };

async function sql(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query(text, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function until(what: string, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The shop's starting data: `orders` orders of two lines, the same for every method. */
async function seedSource(url: string, orders: number): Promise<void> {
  await sql(
    url,
    `CREATE TABLE bench_heartbeat (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
     INSERT INTO live_orders (ref, customer, status, created_at)
       SELECT md5('order' || g)::uuid, 'customer-' || (g % 500), CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'placed' END,
              timestamptz '2026-01-01' + g * interval '1 minute'
       FROM generate_series(1, ${Math.floor(orders)}) g;
     INSERT INTO live_order_lines (order_id, sku, qty) SELECT id, 'sku-' || l, l FROM live_orders, generate_series(1, 2) l;
     ANALYZE`,
  );
}

interface MethodOutcome {
  method: LiveMethodResult["method"];
  seconds: number;
  acknowledged: number;
  /** the rate the traffic reached (the rate asked is a cap) */
  achievedWritesPerSecond: number | null;
  lost: number;
  duplicated: number;
  misapplied: number;
  failedWrites: number;
  writeOutageMs: number | null;
  frozenToSwitchMs: number | null;
  readAvailabilityPct: number;
  readAvailabilityByWindow: Array<{ window: string; pct: number; reads: number }>;
  objects: LedgerReport["objects"] | null;
  replicationLagMsP99: number | null;
  replicationLagSamples: number;
  slotsLeft: number;
  publicationsLeft: number;
  verdict: LedgerReport["verdict"];
  ledger: LedgerReport;
  notes?: string[];
}

async function runMethod(
  name: string,
  method: LiveMethod,
  opts: {
    server: LogicalServer;
    moto: S3Server;
    work: string;
    orders: number;
    writes: number;
    rate: number;
    jobs: number;
    seed: number;
    concurrency: number;
  },
): Promise<MethodOutcome> {
  const tag = `${name}_${Date.now().toString(36)}`;
  const sourceName = `bench_live_src_${tag}`;
  await sql(MACHINE_PG, `CREATE DATABASE ${sourceName} TEMPLATE template0`);
  const sourceUrl = withDatabase(MACHINE_PG, sourceName);
  const target = await createOwnedDatabase(opts.server.adminUrl, `bench_live_dst_${tag}`);
  let world: LiveWorld | undefined;
  try {
    world = await startLiveWorld({
      source: { url: sourceUrl, adminUrl: sourceUrl },
      target: { url: target.url, adminUrl: target.adminUrl },
      awsEndpoint: opts.moto.endpoint,
    });
    await seedSource(sourceUrl, opts.orders);
    const w = world;
    const steps = new Map(
      createDbSteps(
        dbStepDeps({
          sourceUrl,
          targetUrl: target.url,
          dataDir: path.join(opts.work, tag),
          jobs: opts.jobs,
          engineVersion: "17",
        }),
      ).map((s) => [s.type, s]),
    );
    const hooks: LiveMethodHooks = {
      log: say,
      writes: opts.writes,
      jobs: opts.jobs,
      async runDbStep(type, input = {}) {
        const step = steps.get(type);
        if (!step) throw new Error(`no database step ${type}`);
        return runDbStep(step, input);
      },
      startLagProbe() {
        const samples: number[] = [];
        let stopped = false;
        // one connection on each side for the whole probe: a new one per poll would be the load
        const src = new pg.Client({ connectionString: sourceUrl });
        const dst = new pg.Client({ connectionString: target.adminUrl });
        const loop = (async () => {
          await Promise.all([src.connect(), dst.connect()]);
          try {
            while (!stopped) {
              const { rows } = await src.query("INSERT INTO bench_heartbeat DEFAULT VALUES RETURNING id");
              const t0 = Date.now(); // committed on the source
              await until("a heartbeat on the target", 30_000, async () => {
                const r = await dst.query("SELECT 1 FROM bench_heartbeat WHERE id = $1", [rows[0].id]);
                return r.rowCount === 1;
              });
              samples.push(Date.now() - t0);
              await new Promise((r) => setTimeout(r, 250));
            }
          } finally {
            await Promise.all([src.end(), dst.end()]).catch(() => undefined);
          }
        })();
        return {
          async stop() {
            stopped = true;
            await loop;
            return samples;
          },
        };
      },
      async copyMissingObjects() {
        let copied = 0;
        for (let token: string | undefined, first = true; first || token; first = false) {
          const page = await w.sourceStore.listPage({ prefix: "media/", ...(token ? { token } : {}) });
          for (const o of page.objects) {
            if (await w.targetStore.head(o.key)) continue;
            const { head, body } = await w.sourceStore.get(o.key);
            const chunks: Buffer[] = [];
            for await (const c of body) chunks.push(c as Buffer);
            await w.targetStore.put(o.key, Buffer.concat(chunks), o.size, {
              ...head,
              metadata: head.metadata,
            });
            copied++;
          }
          token = page.nextToken;
        }
        return copied;
      },
    };
    say(`${name}: ${opts.writes} writes at ${opts.rate}/s over ${opts.orders} orders`);
    const started = performance.now();
    const traffic = w.startTraffic({
      writesPerSecond: opts.rate,
      seed: opts.seed,
      concurrency: opts.concurrency,
    });
    let result: LiveMethodResult;
    try {
      result = await method(w, traffic, hooks);
      await traffic.acknowledged(opts.writes);
    } finally {
      await traffic.stop();
    }
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    const ledger = await ledgerReport(traffic.log, {
      databaseUrl: target.adminUrl,
      store: w.targetStore,
      switches: [result.switchedAt],
    });
    const slots = await sql(
      MACHINE_PG,
      "SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = $1",
      [sourceName],
    );
    const pubs = await sql(sourceUrl, "SELECT count(*)::int AS n FROM pg_publication");
    const lag = result.lagSamplesMs ?? [];
    const times = traffic.log.acked.map((a) => a.at);
    const spanS = (Math.max(...times) - Math.min(...times)) / 1000;
    const s = ledger.switches[0];
    say(`${name}: ${ledger.verdict}, ${ledger.lost} lost, outage ${s?.writeOutageMs ?? "?"} ms`);
    return {
      method: result.method,
      seconds,
      acknowledged: ledger.acknowledged.writes,
      achievedWritesPerSecond: spanS > 0 ? Math.round((times.length / spanS) * 10) / 10 : null,
      lost: ledger.lost,
      duplicated: ledger.duplicated,
      misapplied: ledger.misapplied,
      failedWrites: ledger.failedWrites.count,
      writeOutageMs: s?.writeOutageMs ?? null,
      frozenToSwitchMs: result.frozenAt === undefined ? null : result.switchedAt - result.frozenAt,
      readAvailabilityPct: Math.round(ledger.reads.availabilityPct * 1000) / 1000,
      readAvailabilityByWindow: ledger.reads.windows.map((w) => ({
        window: w.from === null ? "before the switch" : "after the switch",
        pct: Math.round(w.availabilityPct * 1000) / 1000,
        reads: w.ok + w.failed,
      })),
      objects: ledger.objects ?? null,
      replicationLagMsP99: percentile(lag, 99),
      replicationLagSamples: lag.length,
      slotsLeft: slots[0]!.n as number,
      publicationsLeft: pubs[0]!.n as number,
      verdict: ledger.verdict,
      ledger,
      ...(result.notes ? { notes: result.notes } : {}),
    };
  } finally {
    await world?.stop();
    await dropReplicationFor(MACHINE_PG, sourceName).catch(() => undefined);
    await sql(MACHINE_PG, `DROP DATABASE IF EXISTS ${sourceName} WITH (FORCE)`).catch(() => undefined);
    await target.drop().catch(() => undefined);
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      writes: { type: "string", default: "5000" },
      rate: { type: "string", default: "50" },
      orders: { type: "string", default: "20000" },
      methods: { type: "string", default: "snapshot,live" },
      jobs: { type: "string", default: "2" },
      seed: { type: "string", default: "1" },
      concurrency: { type: "string", default: "4" },
    },
  });
  const writes = Number(values.writes);
  const rate = Number(values.rate);
  const orders = Number(values.orders);
  const jobs = Number(values.jobs);
  const seed = Number(values.seed);
  const concurrency = Number(values.concurrency);
  const names = values.methods.split(",").map((m) => m.trim());
  for (const [k, v] of Object.entries({ writes, rate, orders, jobs, seed, concurrency }))
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
  const unknown = names.filter((n) => !METHODS[n]);
  if (unknown.length)
    throw new Error(`no method ${unknown.join(", ")}: choose from ${Object.keys(METHODS).join(", ")}`);

  const wal = await checkWalLevel(MACHINE_PG);
  if (!wal.logical)
    throw new Error(`the machine's PostgreSQL has wal_level=${wal.walLevel}, not logical. Run: ${wal.fix}`);
  const work = await mkdtemp(path.join(tmpdir(), "cutover-bench-live-"));
  let server: LogicalServer | undefined;
  let moto: S3Server | undefined;
  const outcomes: Record<string, MethodOutcome> = {};
  try {
    await chmod(work, 0o711); // as root, the embedded server runs as `postgres`, which must reach pg17/
    server = await startLogicalServer({ dir: path.join(work, "pg17") });
    moto = await startMoto();
    for (const name of names)
      outcomes[name] = await runMethod(name, METHODS[name]!, {
        server,
        moto,
        work,
        orders,
        writes,
        rate,
        jobs,
        seed,
        concurrency,
      });
  } finally {
    await moto?.stop();
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
  const live = outcomes.live;
  const snapshot = outcomes.snapshot;
  const targets = {
    lost: 0,
    duplicated: 0,
    writeOutageMs: 2_000,
    readAvailabilityPct: 100,
    replicationLagMsP99: 1_000,
  };
  const result = {
    benchmark: "live",
    writes,
    rate,
    orders,
    servers: { source: "the machine's PostgreSQL 15", target: `an embedded PostgreSQL ${server.version}` },
    methods: Object.fromEntries(
      Object.entries(outcomes).map(([k, o]) => {
        const { ledger, ...rest } = o;
        return [k, { ...rest, failedByReason: ledger.failedWrites.byReason, examples: ledger.examples }];
      }),
    ),
    targets,
    met: live
      ? {
          lost: live.lost === 0,
          duplicated: live.duplicated === 0,
          writes: live.acknowledged >= 5_000,
          // the rate asked is a cap; the average includes the copy before replication starts
          rate: live.achievedWritesPerSecond !== null && live.achievedWritesPerSecond >= 0.95 * rate,
          writeOutage: live.writeOutageMs !== null && live.writeOutageMs <= targets.writeOutageMs,
          reads: live.readAvailabilityPct >= targets.readAvailabilityPct,
          replicationLag:
            live.replicationLagMsP99 !== null && live.replicationLagMsP99 <= targets.replicationLagMsP99,
          noSlotLeft: live.slotsLeft === 0 && live.publicationsLeft === 0,
        }
      : null,
    // the anchor in the same run: what the snapshot method loses of the same traffic
    versusSnapshot:
      live && snapshot
        ? {
            lost: { live: live.lost, snapshot: snapshot.lost },
            objectsLost: { live: live.objects?.lost ?? null, snapshot: snapshot.objects?.lost ?? null },
          }
        : null,
    ...(live?.method === "placeholder"
      ? {
          note: 'the live method is the bench\'s raw-SQL placeholder ("method": "placeholder"), not yet the product\'s steps',
        }
      : {}),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
