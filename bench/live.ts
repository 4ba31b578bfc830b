import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { CloudFrontSchema, S3Schema } from "../src/config/schema.js";
import { type LiveDeps, rollbackDatabase, switchDatabase } from "../src/jobs/cutover/live.js";
import { copyUploadsBack } from "../src/jobs/cutover/objects-back.js";
import { createDbSteps } from "../src/jobs/steps/db/index.js";
import { desiredDistribution } from "../src/jobs/steps/storage/bucket.js";
import { followDistribution } from "../src/sandbox/fake-cdn.js";
import { type LedgerReport, ledgerReport, SHOP_APP_ROLE, type Traffic } from "../src/sandbox/live-shop.js";
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
import { createPrismaClient } from "../src/store/client.js";
import { applyMigrations } from "../src/store/migrate.js";
import { dbStepDeps, runDbStep } from "./_db-steps.js";

/**
 * `npm run bench -- live [--writes 5000] [--rate 50] [--orders 20000] [--methods snapshot,live]
 * [--jobs 2] [--seed 1] [--concurrency 4] [--objects failover|sync] [--static-rows 0]
 * [--switch-verify changed|all]`: the same data (a shop database of `--orders` orders) and the same
 * traffic (`--rate` writes/s at most, from `--concurrency` customers at once, until `--writes`
 * writes were acknowledged: orders, payments, cancellations, uploads, with reads after each) through
 *   (a) the snapshot method: the product's own db.dump + db.restore while the shop writes, one
 *       object sync, then the switch (what Cutover does today);
 *   (b) the live method: {@link productMethod}, Cutover's own live cutover, rollback drill and
 *       cutover again (db.dump on a replication slot, db.restore, db.replicate, switchDatabase,
 *       rollbackDatabase, copyUploadsBack), reported as `"method": "product"`.
 * Source: the machine's PostgreSQL 15; target: an embedded PostgreSQL 17 (wal_level = logical),
 * as Neon and RDS differ. Prints one JSON object: lost, duplicated, misapplied, failed writes,
 * write outage at the switch, read availability, objects, replication lag p99, slots left, and
 * the targets met or not. Progress on stderr.
 */

const say = (msg: string) => process.stderr.write(`[bench live] ${msg}\n`);
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
  /** the product's live sequences over this pair (the replication-enabled method only) */
  live(): LiveDeps | undefined;
  /**
   * how uploads not yet copied are served after a switch: `failover` (the distribution's origin
   * group, S3 then the old bucket on 403/404, until the post-switch sync is done) or `sync` (only
   * the incremental sync after the switch)
   */
  objects: "failover" | "sync";
}

/** The old bucket's public host, as the distribution's failover origin names it. */
const OLD_BUCKET_HOST = "media.old-shop.example";

/**
 * Puts the new CDN in the state the product's s3.bucket step gives the distribution: with
 * `target.cloudfront.originFailover` on (after the switch, until the post-switch sync is done)
 * or off. The configuration is the product's own (desiredDistribution); the fake CDN follows it.
 */
function cdnFailover(world: LiveWorld, on: boolean): void {
  const config = desiredDistribution(
    CloudFrontSchema.parse({ originFailover: on }),
    S3Schema.parse({ bucket: "bench-media", region: "ap-southeast-1" }),
    undefined,
    on ? { domain: OLD_BUCKET_HOST, path: "" } : undefined,
  );
  followDistribution(world.newCdn, config, { [OLD_BUCKET_HOST]: world.sourceStore });
}

