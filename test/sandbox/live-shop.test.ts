import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StepDeps } from "../../src/jobs/catalogue.js";
import type { StepDefinition } from "../../src/jobs/define-step.js";
import { createDbSteps } from "../../src/jobs/steps/db/index.js";
import {
  checkLedger,
  createLiveShopSchema,
  grantShopApp,
  type ShopApp,
  shopAppUrl,
  startShopApp,
  startTraffic,
} from "../../src/sandbox/live-shop.js";
import { databaseUrl, type TestDatabase } from "../helpers/db.js";
import { makeStepContext } from "../helpers/step-context.js";
import { createFixtureSource, createRdsLikeTarget, makeDeps } from "../jobs/db/fixture.js";

/*
 * The gap, proved with the product's own database steps (issue 18, item 1): customers keep
 * ordering on the old app while db.dump and db.restore copy a snapshot, and "DNS" then sends
 * them to the new app. Every write acknowledged between the snapshot and the switch is missing
 * on the target, and payments made after the switch can land on another customer's order (the
 * new side hands out ids the old one had already used). When the live cutover lands, the same
 * traffic through it must show 0 lost; this test then keeps the snapshot method's figures as
 * the benchmark's baseline.
 */

let source: TestDatabase;
let target: TestDatabase & { role: string };
let deps: StepDeps;
let steps: Map<string, StepDefinition<unknown>>;
const apps: ShopApp[] = [];

beforeAll(async () => {
  source = await createFixtureSource("live_src");
  target = await createRdsLikeTarget("live_dst");
  await createLiveShopSchema(source.url);
  await grantShopApp(source.url);
  deps = await makeDeps(source.url, target.url);
  steps = new Map(createDbSteps(deps).map((s) => [s.type, s]));
}, 60_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await source?.drop();
  await target?.drop();
});

describe("the live shop over a snapshot copy", () => {
  it("logs every acknowledged write, and shows the writes a snapshot copy loses", async () => {
    // both apps as the app role (no superuser, owns nothing), as in production
    const oldApp = await startShopApp({ name: "old", databaseUrl: shopAppUrl(source.url) });
    const newApp = await startShopApp({ name: "new", databaseUrl: shopAppUrl(target.url) });
    apps.push(oldApp, newApp);
    let dns = oldApp;
    const traffic = startTraffic({ route: () => dns, writesPerSecond: 50, seed: 11 });

    await traffic.acknowledged(40);
    const copyStarted = Date.now();
    for (const type of ["db.dump", "db.restore"]) {
      const step = steps.get(type)!;
      await step.run(step.parse({ jobs: 2 }), makeStepContext());
    }
    await grantShopApp(databaseUrl(target.name)); // the copy leaves privileges out (--no-privileges)
    const copied = traffic.log.acked.length;
    await traffic.acknowledged(copied + 40); // the shop keeps writing between the copy and the switch
    const switchedAt = Date.now();
    dns = newApp;
    const beforeSwitch = traffic.log.acked.length;
    await traffic.acknowledged(beforeSwitch + 40);
    const log = await traffic.stop();

    // the traffic itself went through: both apps acknowledged writes, the old one refused none
    // (after the switch the new app answers 404 for orders it never got: the loss, seen live)
    expect(log.acked.filter((w) => w.app === "old").length).toBeGreaterThanOrEqual(80);
    expect(log.acked.filter((w) => w.app === "new").length).toBeGreaterThanOrEqual(40);
    expect(log.failed.filter((f) => f.app === "old")).toEqual([]);

    // the source holds every write the old app acknowledged: the ledger and its check agree
    const onSource = await checkLedger(
      { ...log, acked: log.acked.filter((w) => w.app === "old") },
      source.url,
    );
    expect(onSource.lost).toEqual([]);
    expect(onSource.duplicated).toEqual([]);

    // the target, where the traffic ended, lacks what the old app acknowledged after the snapshot
    const onTarget = await checkLedger(log, target.url);
    expect(onTarget.acknowledged).toBe(log.acked.length);
    expect(onTarget.duplicated).toEqual([]);
    expect(onTarget.lost.length).toBeGreaterThan(0);
    for (const l of onTarget.lost) {
      // each loss is a write acknowledged after the copy began: on the old app before the switch
      // (an order, a payment, a cancellation the snapshot missed), or on the new app after it,
      // to an order the target never got
      expect(l.write.at, l.why).toBeGreaterThanOrEqual(copyStarted);
      const w = l.write;
      if (w.kind === "create" && w.app === "old") expect(w.at, l.why).toBeLessThan(switchedAt);
      if (w.kind === "create" && w.app === "new") {
        // a new order the new app lost: a cancellation meant for an old order with the same id
        // (one the target never got) deleted it
        const misdirected = log.acked.find(
          (d) => d.kind === "delete" && d.app === "new" && d.id === w.id && d.ref !== w.ref && d.at > w.at,
        );
        expect(misdirected, l.why).toBeDefined();
      }
    }
    const createdAfterSnapshot = log.acked.filter(
      (w) => w.kind === "create" && w.app === "old" && w.at >= copyStarted + 1_000,
    );
    // every order created well after the dump's snapshot (a second of margin for the dump's start)
    // and not cancelled is reported missing
    const missing = new Set(
      onTarget.lost
        .filter((l) => l.why.endsWith("is missing"))
        .map((l) => ("ref" in l.write ? l.write.ref : "")),
    );
    expect(createdAfterSnapshot.length).toBeGreaterThan(0);
    for (const w of createdAfterSnapshot) {
      const ref = "ref" in w ? w.ref : "";
      const cancelled = log.acked.some((d) => d.kind === "delete" && d.ref === ref);
      if (!cancelled) expect(missing.has(ref), `order ${ref} created at ${w.at}`).toBe(true);
    }
    expect(onTarget.readAvailabilityPct).toBeGreaterThan(0);
  }, 120_000);
});
