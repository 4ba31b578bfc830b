import { randomBytes } from "node:crypto";
import { createObjectStore, type ObjectStore } from "../cloud/object-store.js";
import { type FakeCdn, startFakeCdn } from "./fake-cdn.js";
import {
  createLiveShopSchema,
  grantShopApp,
  type ShopApp,
  shopAppUrl,
  startShopApp,
  startTraffic,
  type Traffic,
  type TrafficMedia,
} from "./live-shop.js";
import { createBucket, S3RVER_CREDENTIALS, type S3Server, startMoto, startS3rver } from "./s3-servers.js";

/*
 * The live shop's whole world for a test, the rehearsal or `npm run bench -- live`: the old app
 * over the source database and the source bucket (s3rver, as R2) behind the old media host, the
 * new app over the target database and the target bucket (moto, as S3) behind CloudFront (the
 * fake CDN, origin failover to the old bucket when turned on), and "DNS": which app and which
 * media host customers reach right now.
 */

/** One database of the live world: `url` for the owner (schema, copy), `adminUrl` a superuser there. */
export interface LiveDatabase {
  url: string;
  adminUrl: string;
}

export interface LiveWorld {
  source: LiveDatabase;
  target: LiveDatabase;
  /** the old app: source database (as {@link SHOP_APP_ROLE}) and the source bucket */
  oldApp: ShopApp;
  /** the new app: target database (as the app role) and the target bucket */
  newApp: ShopApp;
  sourceStore: ObjectStore;
  targetStore: ObjectStore;
  /** the old media host: the source bucket */
  oldCdn: FakeCdn;
  /** CloudFront: the target bucket; `setFailover(sourceStore)` makes it an origin group */
  newCdn: FakeCdn;
  /** what customers reach now */
  readonly dns: { app: ShopApp; cdn: FakeCdn };
  /** points DNS (app and media host) at one side; returns the moment (epoch ms) */
  switchTo(side: "old" | "new"): number;
  /** the shop's traffic through whatever DNS answers at each request, uploads included */
  startTraffic(opts?: {
    writesPerSecond?: number;
    seed?: number;
    concurrency?: number;
    media?: Partial<TrafficMedia>;
  }): Traffic;
  /** grants the app role on the target: call once the target has the shop's tables */
  grantTarget(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the live world over two databases. Creates the shop's tables on the source (not on the
 * target: the copy brings them) and the app role there; starts s3rver, and moto unless
 * `awsEndpoint` names a running one (buckets of random names, so a shared moto is fine).
 *
 * @example
 * const world = await startLiveWorld({ source, target, awsEndpoint: moto.endpoint });
 * const traffic = world.startTraffic({ writesPerSecond: 50 });
 * // … copy, freeze, world.switchTo("new") …
 * const report = await ledgerReport(await traffic.stop(), { databaseUrl: target.url, store: world.targetStore });
 */
export async function startLiveWorld(opts: {
  source: LiveDatabase;
  target: LiveDatabase;
  awsEndpoint?: string;
}): Promise<LiveWorld> {
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const fn of stops.reverse()) await fn().catch(() => undefined);
    stops.length = 0;
  };
  try {
    await createLiveShopSchema(opts.source.url);
    await grantShopApp(opts.source.adminUrl);
    const r2: S3Server = await startS3rver();
    stops.push(() => r2.stop());
    let awsEndpoint = opts.awsEndpoint;
    if (!awsEndpoint) {
      const moto = await startMoto();
      stops.push(() => moto.stop());
      awsEndpoint = moto.endpoint;
    }
    const suffix = randomBytes(4).toString("hex");
    const sourceBucket = `shop-media-${suffix}`;
    const targetBucket = `shop-media-aws-${suffix}`;
    const r2Credentials = { ...S3RVER_CREDENTIALS };
    const awsCredentials = { accessKeyId: "testing", secretAccessKey: "testing" };
    await createBucket(r2.endpoint, sourceBucket, "us-east-1", r2Credentials);
    await createBucket(awsEndpoint, targetBucket, "us-east-1", awsCredentials);
    const sourceStore = createObjectStore({
      side: "source",
      provider: "R2",
      bucket: sourceBucket,
      region: "us-east-1",
      endpoint: r2.endpoint,
      credentials: r2Credentials,
      credentialSource: "S3RVER",
      forcePathStyle: true,
      writeChecksums: false,
    });
    const targetStore = createObjectStore({
      side: "target",
      provider: "S3",
      bucket: targetBucket,
      region: "us-east-1",
      endpoint: awsEndpoint,
      credentials: awsCredentials,
      credentialSource: "moto test keys",
      forcePathStyle: true,
    });
    stops.push(async () => {
      sourceStore.destroy();
      targetStore.destroy();
    });
    const oldCdn = await startFakeCdn(sourceStore);
    stops.push(() => oldCdn.close());
    const newCdn = await startFakeCdn(targetStore);
    stops.push(() => newCdn.close());
    const oldApp = await startShopApp({
      name: "old",
      databaseUrl: shopAppUrl(opts.source.adminUrl),
      store: sourceStore,
    });
    stops.push(() => oldApp.stop());
    const newApp = await startShopApp({
      name: "new",
      databaseUrl: shopAppUrl(opts.target.adminUrl),
      store: targetStore,
    });
    stops.push(() => newApp.stop());
    const dns = { app: oldApp, cdn: oldCdn };
    return {
      source: opts.source,
      target: opts.target,
      oldApp,
      newApp,
      sourceStore,
      targetStore,
      oldCdn,
      newCdn,
      dns,
      switchTo(side) {
        const at = Date.now();
        dns.app = side === "new" ? newApp : oldApp;
        dns.cdn = side === "new" ? newCdn : oldCdn;
        return at;
      },
      startTraffic(t = {}) {
        return startTraffic({
          route: () => dns.app,
          ...(t.writesPerSecond === undefined ? {} : { writesPerSecond: t.writesPerSecond }),
          ...(t.seed === undefined ? {} : { seed: t.seed }),
          ...(t.concurrency === undefined ? {} : { concurrency: t.concurrency }),
          media: { cdn: () => dns.cdn.url, ...t.media },
        });
      },
      grantTarget: () => grantShopApp(opts.target.adminUrl),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