/** What a method reports; the bench adds the ledger's verdict. */
export interface LiveMethodResult {
  /** "snapshot" (db.dump + db.restore, then the switch) or "product" (Cutover's live cutover) */
  method: "snapshot" | "product";
  /** when DNS moved the traffic to the new app (epoch ms) */
  switchedAt: number;
  /** when the source's writes were frozen, if they were */
  frozenAt?: number;
  /** replication lag samples (ms), where measurable */
  lagSamplesMs?: number[];
  /** the objects copied after the switch, if any */
  objectsCopiedAfterSwitch?: number;
  /** every switch of the traffic (cutover, rollback, cutover again), epoch ms; default [switchedAt] */
  switches?: number[];
  /** what Cutover itself measured at each switch (write outage, drain, verify) */
  cutoverMeasured?: Array<Record<string, unknown>>;
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
 * (b) The product's live cutover and way back: db.dump takes its snapshot from the replication slot
 * it creates, db.restore, db.replicate; then at a third of the writes the live switch
 * (switchDatabase: freeze, drain, sequences, verify, replication turned around, target open) and
 * DNS; at 60 % the rollback drill (rollbackDatabase: the target frozen, reverse replication drained,
 * DNS back, the source open) with the uploads made on AWS copied back (copyUploadsBack); at 80 % the
 * cutover again, on forward replication restarted without a copy. Objects uploaded on the old side
 * reach the new bucket after each switch while the CDN's origin failover serves them from the old one.
 */
export const productMethod: LiveMethod = async (world, traffic, hooks) => {
  const live = hooks.live();
  if (!live) throw new Error("the product method needs the replication-enabled step deps");
  const ctx = () => {
    const store = new Map<string, unknown>();
    return {
      checkpoint: {
        get: async <T>(k: string) => store.get(k) as T | undefined,
        set: async (k: string, v: unknown) => {
          store.set(k, structuredClone(v));
        },
      },
      signal: new AbortController().signal,
      progress: () => undefined,
      actor: "bench",
      runId: null,
    };
  };
  await traffic.acknowledged(Math.round(hooks.writes * 0.1));
  hooks.log(
    "product: db.dump (slot + exported snapshot) + db.restore while the shop writes, then db.replicate",
  );
  await hooks.runDbStep("db.dump", { jobs: hooks.jobs });
  await hooks.runDbStep("db.restore", { jobs: hooks.jobs });
  await world.grantTarget();
  await hooks.runDbStep("db.replicate");
  const synced = await hooks.copyMissingObjects(); // the data phase's storage sync
  hooks.log(`product: replicating; ${synced} objects synced`);
  const probe = hooks.startLagProbe();
  await traffic.acknowledged(Math.round(hooks.writes * 0.35));
  const lagSamplesMs = await probe.stop();

  const failover = hooks.objects === "failover";
  const first = await switchDatabase(live, ctx());
  cdnFailover(world, failover);
  const sw1 = world.switchTo("new");
  const copied1 = await hooks.copyMissingObjects();
  cdnFailover(world, false); // the post-switch sync is done: s3.bucket with originFailover: false
  hooks.log(
    `product: switched, write outage ${first.figures.writeOutageMs} ms at the database; ${copied1} objects copied after`,
  );
  await traffic.acknowledged(Math.round(hooks.writes * 0.6));

  let sw2 = 0;
  const back = await rollbackDatabase(live, {
    actor: "bench",
    signal: AbortSignal.timeout(120_000),
    beforeOpen: async () => {
      sw2 = world.switchTo("old");
    },
  });
  if (!back.lossless) throw new Error(`the rollback was not lossless: ${JSON.stringify(back.items)}`);
  const objectsBack = await copyUploadsBack(live.step, new Date(sw1), AbortSignal.timeout(120_000), {
    source: world.sourceStore,
    target: world.targetStore,
  });
  hooks.log(
    `product: rolled back, write outage ${back.writeOutageMs} ms; ${objectsBack.copied} uploads copied back`,
  );
  await traffic.acknowledged(Math.round(hooks.writes * 0.8));

  const again = await switchDatabase(live, ctx());
  cdnFailover(world, failover);
  const sw3 = world.switchTo("new");
  const copied3 = await hooks.copyMissingObjects();
  cdnFailover(world, false);
  hooks.log(`product: switched again, write outage ${again.figures.writeOutageMs} ms`);
  return {
    method: "product",
    switchedAt: sw3,
    switches: [sw1, sw2, sw3],
    frozenAt: again.frozenAt!,
    lagSamplesMs,
    objectsCopiedAfterSwitch: copied1 + copied3,
    cutoverMeasured: [
      { switch: "cutover", ...first.figures },
      {
        switch: "rollback",
        writeOutageMs: back.writeOutageMs ?? null,
        drainMs: back.drainMs ?? null,
        objectsBack: objectsBack.copied,
      },
      { switch: "cutover again", ...again.figures },
    ],
  };
};

const METHODS: Record<string, LiveMethod> = { snapshot: snapshotMethod, live: productMethod };

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
async function seedSource(url: string, orders: number, staticRows: number): Promise<void> {
  await sql(
    url,
    `CREATE TABLE bench_heartbeat (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
     -- a catalogue the traffic never writes: what the switch's verify of the changed tables skips
     CREATE TABLE bench_catalogue (id bigserial PRIMARY KEY, sku text NOT NULL, description text NOT NULL, price numeric(10,2) NOT NULL);
     INSERT INTO bench_catalogue (sku, description, price)
       SELECT 'sku-' || g, repeat(md5(g::text), 4), (g % 10000) / 100.0 FROM generate_series(1, ${Math.floor(staticRows)}) g;
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
  /** the longest write outage of all the switches, as the traffic saw it */
  writeOutageMs: number | null;
  writeOutagesMs: Array<number | null>;
  cutoverMeasured?: Array<Record<string, unknown>>;
  teardown?: Record<string, unknown>;
  frozenToSwitchMs: number | null;
  readAvailabilityPct: number;
  readAvailabilityByWindow: Array<{ window: string; pct: number; reads: number }>;
  objects: LedgerReport["objects"] | null;
  replicationLagMsP99: number | null;
  replicationLagSamples: number;
  replicationObjectsLeftOnSource: number;
  replicationObjectsLeftOnTarget: number;
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
    objects: "failover" | "sync";
    staticRows: number;
    switchVerify: "changed" | "all";
  },
): Promise<MethodOutcome> {
  const tag = `${name}_${Date.now().toString(36)}`;
  const sourceName = `bench_live_src_${tag}`;
  await sql(MACHINE_PG, `CREATE DATABASE ${sourceName} TEMPLATE template0`);
  const sourceUrl = withDatabase(MACHINE_PG, sourceName);
  const target = await createOwnedDatabase(opts.server.adminUrl, `bench_live_dst_${tag}`);
  const stateName = `bench_live_state_${tag}`;
  let closeState: (() => Promise<void>) | undefined;
  let world: LiveWorld | undefined;
  try {
    world = await startLiveWorld({
      source: { url: sourceUrl, adminUrl: sourceUrl },
      target: { url: target.url, adminUrl: target.adminUrl },
      awsEndpoint: opts.moto.endpoint,
    });
    await seedSource(sourceUrl, opts.orders, opts.staticRows);
    const w = world;
    // the product's live method runs with the file's replication section and a state database
    // (the freezes are recorded in its audit trail); Cutover's target role is the server's admin
    const isLive = method === productMethod;
    const stepDeps = dbStepDeps({
      sourceUrl,
      targetUrl: isLive ? target.adminUrl : target.url,
      dataDir: path.join(opts.work, tag),
      jobs: opts.jobs,
      engineVersion: "17",
      ...(isLive ? { replication: { appRole: SHOP_APP_ROLE, environment: `bench_${tag}` } } : {}),
    });
    if (stepDeps.file.replication) stepDeps.file.replication.switchVerify = opts.switchVerify;
    let live: LiveDeps | undefined;
    if (isLive) {
      await sql(MACHINE_PG, `CREATE DATABASE ${stateName} TEMPLATE template0`);
      const stateUrl = withDatabase(MACHINE_PG, stateName);
      await applyMigrations(stateUrl);
      const db = createPrismaClient(stateUrl);
      closeState = () => db.$disconnect();
      live = { step: { ...stepDeps, db }, db, now: () => new Date() };
    }
    const steps = new Map(createDbSteps(stepDeps).map((s) => [s.type, s]));
    const hooks: LiveMethodHooks = {
      log: say,
      objects: opts.objects,
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
      live: () => live,
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
      switches: result.switches ?? [result.switchedAt],
    });
    // the live method leaves reverse replication running (the way back); the teardown step ends it
    const reverseAtEnd = isLive ? await hooks.runDbStep("db.replication-teardown") : null;
    const count = async (adminUrl: string, db: string, url: string) => {
      const slotRows = await sql(
        adminUrl,
        "SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = $1",
        [db],
      );
      const pubRows = await sql(url, "SELECT count(*)::int AS n FROM pg_publication");
      const subRows = await sql(
        url,
        "SELECT count(*)::int AS n FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
      );
      return (slotRows[0]!.n as number) + (pubRows[0]!.n as number) + (subRows[0]!.n as number);
    };
    const slots = [{ n: await count(MACHINE_PG, sourceName, sourceUrl) }];
    const pubs = [{ n: await count(opts.server.adminUrl, target.name, target.adminUrl) }];
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
      writeOutageMs: ledger.switches.some((x) => x.writeOutageMs !== null)
        ? Math.max(...ledger.switches.map((x) => x.writeOutageMs ?? 0))
        : (s?.writeOutageMs ?? null),
      writeOutagesMs: ledger.switches.map((x) => x.writeOutageMs),
      ...(result.cutoverMeasured ? { cutoverMeasured: result.cutoverMeasured } : {}),
      ...(reverseAtEnd ? { teardown: reverseAtEnd } : {}),
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
      replicationObjectsLeftOnSource: slots[0]!.n as number,
      replicationObjectsLeftOnTarget: pubs[0]!.n as number,
      verdict: ledger.verdict,
      ledger,
      ...(result.notes ? { notes: result.notes } : {}),
    };
  } finally {
    await world?.stop();
    await closeState?.().catch(() => undefined);
    await sql(MACHINE_PG, `DROP DATABASE IF EXISTS ${stateName} WITH (FORCE)`).catch(() => undefined);
    await dropReplicationFor(opts.server.adminUrl, target.name).catch(() => undefined);
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
      objects: { type: "string", default: "failover" },
      "static-rows": { type: "string", default: "0" },
      "switch-verify": { type: "string", default: "changed" },
    },
  });
  const staticRows = Number(values["static-rows"]);
  if (!Number.isInteger(staticRows) || staticRows < 0)
    throw new Error("--static-rows must be a whole number");
  const switchVerify = values["switch-verify"];
  if (switchVerify !== "changed" && switchVerify !== "all")
    throw new Error(`--switch-verify must be changed or all, not ${switchVerify}`);
  const objects = values.objects;
  if (objects !== "failover" && objects !== "sync")
    throw new Error(`--objects must be failover or sync, not ${objects}`);
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
        objects,
        staticRows,
        switchVerify,
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
    objects,
    staticRows,
    switchVerify,
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
          noSlotLeft: live.replicationObjectsLeftOnSource === 0 && live.replicationObjectsLeftOnTarget === 0,
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
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
