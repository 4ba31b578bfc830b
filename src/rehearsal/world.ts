import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { createObjectStore, type ObjectStore } from "../cloud/object-store.js";
import { type AppServer, startAppServer } from "../sandbox/app-servers.js";
import type { CostExplorerProxy } from "../sandbox/cost-explorer-proxy.js";
import { FakeCloudflare } from "../sandbox/FakeCloudflare.js";
import { FakeHost } from "../sandbox/FakeHost.js";
import { FakeLightsail } from "../sandbox/FakeLightsail.js";
import { FakeSlack } from "../sandbox/FakeSlack.js";
import { type FakeCdn, startFakeCdn } from "../sandbox/fake-cdn.js";
import {
  createLiveShopSchema,
  grantShopApp,
  type ShopApp,
  shopAppUrl,
  startShopApp,
} from "../sandbox/live-shop.js";
import {
  checkWalLevel,
  createOwnedDatabase,
  dropReplicationFor,
  type LogicalServer,
  startLogicalServer,
} from "../sandbox/logical-server.js";
import {
  createBucket,
  S3RVER_CREDENTIALS,
  type S3Server,
  startMoto,
  startS3rver,
} from "../sandbox/s3-servers.js";
import { generateRsa } from "../sandbox/ssh-keys.js";
import { startRehearsalCostExplorer } from "./cost.js";

/**
 * The local world a rehearsal runs against: every outside service of the migration, on this
 * machine, each one the same implementation the tests use. Everything started here is stopped
 * by {@link World.stop}, in reverse order, whatever happened before.
 */

/** What the world's PostgreSQL server holds for the rehearsal. */
export interface WorldDatabases {
  /** the bot's own state (runs, approvals, audit, queue) */
  state: string;
  /** stands for Neon: the generated shop database */
  source: string;
  /**
   * stands for RDS (moto's RDS endpoints are not real servers): an empty database on a second
   * server (an embedded PostgreSQL 17 with wal_level = logical), as its superuser: a subscription
   * on PostgreSQL 16+ to the machine's trust-auth server must be created by a superuser
   */
  target: string;
  /** "the machine's PostgreSQL on 127.0.0.1:5432" or "an embedded PostgreSQL 17" */
  server: string;
  /** the target's server, in words */
  targetServer: string;
}

export interface World {
  /** this rehearsal's folder (the bot's data directory is `bot/` inside it) */
  dir: string;
  token: string;
  db: WorldDatabases;
  r2: S3Server;
  aws: { endpoint: string; own: boolean };
  /** Cost Explorer: moto seeded with the plan's bill, behind the proxy answering forecasts */
  costExplorer: CostExplorerProxy;
  lightsail: FakeLightsail;
  cloudflare: FakeCloudflare;
  slack: FakeSlack;
  host: FakeHost;
  cdn: FakeCdn;
  oldApp: AppServer;
  newApp: AppServer;
  /** the live shop: the old app over the source database (as shop_app) and the R2 bucket */
  oldShop: ShopApp;
  /** the live shop: the new app over the target database (as shop_app) and the S3 bucket */
  newShop: ShopApp;
  /** today's media host: the R2 bucket (the r2.dev public URL) */
  oldCdn: FakeCdn;
  sshKeyPath: string;
  cloudflareToken: string;
  /** the source bucket (s3rver), with write access for filling it */
  sourceStore: ObjectStore;
  /** the target bucket (moto) */
  targetStore: ObjectStore;
  sourceBucket: string;
  targetBucket: string;
  /** registers a clean-up to run at stop (newest first) */
  onStop(fn: () => Promise<unknown>): void;
  stop(): Promise<void>;
}

export const MOTO_CREDENTIALS = { accessKeyId: "testing", secretAccessKey: "testing" } as const;
/** The Pages account of migration.example.yml: the fake answers for it. */
export const PAGES_ACCOUNT = "0123456789abcdef0123456789abcdef";

const MACHINE_PG = "postgresql://postgres@127.0.0.1:5432/postgres";

async function reachable(url: string, timeoutMs: number): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function motoAnswers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint.replace(/\/$/, "")}/moto-api/`, {
      signal: AbortSignal.timeout(2_000),
    });
    return res.ok;
  } catch {
    return false;
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Every rehearsal database is named `cutover_rehearsal_p<pid>_<token>_<role>`. */
const DB_PREFIX = "cutover_rehearsal_p";

/** Drops the databases of rehearsals whose process is gone (killed before it could clean up). */
async function dropAbandoned(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
      [DB_PREFIX],
    );
    for (const { datname } of rows) {
      const pid = Number(/^cutover_rehearsal_p(\d+)_/.exec(datname)?.[1]);
      if (!pid || alive(pid)) continue;
      await client
        .query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(datname)} WITH (FORCE)`)
        .catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * An embedded PostgreSQL 17 with wal_level = logical, in a folder of its own under the system's
 * temporary directory: run as root it runs as `postgres`, which must be able to reach its data
 * directory (CUTOVER_DATA_DIR may be a private folder). Stopped and removed at stop unless kept.
 */
