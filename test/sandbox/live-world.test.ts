import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkObjects,
  createLiveShopSchema,
  ledgerReport,
  SHOP_APP_ROLE,
  setShopAppWrites,
  shopAppUrl,
} from "../../src/sandbox/live-shop.js";
import { type LiveWorld, startLiveWorld } from "../../src/sandbox/live-world.js";
import { createEmptyDatabase, databaseUrl, queryOnce, type TestDatabase } from "../helpers/db.js";
import { type MotoHandle, useMoto } from "../helpers/moto.js";
import { waitUntil } from "../helpers/wait.js";

/*
 * The live shop's world (issues 18 and 19): the apps write as a role that is not a superuser, so
 * a freeze by REVOKE refuses their writes while reads go on; uploads go through the app to its
 * bucket and are read through the CDN, whose origin failover serves objects not yet copied; the
 * ledger reports the outage and the read availability per switch and the objects per side.
 */

let source: TestDatabase;
let target: TestDatabase;
let moto: MotoHandle;
let world: LiveWorld;

beforeAll(async () => {
  [source, target, moto] = await Promise.all([
    createEmptyDatabase("lw_src"),
    createEmptyDatabase("lw_dst"),
    useMoto(),
  ]);
  world = await startLiveWorld({
    source: { url: source.url, adminUrl: source.url },
    target: { url: target.url, adminUrl: target.url },
    awsEndpoint: moto.endpoint,
  });
  // the target's tables as a copy would bring them, then the app's grants there
  await createLiveShopSchema(target.url);
  await world.grantTarget();
}, 60_000);

afterAll(async () => {
  await world?.stop();
  await moto?.stop();
  await source?.drop();
  await target?.drop();
});

