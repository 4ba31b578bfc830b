import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  canonicalJson,
  consumeApproval,
  createApproval,
  decideApproval,
  hashChange,
  LiveRequestExists,
  withdrawApproval,
} from "../../src/store/approvals.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let state: TestDatabase;
let db: Db;
const change = {
  zone: "example.com",
  records: [{ name: "api.example.com", from: "203.0.113.10", to: "198.51.100.7", ttl: 60 }],
};
const inHalfAnHour = () => new Date(Date.now() + 30 * 60_000);

beforeAll(async () => {
  state = await createTestDatabase("approvals");
  db = createPrismaClient(state.url);
});
afterAll(async () => {
  await db?.$disconnect();
  await state?.drop();
});

/** A fresh pending request; the previous test's live one steps aside (one live per environment). */
const request = async (over: Partial<Parameters<typeof createApproval>[1]> = {}) => {
  await db.approval.updateMany({
    where: { liveKey: { not: null } },
    data: { status: "void", liveKey: null },
  });
  return createApproval(db, {
    action: "dns.cutover",
    change,
    requestedBy: "U0REQ",
    channel: "C0MIG",
    expiresAt: inHalfAnHour(),
    ...over,
  });
};

describe("approvals", () => {
  it("holds one live request per kind and environment in the database: of 20 at once, one is stored", async () => {
    await db.approval.updateMany({
      where: { liveKey: { not: null } },
      data: { status: "void", liveKey: null },
    });
    const one = { ...change, environment: "race" };
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        createApproval(db, {
          action: "dns.cutover",
          change: one,
          requestedBy: `U0REQ${i}`,
          channel: "C0MIG",
          expiresAt: inHalfAnHour(),
        }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(refused.every((r) => r.reason instanceof LiveRequestExists)).toBe(true);
    // another environment, or another kind, is not held by it
    await createApproval(db, {
      action: "dns.cutover",
      change: { ...one, environment: "other" },
      requestedBy: "U0A",
      channel: null,
      expiresAt: inHalfAnHour(),
    });
    await createApproval(db, {
      action: "decommission",
      change: one,
      requestedBy: "U0A",
      channel: null,
      expiresAt: inHalfAnHour(),
    });
    // an expired live request does not block a new one
    await db.approval.updateMany({
      where: { liveKey: "dns.cutover:race" },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const next = await createApproval(db, {
      action: "dns.cutover",
      change: one,
      requestedBy: "U0B",
      channel: null,
      expiresAt: inHalfAnHour(),
    });
    expect(next.status).toBe("pending");
    expect(await db.approval.count({ where: { liveKey: "dns.cutover:race" } })).toBe(1);
    expect(
      await db.approval.count({
        where: { status: "expired", change: { path: ["environment"], equals: "race" } },
      }),
    ).toBe(1);
  });

  it("hashes a change independently of key order, and differently when any value differs", () => {
    expect(canonicalJson({ b: 1, a: [{ y: 2, x: 1 }] })).toBe('{"a":[{"x":1,"y":2}],"b":1}');
    expect(hashChange({ a: 1, b: 2 })).toBe(hashChange({ b: 2, a: 1 }));
    expect(hashChange(change)).not.toBe(
      hashChange({ ...change, records: [{ ...change.records[0], to: "198.51.100.8" }] }),
    );
  });

  it("refuses the requester approving their own request", async () => {
    const a = await request();
    expect(await decideApproval(db, a.id, { by: "U0REQ", approve: true })).toMatchObject({
      ok: false,
      reason: "self",
    });
    expect((await db.approval.findUniqueOrThrow({ where: { id: a.id } })).status).toBe("pending");
  });

  it("turns two approvers clicking at once into exactly one approval", async () => {
    const a = await request();
    const results = await Promise.all(
      ["U0AP1", "U0AP2", "U0AP3", "U0AP4"].map((by) =>
        decideApproval(db, a.id, { by, approve: true, note: `from ${by}` }),
      ),
    );
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === "already_decided")).toBe(true);
    const row = await db.approval.findUniqueOrThrow({ where: { id: a.id } });
    expect(row.status).toBe("approved");
    expect(row.note).toBe(`from ${row.decidedBy}`);
  });

  it("refuses an expired request and marks it expired", async () => {
    const a = await request({ expiresAt: new Date(Date.now() - 1000) });
    expect(await decideApproval(db, a.id, { by: "U0AP", approve: true })).toMatchObject({
      ok: false,
      reason: "expired",
    });
    expect((await db.approval.findUniqueOrThrow({ where: { id: a.id } })).status).toBe("expired");
  });

  it("is used once, only for the exact change it was given for", async () => {
    const a = await request();
    await decideApproval(db, a.id, { by: "U0AP", approve: true });
    expect(await consumeApproval(db, a.id, change)).toEqual({ ok: true });
    expect(await consumeApproval(db, a.id, change)).toEqual({ ok: false, reason: "used" });

    const b = await request();
    await decideApproval(db, b.id, { by: "U0AP", approve: true });
    const altered = { ...change, records: [{ ...change.records[0], from: "203.0.113.99" }] };
    expect(await consumeApproval(db, b.id, altered)).toEqual({ ok: false, reason: "changed" });
    expect((await db.approval.findUniqueOrThrow({ where: { id: b.id } })).status).toBe("void");
    expect(await consumeApproval(db, b.id, change)).toMatchObject({ ok: false });
  });

  it("lets the run that used it use it again after a crash (same change), and no other run", async () => {
    const run = (target: string) =>
      db.run.create({ data: { env: "test", kind: "step", target, requestedBy: "U0OP" } });
    const [mine, other] = await Promise.all([run("dns-cutover"), run("dns-cutover")]);
    const a = await request();
    await decideApproval(db, a.id, { by: "U0AP", approve: true });
    expect(await consumeApproval(db, a.id, change, new Date(), mine.id)).toEqual({ ok: true });
    expect((await db.approval.findUniqueOrThrow({ where: { id: a.id } })).runId).toBe(mine.id);
    // the same run, resumed after a crash before its first checkpoint: still its approval
    expect(await consumeApproval(db, a.id, change, new Date(), mine.id)).toEqual({ ok: true });
    expect(await consumeApproval(db, a.id, change, new Date(), other.id)).toEqual({
      ok: false,
      reason: "used",
    });
    const altered = { ...change, records: [{ ...change.records[0], from: "203.0.113.99" }] };
    expect(await consumeApproval(db, a.id, altered, new Date(), mine.id)).toEqual({
      ok: false,
      reason: "used",
    });
  });

  it("lets only the requester withdraw a pending request, and a withdrawn one cannot be approved", async () => {
    const a = await request();
    expect(await withdrawApproval(db, a.id, "U0OTHER")).toBe(false);
    expect(await withdrawApproval(db, a.id, "U0REQ")).toBe(true);
    expect(await decideApproval(db, a.id, { by: "U0AP", approve: true })).toMatchObject({
      ok: false,
      reason: "already_decided",
    });
    expect(await consumeApproval(db, a.id, change)).toEqual({ ok: false, reason: "not_approved" });
  });
});
