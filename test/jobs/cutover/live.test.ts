import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replicationNames } from "../../../src/cloud/replication.js";
import {
  activeFreeze,
  type LiveContext,
  type LiveDeps,
  livePreChecks,
  rollbackDatabase,
  switchDatabase,
  unwindSwitch,
} from "../../../src/jobs/cutover/live.js";
import { createDbSteps } from "../../../src/jobs/steps/db.js";
import { inventory } from "../../../src/jobs/steps/db-replicate.js";
import type { StepDefinition } from "../../../src/jobs/types.js";
import { watchReplicationOnce } from "../../../src/kpi/replication-watch.js";
import {
  checkLedger,
  LIVE_SHOP_SCHEMA,
  type ShopApp,
  startShopApp,
  startTraffic,
} from "../../../src/sandbox/live-shop.js";
import { createPrismaClient, type Db } from "../../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.js";
import { createLogicalPair, type LogicalPair } from "../../helpers/logical.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { dbConfig, makeDeps } from "../db/fixture.js";

/*
 * The live cutover and the lossless way back, on real servers, with customers writing the whole
 * time through whichever app "DNS" names: cutover → rollback → cutover again. Every acknowledged
 * write must be on the side the traffic ends on, exactly once; no slot may be left behind.
 */

let state: TestDatabase;
let pair: LogicalPair;
// Cutover's own connections: the source's owner, the target's administrator (an RDS master user)
let source: { url: string };
let target: { url: string };
let db: Db;
let live: LiveDeps;
let steps: Map<string, StepDefinition<unknown>>;
const apps: ShopApp[] = [];
const env = `lv_${randomBytes(3).toString("hex")}`;
const appRole = `${env}_app`;

async function sql(url: string, text: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows;
  } finally {
    await c.end();
  }
}

const asRole = (url: string) => {
  const u = new URL(url);
  u.username = appRole;
  u.password = "shop";
  return u.toString();
};
const GRANTS = `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${appRole}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${appRole}`;

function liveCtx(
  checkpoints = new Map<string, unknown>(),
): LiveContext & { checkpoints: Map<string, unknown> } {
  const c = makeStepContext({ checkpoints });
  return {
    checkpoint: c.checkpoint,
    signal: c.signal,
    progress: c.progress,
    actor: "U0OPERATOR",
    runId: null,
    checkpoints,
  };
}

beforeAll(async () => {
  // source on the machine's PostgreSQL 15, target on an embedded 17: two servers, two majors, as Neon and RDS
  [state, pair] = await Promise.all([createTestDatabase("live_state"), createLogicalPair("live")]);
  source = { url: pair.source.url };
  target = { url: pair.target.adminUrl };
  db = createPrismaClient(state.url);
  for (const server of [pair.source.serverAdminUrl, pair.target.serverAdminUrl])
    await sql(
      server,
      `DROP ROLE IF EXISTS ${appRole}; CREATE ROLE ${appRole} LOGIN NOSUPERUSER PASSWORD 'shop'`,
    );
  await sql(source.url, LIVE_SHOP_SCHEMA);
  await sql(
    source.url,
    "INSERT INTO live_orders (ref, customer) SELECT gen_random_uuid(), 'seed-' || g FROM generate_series(1, 300) g",
  );
  await sql(source.url, GRANTS);
  const config = dbConfig()
    .replace("environment: test", `environment: ${env}`)
    .replace(
      "runbook:",
      `replication:\n  appRoles: { source: ${appRole}, target: ${appRole} }\n  maxLagSeconds: 5\n  inflightMs: 300\nrunbook:`,
    );
  // the copy steps without the state store (their audit rows need a run); the live sequences with it
  const copy = await makeDeps(source.url, target.url, { config });
  steps = new Map(createDbSteps(copy).map((s) => [s.type, s]));
  live = { step: { ...copy, db }, db, now: () => new Date() };
  for (const type of ["db.dump", "db.restore"]) {
    const s = steps.get(type)!;
    await s.run(s.parse({ jobs: 2 }), makeStepContext());
  }
  // the new app's role gets its privileges on the target, as the deploy would give them
  await sql(target.url, GRANTS);
  const r = steps.get("db.replicate")!;
  await r.run(r.parse({}), makeStepContext());
}, 120_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  const t = steps?.get("db.replication-teardown");
  await t?.run(t.parse({}), makeStepContext()).catch(() => undefined);
  await db?.$disconnect();
  await Promise.all([state?.drop(), pair?.drop()]);
  for (const server of [pair?.source.serverAdminUrl, pair?.target.serverAdminUrl])
    if (server) await sql(server, `DROP ROLE IF EXISTS ${appRole}`).catch(() => undefined);
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
    expect(await activeFreeze(db, env, "source")).not.toBeNull();
    expect(await activeFreeze(db, env, "target")).toBeNull();
    // the old app is frozen for writes but still reads
    await expect(
      sql(asRole(source.url), "INSERT INTO live_orders (ref, customer) VALUES (gen_random_uuid(), 'x')"),
    ).rejects.toThrow(/permission denied/);
    expect(
      (await sql(asRole(source.url), "SELECT count(*)::int AS n FROM live_orders"))[0].n,
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
    // a schema change on the source that the target lacks: the fast verify (or the pre-check) refuses
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
});
