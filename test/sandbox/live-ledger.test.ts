import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkLedger,
  createLiveShopSchema,
  startTraffic,
  type TrafficLog,
} from "../../src/sandbox/live-shop.js";
import { createEmptyDatabase, queryOnce, type TestDatabase } from "../helpers/db.js";
import { waitUntil } from "../helpers/wait.js";

const PAID_UNANSWERED = "00000000-0000-4000-8000-000000000001";
const PAID_REFUSED = "00000000-0000-4000-8000-000000000002";
const CANCEL_UNANSWERED = "00000000-0000-4000-8000-000000000003";

/*
 * The ledger tells a write that took effect without an answer (the customer gave up waiting, as
 * happens on any shop under load) from a write that landed on the wrong order. Found by a CI run
 * at load 20: a payment timed out after 2 s, committed all the same, and the rehearsal called it
 * "misapplied" and failed.
 */

let db: TestDatabase;

beforeAll(async () => {
  db = await createEmptyDatabase("ledger");
  await createLiveShopSchema(db.url);
  await queryOnce(
    db.url,
    `INSERT INTO live_orders (id, ref, customer, status) VALUES
       (1, $1, 'c', 'paid'), (2, $2, 'c', 'paid')`,
    [PAID_UNANSWERED, PAID_REFUSED],
  );
  await queryOnce(
    db.url,
    "INSERT INTO live_order_lines (order_id, sku, qty) VALUES (1, 's', 1), (2, 's', 1)",
  );
});

afterAll(async () => {
  await db?.drop();
});

const created = (id: number, ref: string) => ({
  kind: "create" as const,
  ref,
  id,
  lines: 1,
  app: "new",
  at: 1,
});

describe("the live shop's ledger", () => {
  it("reports a timed-out write that took effect as unconfirmed, and an answered refusal that took effect as misapplied", async () => {
    const log: TrafficLog = {
      acked: [created(1, PAID_UNANSWERED), created(2, PAID_REFUSED), created(3, CANCEL_UNANSWERED)],
      failed: [
        { kind: "pay", app: "new", at: 2, error: "timeout", ref: PAID_UNANSWERED, unanswered: true },
        // an answered error says the write did not happen: the order being paid is then wrong
        { kind: "pay", app: "new", at: 2, error: "HTTP 503", ref: PAID_REFUSED },
        { kind: "delete", app: "new", at: 2, error: "timeout", ref: CANCEL_UNANSWERED, unanswered: true },
      ],
      reads: { ok: 0, failed: 0 },
      readEvents: [],
    };
    const check = await checkLedger(log, db.url);
    expect(check.unconfirmed.map((u) => u.ref).sort()).toEqual([PAID_UNANSWERED, CANCEL_UNANSWERED]);
    expect(check.misapplied.map((m) => m.write.ref)).toEqual([PAID_REFUSED]);
    expect(check.lost).toEqual([]);

    // without the unanswered attempt, the missing order is a loss
    const strict = await checkLedger({ ...log, failed: [] }, db.url);
    expect(strict.lost.map((l) => l.write.ref)).toEqual([CANCEL_UNANSWERED]);
    expect(strict.misapplied.map((m) => m.write.ref).sort()).toEqual([PAID_UNANSWERED, PAID_REFUSED]);
  });
});

describe("the traffic's record of a failed write", () => {
  let silent: Server;
  let refusing: Server;
  beforeAll(async () => {
    silent = createServer(() => undefined); // takes the request and never answers
    refusing = createServer((_req, res) => {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "read-only" }));
    });
    await Promise.all([silent, refusing].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", r))));
  });
  afterAll(async () => {
    for (const s of [silent, refusing]) s.closeAllConnections();
    await Promise.all([silent, refusing].map((s) => new Promise((r) => s.close(r))));
  });

  it("marks a write with no answer as unanswered and one answered with an error as not", async () => {
    const url = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    for (const [server, unanswered] of [
      [refusing, undefined],
      [silent, true],
    ] as const) {
      const traffic = startTraffic({ route: () => ({ name: "x", url: url(server), stop: async () => {} }) });
      await waitUntil("a failed write", () => traffic.log.failed.length > 0, { timeoutMs: 10_000 });
      const log = await traffic.stop();
      expect(log.failed[0]).toMatchObject({ kind: "create", app: "x" });
      expect(log.failed[0]!.unanswered).toBe(unanswered);
    }
  }, 20_000);
});