async function startServer(
  label: string,
  onStop: (fn: () => Promise<unknown>) => void,
  keep: boolean,
): Promise<LogicalServer> {
  const dir = await mkdtemp(path.join(tmpdir(), `cutover-rehearsal-${label}-`));
  await chmod(dir, 0o711);
  if (!keep) onStop(() => rm(dir, { recursive: true, force: true }));
  const server = await startLogicalServer({ dir });
  onStop(() => server.stop());
  return server;
}

/**
 * PostgreSQL for the rehearsal: the machine's server on 127.0.0.1:5432 when it answers (its
 * client tools, pg_dump and pg_restore, match it), otherwise an embedded PostgreSQL under the
 * rehearsal folder. Three fresh databases on it, dropped again at stop.
 */
async function startDatabases(
  token: string,
  onStop: (fn: () => Promise<unknown>) => void,
  say: (line: string) => void,
  opts: { keep: boolean; embedded: boolean },
): Promise<WorldDatabases> {
  // the target's server starts meanwhile: a second server, as RDS is to Neon
  const targetServer = startServer("target", onStop, opts.keep);
  targetServer.catch(() => undefined); // awaited below; a failure before that must not go unhandled
  const { keep } = opts;
  let adminUrl: string;
  let server: string;
  if (!opts.embedded && (await reachable(MACHINE_PG, 2_000))) {
    adminUrl = MACHINE_PG;
    server = "the machine's PostgreSQL on 127.0.0.1:5432";
    // the live cutover replicates from this server (issues 18 and 19): say plainly when it cannot
    const wal = await checkWalLevel(MACHINE_PG);
    if (!wal.logical)
      say(
        `the machine's PostgreSQL has wal_level=${wal.walLevel}, not logical: logical replication (the live cutover) cannot run from it. Run: ${wal.fix}`,
      );
  } else {
    say(
      opts.embedded
        ? "starting an embedded PostgreSQL (REHEARSAL_POSTGRES=embedded)"
        : "no PostgreSQL on 127.0.0.1:5432: starting an embedded one",
    );
    // with wal_level = logical: the source publishes to the target
    const embedded = await startServer("source", onStop, opts.keep);
    adminUrl = embedded.adminUrl;
    server = `an embedded PostgreSQL ${embedded.version}`;
  }
  await dropAbandoned(adminUrl);
  const prefix = `${DB_PREFIX}${process.pid}_${token}`;
  const names = { state: `${prefix}_state`, source: `${prefix}_source`, target: `${prefix}_target` };
  for (const name of [names.state, names.source]) {
    await adminQuery(adminUrl, `CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`);
    if (!keep)
      onStop(async () => {
        // a subscription or a slot left by a stopped run would make DROP DATABASE refuse
        await dropReplicationFor(adminUrl, name).catch(() => undefined);
        await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
  }
  const t = await targetServer;
  const target = await createOwnedDatabase(t.adminUrl, names.target);
  if (!keep) onStop(() => target.drop());
  return {
    state: withDatabase(adminUrl, names.state),
    source: withDatabase(adminUrl, names.source),
    target: target.adminUrl,
    server,
    targetServer: `an embedded PostgreSQL ${t.version} with wal_level = logical`,
  };
}

/** The zone, records and Pages project the example file switches, as they are before the migration. */
export function seedCloudflare(cf: FakeCloudflare, oldIp: string, pagesVars: Record<string, string>): void {
  cf.addZone("gogojap.com");
  cf.addRecord("gogojap.com", { name: "api.gogojap.com", type: "A", content: oldIp, ttl: 3600 });
  // today's media host; the file points it at CloudFront, and a rollback puts this back
  cf.addRecord("gogojap.com", {
    name: "cdn.gogojap.com",
    type: "CNAME",
    content: "pub-0123456789abcdef0123456789abcdef.r2.dev",
    ttl: 3600,
  });
  cf.addRecord("gogojap.com", {
    name: "gogojap.com",
    type: "CNAME",
    content: "gogojap-web.pages.dev",
    ttl: 1,
  });
  cf.addPagesProject("gogojap-web", { envVars: { ...pagesVars, NEXT_PUBLIC_SITE_NAME: "GoGoJap" } });
}

/** Starts the whole world. On any failure, what was already started is stopped again. */
export async function startWorld(opts: {
  dir: string;
  say: (line: string) => void;
  oldIp: string;
  pagesVars: Record<string, string>;
  /** leave the databases behind (for a look around afterwards) */
  keep?: boolean;
  /** use an embedded PostgreSQL even when the machine's answers */
  embeddedPostgres?: boolean;
  /** the rehearsal's calendar: Cost Explorer holds the bill of the months around it */
  now?: Date;
}): Promise<World> {
  const { dir, say } = opts;
  const token = randomBytes(3).toString("hex");
  const cleanups: Array<() => Promise<unknown>> = [];
  const onStop = (fn: () => Promise<unknown>) => {
    cleanups.push(fn);
  };
  const stop = async () => {
    while (cleanups.length) {
      const fn = cleanups.pop()!;
      await fn().catch(() => undefined);
    }
  };
  try {
    await mkdir(dir, { recursive: true });
    const sharedMoto = process.env.AWS_ENDPOINT_URL?.replace(/\/$/, "");
    const motoPromise = (async () => {
      if (sharedMoto && (await motoAnswers(sharedMoto))) return { endpoint: sharedMoto, own: false };
      const m = await startMoto();
      onStop(() => m.stop());
      return { endpoint: m.endpoint, own: true };
    })();
    const r2Promise = (async () => {
      const s = await startS3rver({ directory: path.join(dir, "r2") });
      onStop(() => s.stop());
      return s;
    })();
    const db = await startDatabases(token, onStop, say, {
      keep: opts.keep ?? false,
      embedded: opts.embeddedPostgres ?? false,
    });
    const [aws, r2] = await Promise.all([motoPromise, r2Promise]);
    const costExplorer = await startRehearsalCostExplorer(aws.endpoint, opts.now);
    onStop(() => costExplorer.close());

    const lightsail = new FakeLightsail({ pendingMs: 400 });
    await lightsail.start();
    onStop(() => lightsail.stop());

    const cloudflareToken = `cf-rehearsal-${randomBytes(8).toString("hex")}`;
    const cloudflare = new FakeCloudflare({
      apiToken: cloudflareToken,
      accountId: PAGES_ACCOUNT,
      deploymentMs: 400,
    });
    await cloudflare.start();
    onStop(() => cloudflare.stop());
    seedCloudflare(cloudflare, opts.oldIp, opts.pagesVars);

    const slack = new FakeSlack();
    await slack.start();
    onStop(() => slack.stop());

    // the key pair of the Lightsail instance: imported by lightsail.instance, accepted by the host
    // RSA: Lightsail's ImportKeyPair takes ssh-rsa public keys only
    const pair = generateRsa();
    const sshKeyPath = path.join(dir, "lightsail_rsa");
    await writeFile(sshKeyPath, pair.private, { mode: 0o600 });
    await chmod(sshKeyPath, 0o600);
    await writeFile(`${sshKeyPath}.pub`, `${pair.public}\n`);
    const host = new FakeHost({ authorizedKeys: [pair.public], users: ["ubuntu"] });
    await host.start();
    onStop(() => host.stop());

    const oldApp = await startAppServer({ name: "old (Zeabur)" });
    onStop(() => oldApp.stop());
    const newApp = await startAppServer({ name: "new (Lightsail)" });
    onStop(() => newApp.stop());

    const suffix = aws.own ? "" : `-${token}`;
    const sourceBucket = "gogojap-media";
    const targetBucket = `gogojap-media${suffix}`;
    await createBucket(r2.endpoint, sourceBucket, "us-east-1", S3RVER_CREDENTIALS);
    const sourceStore = createObjectStore({
      side: "source",
      provider: "R2",
      bucket: sourceBucket,
      region: "us-east-1",
      endpoint: r2.endpoint,
      credentials: { ...S3RVER_CREDENTIALS },
      credentialSource: "S3RVER",
      writeChecksums: false,
    });
    const targetStore = createObjectStore({
      side: "target",
      provider: "S3",
      bucket: targetBucket,
      region: "ap-southeast-1",
      endpoint: aws.endpoint,
      credentials: { ...MOTO_CREDENTIALS },
      credentialSource: "rehearsal keys",
    });
    onStop(async () => {
      sourceStore.destroy();
      targetStore.destroy();
    });
    // CloudFront: the S3 bucket, R2 as the failover origin (403/404) for what is not copied yet
    const cdn = await startFakeCdn(targetStore, { failover: sourceStore });
    onStop(() => cdn.close());
    const oldCdn = await startFakeCdn(sourceStore);
    onStop(() => oldCdn.close());
    // the live shop: created on the source before the copy; the target gets its grants after the restore
    await createLiveShopSchema(db.source);
    await grantShopApp(db.source);
    const oldShop = await startShopApp({
      name: "old",
      databaseUrl: shopAppUrl(db.source),
      store: sourceStore,
    });
    onStop(() => oldShop.stop());
    const newShop = await startShopApp({
      name: "new",
      databaseUrl: shopAppUrl(db.target),
      store: targetStore,
    });
    onStop(() => newShop.stop());

    return {
      dir,
      token,
      db,
      r2,
      aws,
      costExplorer,
      lightsail,
      cloudflare,
      slack,
      host,
      cdn,
      oldCdn,
      oldApp,
      newApp,
      oldShop,
      newShop,
      sshKeyPath,
      cloudflareToken,
      sourceStore,
      targetStore,
      sourceBucket,
      targetBucket,
      onStop,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Removes what the rehearsal left on disk that is not worth keeping (dumps, buckets, servers). */
export async function removeBulk(dir: string): Promise<void> {
  for (const sub of ["r2", "world", "bot/dumps", "bot/postgres"]) {
    await rm(path.join(dir, sub), { recursive: true, force: true });
  }
}