describe("the live world", () => {
  it("runs the apps as a role that is no superuser and owns nothing", async () => {
    expect(new URL(shopAppUrl(source.url)).username).toBe(SHOP_APP_ROLE);
    const [role] = await queryOnce<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>(
      databaseUrl("postgres"),
      "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
      [SHOP_APP_ROLE],
    );
    expect(role).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false });
    for (const db of [source, target]) {
      const owned = await queryOnce<{ n: string }>(
        db.url,
        "SELECT count(*) AS n FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)",
        [SHOP_APP_ROLE],
      );
      expect(owned[0]!.n).toBe("0");
    }
  });

  it("freezes writes by REVOKE with reads going on, switches with CDN failover, and reports it per switch", async () => {
    const traffic = world.startTraffic({ writesPerSecond: 50, seed: 5, media: { share: 0.3 } });
    await traffic.acknowledged(60);
    const uploadsBefore = traffic.log.acked.filter((w) => w.kind === "upload").length;
    expect(uploadsBefore).toBeGreaterThan(0);

    // the freeze: the old app's writes are refused at once, with the reason; its reads still answer
    const frozenAt = Date.now();
    await setShopAppWrites(source.url, false);
    const failedBefore = traffic.log.failed.length;
    const readsBefore = traffic.log.readEvents.length;
    await waitUntil(
      "writes refused by the frozen source, and reads after the freeze",
      () =>
        traffic.log.failed.filter((f) => f.kind !== "read").length >= failedBefore + 8 &&
        traffic.log.readEvents.length >= readsBefore + 8,
    );
    // while frozen, the rows move (here a data-only dump: the snapshot method at its smallest)
    await copyShopRows(source.url, target.url);
    // the new CDN becomes an origin group (old bucket secondary), then DNS moves
    world.newCdn.setFailover(world.sourceStore);
    const switchedAt = world.switchTo("new");
    const acked = traffic.log.acked.length;
    await traffic.acknowledged(acked + 60);
    const log = await traffic.stop();

    const refused = log.failed.filter((f) => f.kind !== "read");
    expect(refused.length).toBeGreaterThanOrEqual(8);
    for (const f of refused) {
      expect(f.app).toBe("old");
      expect(f.at).toBeGreaterThanOrEqual(frozenAt - 100);
      // the database's own reason: an order or a payment refuses on its table, an upload does not fail
      expect(f.error).toMatch(/permission denied for table live_order/);
    }
    // nothing acknowledged on the old app once the freeze held
    const lastRefused = Math.min(...refused.map((f) => f.at));
    expect(log.acked.filter((w) => w.app === "old" && w.kind !== "upload" && w.at > lastRefused)).toEqual([]);

    // objects: the old app's uploads are not in the target bucket yet; reads of them after the
    // switch were served by the old bucket through the failover
    expect(world.newCdn.stats().failovers).toBeGreaterThan(0);
    const before = await checkObjects(log, world.targetStore);
    const oldUploads = log.acked.filter((w) => w.kind === "upload" && w.app === "old").length;
    expect(before.bySide.old).toEqual({ acknowledged: oldUploads, lost: oldUploads });
    expect(before.bySide.new?.lost).toBe(0);
    expect(before.bySide.new?.acknowledged).toBeGreaterThan(0);
    // copy the old bucket's uploads over (as the post-switch sync does): nothing lost, nothing extra
    for (let token: string | undefined, first = true; first || token; first = false) {
      const page = await world.sourceStore.listPage({ prefix: "media/", ...(token ? { token } : {}) });
      for (const o of page.objects) {
        const { head, body } = await world.sourceStore.get(o.key);
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c as Buffer);
        await world.targetStore.put(o.key, Buffer.concat(chunks), o.size, { ...head, metadata: {} });
      }
      token = page.nextToken;
    }
    const after = await checkObjects(log, world.targetStore);
    expect(after.lost).toEqual([]);
    expect(after.extra).toEqual([]);
    expect(after.acknowledged).toBe(log.acked.filter((w) => w.kind === "upload").length);

    // the report: one switch, its outage from the last write the old app took to the new app's first
    const report = await ledgerReport(log, {
      databaseUrl: target.url,
      store: world.targetStore,
      switches: [switchedAt],
    });
    // frozen, copied, switched: every acknowledged write on the target once, every upload there
    expect(report.verdict).toBe("passed");
    expect([report.lost, report.duplicated, report.misapplied, report.objects?.lost]).toEqual([0, 0, 0, 0]);
    const s = report.switches[0]!;
    expect(s.lastAckBefore).toBeLessThanOrEqual(frozenAt + 200);
    expect(s.firstAckAfter).toBeGreaterThanOrEqual(switchedAt);
    expect(s.writeOutageMs).toBe(s.firstAckAfter! - s.lastAckBefore!);
    expect(s.writeOutageMs).toBeGreaterThanOrEqual(switchedAt - frozenAt - 200);
    expect(s.failedWrites).toBe(refused.length);
    expect(Object.keys(report.failedWrites.byReason).join(" ")).toMatch(/old: permission denied for table/);
    // reads: 100 % in both windows (before and after the switch), media reads included
    expect(report.reads.windows).toHaveLength(2);
    for (const w of report.reads.windows) {
      expect(w.failed).toBe(0);
      expect(w.ok).toBeGreaterThan(0);
      expect(w.availabilityPct).toBe(100);
    }
    expect(log.readEvents.some((r) => r.what === "media" && r.at >= switchedAt)).toBe(true);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);

    // failover off: an object only the old bucket held is refused by the new CDN as CloudFront would
    world.newCdn.setFailover(undefined);
    world.newCdn.invalidate();
    const key = `media/only-old/${Date.now()}.jpg`;
    await world.sourceStore.put(key, Buffer.from("old"), 3, { metadata: {} });
    expect((await fetch(`${world.newCdn.url}/${key}`)).status).toBe(403);
    world.newCdn.setFailover(world.sourceStore);
    const res = await fetch(`${world.newCdn.url}/${key}`);
    expect([res.status, res.headers.get("x-cutover-origin"), await res.text()]).toEqual([
      200,
      "secondary",
      "old",
    ]);

    // the thaw gives the old app its writes back
    await setShopAppWrites(source.url, true);
    const put = await fetch(`${world.oldApp.url}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ref: crypto.randomUUID(), customer: "c", lines: [{ sku: "s", qty: 1 }] }),
    });
    expect(put.status).toBe(201);
  }, 90_000);
});

/** The shop's rows and sequences from one database into another on the machine's server. */
async function copyShopRows(from: string, to: string): Promise<void> {
  const sh = promisify(execFile);
  await sh("sh", [
    "-c",
    'pg_dump --data-only -t live_orders -t live_order_lines "$1" | psql -q -v ON_ERROR_STOP=1 "$2"',
    "copy",
    from,
    to,
  ]);
}
