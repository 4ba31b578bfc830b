import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";
import { ACTION, INPUT } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  OPERATOR,
  replyText,
  SECOND_OPERATOR,
  STRANGER,
  type TestBot,
} from "../helpers/bot.js";
import {
  APPROVER2,
  type CutoverWorld,
  NEW_IP,
  NEW_RECORD,
  OLD_IP,
  RECORD,
  startCutoverWorld,
} from "../helpers/cutover-world.js";

let w: CutoverWorld;
let t: TestBot;
let cf: FakeCloudflare;
const record = () => w.record();
const waitForRun = (...a: Parameters<CutoverWorld["waitForRun"]>) => w.waitForRun(...a);
const ageTheTtlChange = (hours: number) => w.ageTheTtlChange(hours);
const setRecordContent = (content: string) => w.setRecordContent(content);
const requestCutover = () => w.requestCutover();
const submitApproval = (user: string, id: string, typed: string) => w.submitApproval(user, id, typed);
const submitRollback = (user: string, word: string) => w.submitRollback(user, word);

beforeAll(async () => {
  w = await startCutoverWorld("cutover");
  ({ t, cf } = w);
});

afterAll(async () => {
  await w?.stop();
});

describe("DNS cutover behind a second person's approval", () => {
  it("refuses a cutover before the TTL was lowered, then until the old TTL has elapsed", async () => {
    expect(await replyText(t, await t.command("cutover"))).toContain(
      "Lower the TTL first: `/migrate run lower-ttl`",
    );
    await t.command("run lower-ttl");
    const run = await waitForRun("lower-ttl", ["succeeded", "failed"]);
    expect(run.status).toBe("succeeded");
    expect(record().ttl).toBe(60);
    const early = await replyText(t, await t.command("cutover"));
    expect(early).toMatch(/Not yet: the old TTL is still in resolvers' caches for (59 min|1 h)/);
    const res = await t.command("status");
    expect(await replyText(t, res)).toMatch(/^Migration status/);
    const id = res.responseUrl.split("/").pop();
    const status = t.fake
      .calls("response_url")
      .find((c) => (c.args as { response_url_id?: string }).response_url_id === id)!;
    expect(JSON.stringify(status.args)).toMatch(/DNS cutover possible in (59 min|1 h)/);
    await ageTheTtlChange(2);
  });

  it("posts the request with what changes and the pre-checks; refuses self-approval, non-approvers and a wrong name", async () => {
    const approvalId = await requestCutover();
    const request = t.fake.messages(CHANNEL).find((m) => m.text.startsWith("DNS cutover requested"))!;
    const shown = JSON.stringify(request.blocks);
    expect(shown).toContain(`\`${OLD_IP}\` → \`${NEW_IP}\` · TTL 60 s → 3600 s`);
    expect(shown).toContain("NEXT_PUBLIC_API_URL: `https://old.example.app` → `https://api.example.com`");
    expect(shown).toContain("new host healthy");
    expect(shown).toContain(ACTION.approveCutover);

    const self = await t.click(ACTION.approveCutover, approvalId, { user: OPERATOR });
    expect(await replyText(t, self)).toContain("You asked for this cutover, so you cannot approve it");
    const operator = await t.click(ACTION.approveCutover, approvalId, { user: SECOND_OPERATOR });
    expect(await replyText(t, operator)).toContain("You are not an approver");
    const stranger = await t.click(ACTION.approveCutover, approvalId, { user: STRANGER });
    expect(await replyText(t, stranger)).toContain("You are not an approver");
    // the requester is told to withdraw, not that they "cannot approve"
    const rejectOwn = await t.click(ACTION.rejectCutover, approvalId, { user: OPERATOR });
    expect(await replyText(t, rejectOwn)).toContain("withdraw it instead of rejecting it");

    const opened = await t.click(ACTION.approveCutover, approvalId, { user: APPROVER });
    expect(opened.status).toBe(200);
    const modal = await t.fake.waitFor("views.open");
    expect(JSON.stringify(modal.args)).toContain(`Type ${RECORD} to confirm`);

    const wrong = await submitApproval(APPROVER, approvalId, "api.example.org");
    expect(JSON.parse(wrong.body)).toEqual({
      response_action: "errors",
      errors: { [INPUT.confirmName.block]: `Type ${RECORD} exactly to confirm.` },
    });
    const selfModal = await submitApproval(OPERATOR, approvalId, RECORD);
    // the requester gets no modal (the button refused it), and a submission from none is not read
    expect(JSON.parse(selfModal.body).errors[INPUT.confirmName.block]).toContain(
      "Cutover did not open this form for you",
    );
    expect((await t.bot.deps.db.approval.findUniqueOrThrow({ where: { id: approvalId } })).status).toBe(
      "pending",
    );
    const refusals = await t.bot.deps.db.auditEvent.count({
      where: { action: { startsWith: "cutover.approve" }, outcome: "refused" },
    });
    expect(refusals).toBeGreaterThanOrEqual(4);
  });

  it("turns two approvers submitting at once into one approval, switches DNS and Pages, and measures the watch", async () => {
    const approval = await t.bot.deps.db.approval.findFirstOrThrow({ where: { status: "pending" } });
    const [a, b] = await Promise.all([
      submitApproval(APPROVER, approval.id, RECORD),
      submitApproval(APPROVER2, approval.id, RECORD),
    ]);
    const bodies = [a.body, b.body];
    expect(bodies.filter((x) => x === "")).toHaveLength(1);
    // the loser is told, whichever check catches it first (before or at the atomic decision)
    expect(bodies.find((x) => x !== "")).toMatch(
      /Someone else already decided|This request is already approved/,
    );

    const run = await waitForRun("dns-cutover", ["succeeded", "failed"]);
    expect(run.status).toBe("succeeded");
    expect(record().content).toBe(NEW_IP);
    expect(record().ttl).toBe(3600);
    // the record the file marks new (no `from`) was created, at Cloudflare's automatic TTL
    expect(cf.records("example.com").find((r) => r.name === NEW_RECORD)).toMatchObject({
      type: "CNAME",
      content: "d111.cloudfront.net",
      ttl: 1,
    });
    expect(cf.envVars("web")).toEqual({
      NEXT_PUBLIC_API_URL: `https://${RECORD}`,
      NEXT_PUBLIC_CDN_URL: "https://d111.cloudfront.net",
      KEEP_ME: "yes",
    });
    expect(cf.deployments("web")).toHaveLength(1);
    const figures = (run.steps[0]!.result as { figures: Record<string, number | boolean> }).figures;
    expect(figures.downtimeMs).toBe(0);
    expect(figures.errorRatePercent).toBe(0);
    expect(figures.samples).toBeGreaterThanOrEqual(4);
    const used = await t.bot.deps.db.approval.findUniqueOrThrow({ where: { id: approval.id } });
    expect(used.status).toBe("used");
    expect([APPROVER, APPROVER2]).toContain(used.decidedBy);
    await t.fake
      .waitFor(
        (c) => c.method === "chat.update" && JSON.stringify(c.args).includes("Approved and carried out"),
        { timeoutMs: 5_000 },
      )
      .catch(() => undefined);
  });

  it("rolls back with /rollback after ROLLBACK is typed, telling the channel who and how long", async () => {
    await t.command("", { command: "/rollback" });
    const modal = await t.fake.waitFor(
      (c) => c.method === "views.open" && JSON.stringify(c.args).includes("Type ROLLBACK"),
    );
    expect(JSON.stringify(modal.args)).toContain(`\`${OLD_IP}\``);
    const typo = await submitRollback(OPERATOR, "rollback");
    expect(JSON.parse(typo.body).errors[INPUT.rollbackWord.block]).toContain("Type ROLLBACK in capitals");
    expect(record().content).toBe(NEW_IP);

    const stranger = await t.command("", { command: "/rollback", user: STRANGER });
    expect(stranger.status).toBe(200);

    const ok = await submitRollback(OPERATOR, "ROLLBACK");
    expect(ok.body).toBe("");
    const done = await t.fake.waitFor(
      (c) =>
        c.method === "chat.postMessage" && String((c.args as { text?: string }).text).includes("Rollback by"),
      { timeoutMs: 10_000 },
    );
    const text = String((done.args as { text: string }).text);
    expect(text).toContain(`✅ Rollback by <@${OPERATOR}> done in`);
    expect(text).toMatch(/From confirmation to verified: \d+ m?s\./);
    expect(record().content).toBe(OLD_IP);
    expect(record().ttl).toBe(3600);
    // … and the new one removed again
    expect(cf.records("example.com").find((r) => r.name === NEW_RECORD)).toBeUndefined();
    expect(cf.envVars("web").NEXT_PUBLIC_API_URL).toBe("https://old.example.app");
    expect(cf.deployments("web")).toHaveLength(2);
  });

  it("reports exactly what is restored when Cloudflare fails half-way, and a second rollback finishes", async () => {
    // DNS and Pages are switched again by hand, as after a cutover
    await setRecordContent(NEW_IP);
    await t.bot.deps.cloudflare!.pages.setEnvVars("web", { NEXT_PUBLIC_API_URL: `https://${RECORD}` });
    // Pages keeps failing (past the SDK's own retries) until the fault is cleared
    cf.failAfter(
      0,
      { status: 500, code: 8000000, message: "Pages is having a bad day" },
      "PATCH /accounts/*/pages/projects/*",
    );
    await submitRollback(OPERATOR, "ROLLBACK");
    const partial = await t.fake.waitFor(
      (c) =>
        c.method === "chat.postMessage" && String((c.args as { text?: string }).text).includes("INCOMPLETE"),
      { timeoutMs: 10_000 },
    );
    const text = String((partial.args as { text: string }).text);
    expect(text).toContain(`✅ A ${RECORD}: ${NEW_IP} → ${OLD_IP}`);
    expect(text).toMatch(/❌ Pages web variables: not restored: .*Pages is having a bad day/);
    expect(text).toContain("❌ Pages web deployment: not started");

    cf.clearFaults();
    const again = await submitRollback(OPERATOR, "ROLLBACK");
    expect(again.status).toBe(200);
    const finished = await t.fake.waitFor(
      (c) =>
        c.method === "chat.postMessage" &&
        String((c.args as { text?: string }).text).includes("done in") &&
        String((c.args as { text?: string }).text).includes("already"),
      { timeoutMs: 10_000 },
    );
    expect(String((finished.args as { text: string }).text)).toContain(`A ${RECORD}: already ${OLD_IP}`);
  });

  it("voids an approval when the change differs at execution time, changing nothing", async () => {
    const approvalId = await requestCutover();
    // Hold the lock so the approved switch cannot start at once.
    const blocker = await t.bot.deps.db.run.create({
      data: { env: "test", kind: "step", target: "other", requestedBy: SECOND_OPERATOR, status: "running" },
    });
    await t.bot.deps.db.envLock.create({ data: { env: "test", runId: blocker.id, holder: SECOND_OPERATOR } });
    await submitApproval(APPROVER, approvalId, RECORD);
    await t.fake.waitFor(
      (c) =>
        c.method === "chat.postMessage" &&
        String((c.args as { text?: string }).text).includes("Approved, but not started"),
      { timeoutMs: 5_000 },
    );
    // Someone edits the record in the Cloudflare dashboard meanwhile.
    await setRecordContent("192.0.2.55");
    await t.bot.deps.db.envLock.deleteMany({});
    await t.bot.deps.db.run.update({ where: { id: blocker.id }, data: { status: "cancelled" } });
    const since = new Date();
    await t.command("run dns-cutover");
    const run = await waitForRun("dns-cutover", ["succeeded", "failed"], since);
    expect(run.status).toBe("failed");
    expect(run.error).toContain("the change is no longer the one that was approved");
    expect(record().content).toBe("192.0.2.55");
    expect((await t.bot.deps.db.approval.findUniqueOrThrow({ where: { id: approvalId } })).status).toBe(
      "void",
    );
    await setRecordContent(OLD_IP);
  });

  it("refuses an expired request", async () => {
    const approvalId = await requestCutover();
    // the file's approvalExpiryMinutes (30) and a minute more pass on the bot's calendar
    w.clock.advance(31 * 60_000);
    const res = await t.click(ACTION.approveCutover, approvalId, { user: APPROVER });
    expect(await replyText(t, res)).toContain("This request has expired");
  });

  it("lets only the requester withdraw", async () => {
    await t.bot.deps.db.approval.updateMany({ where: { status: "pending" }, data: { status: "expired" } });
    const approvalId = await requestCutover();
    const other = await t.click(ACTION.withdrawCutover, approvalId, { user: APPROVER });
    expect(await replyText(t, other)).toContain("Only the person who asked can withdraw");
    await t.click(ACTION.withdrawCutover, approvalId, { user: OPERATOR });
    await expect
      .poll(
        async () => (await t.bot.deps.db.approval.findUniqueOrThrow({ where: { id: approvalId } })).status,
      )
      .toBe("withdrawn");
  });
});
