import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { changedTables, replicationNames } from "../../../src/cloud/replication.js";
import {
  activeFreeze,
  type LiveDeps,
  livePreChecks,
  rollbackDatabase,
  switchDatabase,
  unwindSwitch,
} from "../../../src/jobs/cutover/live.js";
import { inventory } from "../../../src/jobs/steps/db/replicate.js";
import { watchReplicationOnce } from "../../../src/kpi/replication-watch.js";
import { checkLedger, type ShopApp, startShopApp, startTraffic } from "../../../src/sandbox/live-shop.js";
import type { Db } from "../../../src/store/client.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { createLiveSetup, type LiveSetup, sql } from "./live-setup.js";

/*
 * The live cutover and the lossless way back, on real servers, with customers writing the whole
 * time through whichever app "DNS" names: cutover → rollback → cutover again. Every acknowledged
 * write must be on the side the traffic ends on, exactly once; no slot may be left behind.
 */

let setup: LiveSetup;
let source: { url: string };
let target: { url: string };
let db: Db;
let live: LiveDeps;
let env: string;
const apps: ShopApp[] = [];
const asRole = (url: string) => setup.asRole(url);
const liveCtx = () => setup.ctx();
const liveCtxStep = () => makeStepContext();

beforeAll(async () => {
  setup = await createLiveSetup("lv");
  ({ source, target, db, live, env } = setup);
}, 120_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await setup?.drop();
});

