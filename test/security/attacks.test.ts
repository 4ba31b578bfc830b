import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { rollbackLockKey } from "../../src/commands/handlers/rollback.js";
import type { RecordedCall } from "../../src/sandbox/FakeSlack.js";
import {
  newTriggerId,
  sendRollbackSubmission,
  sendSlashCommand,
  sendViewSubmission,
} from "../../src/sandbox/slack-sender.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  OPERATOR,
  openModal,
  replyText,
  SECOND_OPERATOR,
  STRANGER,
} from "../helpers/bot.js";
import {
  APPROVER2,
  type CutoverWorld,
  NEW_IP,
  OLD_IP,
  pendingDnsCutover,
  RECORD,
  startCutoverWorld,
} from "../helpers/cutover-world.js";
import { reportFigure } from "./figures.js";

/**
 * The attack suite (issue 15): the bot attacked from outside, through signed requests to the
 * real receiver, by an operator acting alone, a requester, two approvers and a stranger. Each
 * test names the hole it probes; each failed on the code before the fix.
 */

let w: CutoverWorld;
const EVIL_IP = "192.0.2.66";
const EVIL_URL = "https://evil.example.net";

const text = (c: RecordedCall) => String((c.args as { text?: string }).text ?? "");
const callCount = () => w.t.fake.calls().length;
const db = () => w.t.bot.deps.db;
/** What the bot posted to the channel since call `since` whose text includes `needle`. */
const postsSince = (since: number, needle: string) =>
  w.t.fake
    .calls()
    .slice(since)
    .filter((c) => c.method === "chat.postMessage" && text(c).includes(needle));
/** The operator's ROLLBACK submitted as from `modal`, with `extra` fields added to what it offered. */
const rollbackFrom = (modal: { viewId?: string; viewHash?: string }, extra: Record<string, string> = {}) =>
  sendRollbackSubmission({
    url: w.t.eventsUrl,
    signingSecret: w.t.signingSecret,
    userId: OPERATOR,
    ...modal,
    word: "ROLLBACK",
    extra,
  });
/** Record and variable values the rollback modal never offers. */
const EVIL_VALUES = { rb_record_0: EVIL_IP, rb_var_NEXT_PUBLIC_API_URL: EVIL_URL };

/** The first call after `since` that matches, waiting up to `timeoutMs`. */
async function nextCall(since: number, match: (c: RecordedCall) => boolean, timeoutMs = 15_000) {
  return vi.waitFor(
    () => {
      const found = w.t.fake.calls().slice(since).find(match);
      if (!found) throw new Error(`no matching Slack call within ${timeoutMs} ms`);
      return found;
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

/** The rollback's report in the channel (done, incomplete, or could not run). */
async function rollbackReport(since: number): Promise<string> {
  return text(
    await nextCall(
      since,
      (c) => c.method === "chat.postMessage" && /Rollback by|could not run/.test(text(c)),
    ),
  );
}

/** DNS and Pages as right after a cutover (set by hand: the rollback is what is under attack). */
async function switchedState() {
  const dns = w.t.bot.deps.cloudflare!.dns;
  const zone = await dns.findZone("example.com");
  const rec = await dns.getRecord(zone, RECORD, "A");
  await dns.updateRecord(rec!, { content: NEW_IP, ttl: 60 });
  await w.t.bot.deps.cloudflare!.pages.setEnvVars("web", { NEXT_PUBLIC_API_URL: `https://${RECORD}` });
  expect(w.record().content).toBe(NEW_IP);
}

/** The modal /rollback opens for `user`, as Slack would send its id and hash back. */
async function rollbackModalFor(user: string) {
  const modal = await openModal(w.t, (triggerId) =>
    w.t.command("", { command: "/rollback", user, triggerId }),
  );
  expect(modal).toBeDefined();
  return modal!;
}

const refusals = (action: string, user: string) =>
  db().auditEvent.count({ where: { action, actor: user, outcome: "refused" } });

beforeAll(async () => {
  w = await startCutoverWorld("sec_attacks");
  await w.t.command("run lower-ttl");
  await w.waitForRun("lower-ttl", ["succeeded"]);
  await w.ageTheTtlChange(2);
}, 120_000);

afterAll(async () => {
  await w?.stop();
});

describe("attacks from outside (issue 15)", { timeout: 120_000 }, () => {
  it("2. twenty concurrent /migrate cutover requests leave one live request; no spare approval switches production after a rollback", async () => {
    const sent = await Promise.all(
      Array.from({ length: 20 }, () => w.t.command("cutover", { triggerId: newTriggerId() })),
    );
    const replies = await Promise.all(sent.map((r) => replyText(w.t, r, 30_000)));
    const live = await db().approval.findMany({
      where: { action: "dns.cutover", status: { in: ["pending", "approved"] } },
    });
    const posted = replies.filter((r) => r.includes("Cutover request posted")).length;
    reportFigure("cutover-request-race", { concurrent: 20, liveRequests: live.length, posted });
    expect(live).toHaveLength(1);
    expect(posted).toBe(1);
    // the others are told who holds it
    expect(replies.filter((r) => r.includes("is already pending")).length).toBe(19);

    // both approvers try every live request: one approval, one switch
    for (const [i, a] of live.entries()) await w.submitApproval(i === 0 ? APPROVER : APPROVER2, a.id, RECORD);
    await w.waitForRun("dns-cutover", ["succeeded"]);
    expect(w.record().content).toBe(NEW_IP);

    const since = callCount();
    await w.submitRollback(OPERATOR, "ROLLBACK");
    expect(await rollbackReport(since)).toContain("✅ Rollback by");
    expect(w.record().content).toBe(OLD_IP);

    // nothing pending or approved survives the switch and its rollback
    expect(
      await db().approval.count({
        where: { action: "dns.cutover", status: { in: ["pending", "approved"] } },
      }),
    ).toBe(0);
    // so the requester running the switch by hand switches nothing
    const before = new Date();
    await w.t.command("run dns-cutover");
    const run = await w.waitForRun("dns-cutover", ["failed", "succeeded"], before);
    expect(run.status).toBe("failed");
    expect(w.record().content).toBe(OLD_IP);
  });

  it("2. an approval left over from before (a spare) is voided by a completed rollback", async () => {
    // as the race on the old code left them: an approved request nobody carried out
    const spare = await db().approval.create({
      data: {
        action: "dns.cutover",
        change: { environment: "test", zone: "example.com", records: [], pages: null },
        changeHash: "spare",
        requestedBy: OPERATOR,
        status: "approved",
        decidedBy: APPROVER,
        decidedAt: new Date(),
        channel: CHANNEL,
        expiresAt: new Date(Date.now() + 3600_000),
      },
    });
    await switchedState();
    const since = callCount();
    await w.submitRollback(OPERATOR, "ROLLBACK");
    expect(await rollbackReport(since)).toContain("✅ Rollback by");
    expect((await db().approval.findUniqueOrThrow({ where: { id: spare.id } })).status).toBe("void");
  });

  it("1. a forged rollback submission cannot choose the DNS or Pages values, and the report says where each value came from", async () => {
    await switchedState();
    const modal = await rollbackModalFor(OPERATOR);
    const before = await refusals("rollback.confirm", OPERATOR);
    const since = callCount();
    // the bot's own modal, with fields it never offered added to the submission
    const forged = await rollbackFrom(modal, EVIL_VALUES);
    expect(JSON.parse(forged.body || "{}").response_action).toBe("errors");
    expect(await refusals("rollback.confirm", OPERATOR)).toBe(before + 1);
    expect(w.record().content).toBe(NEW_IP);
    expect(w.cf.envVars("web").NEXT_PUBLIC_API_URL).toBe(`https://${RECORD}`);
    expect(postsSince(since, "Rollback")).toEqual([]);

    // the honest submission restores the recorded values and names their source, line by line
    const honest = callCount();
    await w.submitRollback(OPERATOR, "ROLLBACK");
    const report = await rollbackReport(honest);
    expect(report).toContain("✅ Rollback by");
    expect(report).toContain(
      `A ${RECORD}: ${NEW_IP} → ${OLD_IP} (TTL 3600 s) (value from the cutover record)`,
    );
    expect(report).toMatch(
      /Pages web variables: restored NEXT_PUBLIC_API_URL \(value from the cutover record\)/,
    );
    expect(w.record().content).toBe(OLD_IP);
    expect(w.cf.envVars("web").NEXT_PUBLIC_API_URL).toBe("https://old.example.app");
  });

  it("3. a view_submission without a modal the bot opened for that person and request is refused and audited", async () => {
    const approval = await pendingDnsCutover(db(), SECOND_OPERATOR);
    const approveWith = (
      user: string,
      view: { viewId?: string; viewHash?: string },
      metadata = approval.id,
    ) =>
      sendViewSubmission({
        url: w.t.eventsUrl,
        signingSecret: w.t.signingSecret,
        callbackId: CALLBACK.approveCutover,
        privateMetadata: metadata,
        userId: user,
        ...view,
        values: {
          [INPUT.confirmName.block]: {
            [INPUT.confirmName.action]: { type: "plain_text_input", value: RECORD },
          },
        },
      });
    const refusedBody = (body: string) => JSON.parse(body || "{}").response_action === "errors";
    const approveRefusals = () =>
      db().auditEvent.count({ where: { action: "cutover.approve", outcome: "refused" } });
    let audited = await approveRefusals();

    // (a) no views.open at all: a view id and hash made up
    expect(
      refusedBody((await approveWith(APPROVER, { viewId: "V0FORGED01", viewHash: "1.forged" })).body),
    ).toBe(true);
    expect(await approveRefusals()).toBe(++audited);
    // (b) the modal opened for APPROVER, submitted as APPROVER2
    const opened = await openModal(w.t, (triggerId) =>
      w.t.click(ACTION.approveCutover, approval.id, { user: APPROVER, triggerId }),
    );
    expect(opened).toBeDefined();
    expect(refusedBody((await approveWith(APPROVER2, opened!)).body)).toBe(true);
    expect(await approveRefusals()).toBe(++audited);
    // (c) the right person's modal with another hash (not the view Slack holds)
    expect(refusedBody((await approveWith(APPROVER, { ...opened!, viewHash: "0.other" })).body)).toBe(true);
    expect(await approveRefusals()).toBe(++audited);
    // (d) the right modal pointed at another request
    expect(refusedBody((await approveWith(APPROVER, opened!, randomUUID())).body)).toBe(true);
    expect(await approveRefusals()).toBe(++audited);
    expect((await db().approval.findUniqueOrThrow({ where: { id: approval.id } })).status).toBe("pending");

    // (e) a rollback submitted with no /rollback ever typed
    await switchedState();
    const rollbackRefused = await refusals("rollback.confirm", OPERATOR);
    const since = callCount();
    const forged = await rollbackFrom({ viewId: "V0FORGED02" });
    expect(refusedBody(forged.body)).toBe(true);
    expect(await refusals("rollback.confirm", OPERATOR)).toBe(rollbackRefused + 1);
    expect(w.record().content).toBe(NEW_IP);
    expect(postsSince(since, "Rollback")).toEqual([]);

    // (f) the bot's own modal submitted twice: the replay is refused, and one rollback ran
    const modal = await rollbackModalFor(OPERATOR);
    const submit = () => rollbackFrom(modal);
    const first = callCount();
    expect((await submit()).body).toBe("");
    expect(await rollbackReport(first)).toContain("✅ Rollback by");
    expect(refusedBody((await submit()).body)).toBe(true);
    expect(
      w.t.fake
        .calls()
        .slice(first)
        .filter((c) => c.method === "chat.postMessage" && text(c).includes("Rollback started")),
    ).toHaveLength(1);
    await db().approval.update({ where: { id: approval.id }, data: { status: "withdrawn", liveKey: null } });
  });

  it("4. a request timestamped more than 5 minutes ahead is refused like an old one", async () => {
    const ahead = Math.floor(Date.now() / 1000) + 6 * 60;
    const runs = await db().run.count();
    const res = await sendSlashCommand({
      url: w.t.eventsUrl,
      signingSecret: w.t.signingSecret,
      timestampSeconds: ahead,
      command: "/migrate",
      text: "run lower-ttl",
      userId: OPERATOR,
      channelId: CHANNEL,
      responseUrl: w.t.fake.responseUrl(),
    });
    expect(res.status).toBe(401);
    // a little ahead (a clock a few seconds off) is fine
    const slight = await sendSlashCommand({
      url: w.t.eventsUrl,
      signingSecret: w.t.signingSecret,
      timestampSeconds: Math.floor(Date.now() / 1000) + 30,
      command: "/migrate",
      text: "help",
      userId: OPERATOR,
      channelId: CHANNEL,
    });
    expect(slight.status).toBe(200);
    expect(await db().run.count()).toBe(runs);
  });

  it("4. ten deliveries of one /rollback open one modal and write one audit row", async () => {
    const triggerId = newTriggerId();
    const responseUrl = w.t.fake.responseUrl();
    const opens = () =>
      w.t.fake
        .calls("views.open")
        .filter((c) => (c.args as { trigger_id?: string }).trigger_id === triggerId);
    const rows = () => db().auditEvent.count({ where: { action: "rollback.open", actor: OPERATOR } });
    const before = await rows();
    const droppedBefore = w.t.bot.deps.metrics.duplicates.values.get("") ?? 0;
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        w.t.command("", { command: "/rollback", triggerId, responseUrl, ...(i ? { retryNum: i } : {}) }),
      ),
    );
    // every delivery handled: nine counted as duplicates, or (without deduplication) ten modals
    const dropped = () => w.t.bot.deps.metrics.duplicates.values.get("") ?? 0;
    await vi.waitFor(
      async () => {
        if (!(dropped() >= droppedBefore + 9 && opens().length >= 1) && opens().length < 10)
          throw new Error(`${dropped() - droppedBefore} dropped, ${opens().length} opened`);
      },
      { timeout: 15_000, interval: 50 },
    );
    expect(opens()).toHaveLength(1);
    expect(await rows()).toBe(before + 1);
  });

  it("4. a button whose request id is malformed gets a refusal and an audit row, not a crash", async () => {
    for (const [actionId, user] of [
      [ACTION.approveCutover, APPROVER],
      [ACTION.rejectCutover, APPROVER],
      [ACTION.withdrawCutover, OPERATOR],
    ] as const) {
      for (const value of ["not-a-uuid", "'; DROP TABLE approvals; --", ""]) {
        const before = await db().auditEvent.count({ where: { actor: user, outcome: "refused" } });
        const res = await w.t.click(actionId, value, { user });
        expect(res.status).toBe(200);
        const reply = await replyText(w.t, res);
        expect(reply).toMatch(/^⛔ /);
        expect(await db().auditEvent.count({ where: { actor: user, outcome: "refused" } })).toBe(before + 1);
      }
    }
  });

  it("4. a rollback refused for another one under way does not announce 'Rollback started'", async () => {
    await switchedState();
    const other = new pg.Client({ connectionString: w.t.env.DATABASE_URL });
    await other.connect();
    try {
      await other.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [rollbackLockKey("test")]);
      const since = callCount();
      await w.submitRollback(OPERATOR, "ROLLBACK");
      expect(await rollbackReport(since)).toContain("is already under way");
      expect(postsSince(since, "Rollback started")).toEqual([]);
      expect(w.record().content).toBe(NEW_IP);
    } finally {
      await other.end();
    }
  });

  it("1. with nothing recorded, the rollback restores the migration file's old values, never typed ones", async () => {
    await switchedState();
    // the runs database lost everything: no cutover record, no snapshot anywhere
    await db().approval.deleteMany({});
    await db().checkpoint.deleteMany({ where: { key: "snapshot" } });
    await db().auditEvent.deleteMany({ where: { action: "dns.snapshot" } });

    // a stranger's and an operator's forged values: refused, nothing changes
    const modal = await rollbackModalFor(OPERATOR);
    const typed = await rollbackFrom(modal, EVIL_VALUES);
    expect(JSON.parse(typed.body || "{}").response_action).toBe("errors");
    expect(w.record().content).toBe(NEW_IP);
    const stranger = await w.t.command("", { command: "/rollback", user: STRANGER });
    expect(await replyText(w.t, stranger)).toMatch(/^⛔/);

    const since = callCount();
    await w.submitRollback(OPERATOR, "ROLLBACK");
    const report = await rollbackReport(since);
    expect(report).toContain("✅ Rollback by");
    expect(report).toContain(
      `A ${RECORD}: ${NEW_IP} → ${OLD_IP} (TTL 300 s) (value from the migration file)`,
    );
    expect(w.record().content).toBe(OLD_IP);
    expect(w.cf.envVars("web").NEXT_PUBLIC_API_URL).toBe("https://old.example.app");
    expect(JSON.stringify(w.cf.envVars("web"))).not.toContain(EVIL_URL);
  });
});