describe("live cutover", () => {
  it("cutover → rollback → cutover with customers writing: nothing lost, nothing doubled, no slot left", async () => {
    expect((await livePreChecks(live)).filter((c) => !c.ok)).toEqual([]);
    const oldApp = await startShopApp({ name: "old", databaseUrl: asRole(source.url) });
    const newApp = await startShopApp({ name: "new", databaseUrl: asRole(target.url) });
    apps.push(oldApp, newApp);
    let dns = oldApp;
    const traffic = startTraffic({ route: () => dns, writesPerSecond: 60, seed: 5 });
    await traffic.acknowledged(60);

    // 1. the switch: the database first, then "DNS"
    const first = await switchDatabase(live, liveCtx());
    dns = newApp;
    expect(first.stages).toContain("open the target");
    expect(first.figures.writeOutageMs).toBeGreaterThan(0);
    // db.replicate kept the target's counters with the subscription: the verify while frozen
    // read the tables the shop wrote since, not every table
    expect(first.figures.verifyScope).toMatch(/^the \d+ tables? replication changed$/);
    expect(await activeFreeze(db, env, "source")).not.toBeNull();
    expect(await activeFreeze(db, env, "target")).toBeNull();
    // the old app is frozen for writes but still reads
    await expect(
      sql(asRole(source.url), "INSERT INTO live_orders (ref, customer) VALUES (gen_random_uuid(), 'x')"),
    ).rejects.toThrow(/permission denied/);
    expect(
      (await sql<{ n: number }>(asRole(source.url), "SELECT count(*)::int AS n FROM live_orders"))[0]!.n,
    ).toBeGreaterThan(0);
    await traffic.acknowledged(traffic.log.acked.length + 60);

    // 2. the way back: the orders placed on the new stack come home
    const back = await rollbackDatabase(live, {
      actor: "U0OPERATOR",
      signal: AbortSignal.timeout(60_000),
      beforeOpen: async () => {
        dns = oldApp;
      },
    });
    expect(back.lossless, JSON.stringify(back.items)).toBe(true);
    expect(await activeFreeze(db, env, "source")).toBeNull();
    expect(await activeFreeze(db, env, "target")).not.toBeNull();
    await traffic.acknowledged(traffic.log.acked.length + 60);

    // 3. cutover again: forward replication resumed without a copy
    const again = await switchDatabase(live, liveCtx());
    dns = newApp;
    expect(again.stages).toContain("open the target");
    // forward replication restarted by the rollback kept its own starting counters
    expect(again.figures.verifyScope).toMatch(/^the \d+ tables? replication changed$/);
    expect(again.figures.verifiedTables).toBeGreaterThan(0);
    await traffic.acknowledged(traffic.log.acked.length + 60);
    const log = await traffic.stop();

    const ledger = await checkLedger(log, target.url);
    expect(ledger.acknowledged).toBeGreaterThanOrEqual(240);
    expect(ledger.lost).toEqual([]);
    expect(ledger.duplicated).toEqual([]);
    expect(ledger.misapplied).toEqual([]);
    expect(ledger.readAvailabilityPct).toBe(100);
    // the source, still receiving the reverse stream, holds the same orders
    const onSource = await checkLedger(log, source.url);
    await expect
      .poll(async () => (await checkLedger(log, source.url)).lost.length, { timeout: 15_000 })
      .toBe(0);
    expect(onSource.duplicated).toEqual([]);

    // what remains is the reverse replication, listed; the teardown leaves nothing
    const left = await inventory(live.step, { connectTimeoutSeconds: 10 });
    expect(left.map((l) => `${l.kind} ${l.name} ${l.side}`).sort()).toEqual(
      [
        `publication ${replicationNames(env, "rev").publication} target`,
        `slot ${replicationNames(env, "rev").slot} target`,
        `subscription ${replicationNames(env, "rev").subscription} source`,
      ].sort(),
    );
  }, 180_000);

  it("a switch refused before the freeze changes nothing; one that fails after it gives the source back", async () => {
    // state after the first test: live on the target, reverse replication running. Roll back first.
    const back = await rollbackDatabase(live, { actor: "U0OPERATOR", signal: AbortSignal.timeout(60_000) });
    expect(back.lossless).toBe(true);
    // a schema change on the source that the target lacks: the verify while frozen (or the pre-check) refuses
    await sql(source.url, "ALTER TABLE live_orders ADD COLUMN gift boolean");
    const ctx = liveCtx();
    await expect(switchDatabase(live, ctx)).rejects.toThrow(/schemas match|differ/);
    const undone = await unwindSwitch(live, ctx);
    expect(await activeFreeze(db, env, "source")).toBeNull();
    expect(undone).toEqual([]); // refused before anything froze: nothing to undo
    await sql(source.url, "ALTER TABLE live_orders DROP COLUMN gift");

    // a row on the target that the source never had: found by the verify while frozen, after the drain
    await sql(
      target.url,
      "INSERT INTO live_orders (id, ref, customer) VALUES (999999, gen_random_uuid(), 'rogue')",
    );
    const ctx2 = liveCtx();
    await expect(switchDatabase(live, ctx2)).rejects.toThrow(/differ after the drain/);
    expect(await activeFreeze(db, env, "source")).not.toBeNull(); // frozen when it failed
    expect(await unwindSwitch(live, ctx2)).toContain("the source is writable again");
    expect(await activeFreeze(db, env, "source")).toBeNull();
    await sql(target.url, "DELETE FROM live_orders WHERE customer = 'rogue'");
    // the shop writes again, and replication carries it (a row written while the schemas differed would have stopped it)
    await sql(
      asRole(source.url),
      "INSERT INTO live_orders (ref, customer) VALUES (gen_random_uuid(), 'after-unwind')",
    );
    await expect
      .poll(
        async () =>
          (await sql(target.url, "SELECT 1 FROM live_orders WHERE customer = 'after-unwind'")).length,
        {
          timeout: 20_000,
        },
      )
      .toBe(1);
  }, 120_000);

  it("the watch posts once when replication stops, once when it resumes, and names a vanished slot", async () => {
    // after the unwind above, forward replication runs again
    const posted: string[] = [];
    const watch = () =>
      watchReplicationOnce({
        live,
        db,
        log: live.step.log,
        now: () => new Date(),
        notify: async (r) => {
          posted.push(r.text);
        },
      });
    await expect
      .poll(async () => (await livePreChecks(live)).find((c) => c.name === "replication running")?.ok, {
        timeout: 20_000,
      })
      .toBe(true);
    expect(await watch()).toEqual([]);
    const sub = replicationNames(env, "fwd").subscription;
    await sql(target.url, `ALTER SUBSCRIPTION ${sub} DISABLE`);
    await expect.poll(async () => (await watch()).length, { timeout: 20_000 }).toBe(1);
    expect(posted.at(-1)).toMatch(/🔴 Replication source → target: the subscriber is not connected/);
    expect(await watch()).toEqual([]); // posted once
    await sql(target.url, `ALTER SUBSCRIPTION ${sub} ENABLE`);
    await expect.poll(async () => (await watch()).length, { timeout: 20_000 }).toBe(1);
    expect(posted.at(-1)).toMatch(/🟢 Replication source → target: back to normal/);
    // the provider drops the slot (Neon after ~40 h unused): named, not silent
    await sql(target.url, `ALTER SUBSCRIPTION ${sub} DISABLE`);
    await sql(target.url, `ALTER SUBSCRIPTION ${sub} SET (slot_name = NONE)`);
    // its walsender may still be on its way out after the DISABLE: the provider's drop is retried until it takes
    await expect
      .poll(
        () =>
          sql(source.url, "SELECT pg_drop_replication_slot($1)", [replicationNames(env, "fwd").slot]).then(
            () => true,
            () => false,
          ),
        { timeout: 20_000 },
      )
      .toBe(true);
    await expect.poll(async () => (await watch()).length, { timeout: 20_000 }).toBe(1);
    expect(posted.at(-1)).toContain("its replication slot is gone");
    expect(posted).toHaveLength(3);
  }, 90_000);

  it("a rollback without reverse replication changes no data, and says what is not back and where", async () => {
    // after the watch test forward replication is broken (its slot was dropped): start clean
    await setup.steps
      .get("db.replication-teardown")!
      .run({ direction: "both", connectTimeoutSeconds: 10 }, liveCtxStep());
    // both sides as after a switch whose reverse replication then broke: source frozen, target open
    await setup.live.db.auditEvent.create({
      data: {
        actor: "test",
        action: "cutover.switched",
        target: env,
        outcome: "ok",
        details: { targetChangesAtSwitch: 0 },
      },
    });
    const before = await sql<{ n: number }>(source.url, "SELECT count(*)::int AS n FROM live_orders");
    const back = await rollbackDatabase(live, { actor: "U0OPERATOR", signal: AbortSignal.timeout(30_000) });
    expect(back.lossless).toBe(false);
    const line = back.items.find((i) => i.what === "database");
    expect(line?.ok).toBe(false);
    expect(line?.detail).toMatch(/reverse replication is not running, so nothing was carried back/);
    expect(line?.detail).toMatch(
      /row changes \(inserts, updates, deletes\) were made on the target since then/,
    );
    expect(line?.detail).toContain("storage.sync with source and target swapped");
    // nothing was changed on the source
    expect(await sql<{ n: number }>(source.url, "SELECT count(*)::int AS n FROM live_orders")).toEqual(
      before,
    );
  }, 60_000);

  it("the changed tables are those whose counters moved; reset statistics tell nothing", () => {
    const before = { epoch: "start|", tables: { "public.a": "1/0/0/1", "public.b": "5/1/0/5" } };
    const after = {
      epoch: "start|",
      tables: { "public.a": "1/0/0/1", "public.b": "5/1/1/4", "public.c": "0/0/0/0" },
    };
    // b changed; c is new since the start (its rows are compared too); a did not move
    expect(changedTables(before, after)).toEqual(["public.b", "public.c"]);
    // a truncate changes only the live-row count
    expect(changedTables(before, { ...before, tables: { ...before.tables, "public.a": "1/0/0/0" } })).toEqual(
      ["public.a"],
    );
    expect(changedTables(before, { ...after, epoch: "restarted|" })).toBeNull();
  });
});
