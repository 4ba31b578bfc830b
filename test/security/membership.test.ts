import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";
import { sendRollbackSubmission, sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import { GROUP_MEMBER, OPERATOR, openModal, type TestBot } from "../helpers/bot.js";
import { NEW_IP, pendingDnsCutover, RECORD, startDnsTestBot } from "../helpers/cutover-world.js";

/**
 * Issue 15, item 4: user-group membership is cached for a minute for reading, but the moment an
 * approval or a rollback is decided it is asked afresh, so someone just removed from the group
 * cannot approve or roll back with a modal opened while they were in it.
 */

const APPROVER_GROUP = "S0APPROVERS";
const GROUP_APPROVER = "U0GROUPAPPR";
let t: TestBot;
let cf: FakeCloudflare;
let world: Awaited<ReturnType<typeof startDnsTestBot>>;

beforeAll(async () => {
  world = await startDnsTestBot("sec_membership", [APPROVER_GROUP]);
  ({ t, cf } = world);
  t.fake.setUsergroup(APPROVER_GROUP, [GROUP_APPROVER]);
});

afterAll(async () => {
  await world?.stop();
});

const record = () => cf.records("example.com").find((r) => r.name === RECORD)!;

describe("group membership at the moment of a decision (issue 15, item 4)", () => {
  it("someone removed from the operators' group cannot roll back with a modal opened before", async () => {
    const dns = t.bot.deps.cloudflare!.dns;
    const zone = await dns.findZone("example.com");
    await dns.updateRecord((await dns.getRecord(zone, RECORD, "A"))!, { content: NEW_IP });

    const modal = await openModal(t, (triggerId) =>
      t.command("", { command: "/rollback", user: GROUP_MEMBER, triggerId }),
    );
    expect(modal).toBeDefined();
    t.fake.setUsergroup("S0OPS", []); // taken out of the group, seconds later
    const before = await t.bot.deps.db.auditEvent.count({
      where: { actor: GROUP_MEMBER, action: "rollback.confirm", outcome: "refused" },
    });
    const res = await sendRollbackSubmission({
      url: t.eventsUrl,
      signingSecret: t.signingSecret,
      userId: GROUP_MEMBER,
      ...modal,
      word: "ROLLBACK",
    });
    expect(JSON.parse(res.body || "{}").errors?.[INPUT.rollbackWord.block]).toContain("Only an operator");
    expect(
      await t.bot.deps.db.auditEvent.count({
        where: { actor: GROUP_MEMBER, action: "rollback.confirm", outcome: "refused" },
      }),
    ).toBe(before + 1);
    expect(record().content).toBe(NEW_IP);
    t.fake.setUsergroup("S0OPS", [GROUP_MEMBER]);
  });

  it("someone removed from the approvers' group cannot approve with a modal opened before", async () => {
    const approval = await pendingDnsCutover(t.bot.deps.db, OPERATOR);
    const modal = await openModal(t, (triggerId) =>
      t.click(ACTION.approveCutover, approval.id, { user: GROUP_APPROVER, triggerId }),
    );
    expect(modal).toBeDefined();
    t.fake.setUsergroup(APPROVER_GROUP, []);
    const res = await sendViewSubmission({
      url: t.eventsUrl,
      signingSecret: t.signingSecret,
      callbackId: CALLBACK.approveCutover,
      privateMetadata: approval.id,
      userId: GROUP_APPROVER,
      ...modal,
      values: {
        [INPUT.confirmName.block]: {
          [INPUT.confirmName.action]: { type: "plain_text_input", value: RECORD },
        },
      },
    });
    expect(JSON.parse(res.body || "{}").errors?.[INPUT.confirmName.block]).toContain("not an approver");
    expect((await t.bot.deps.db.approval.findUniqueOrThrow({ where: { id: approval.id } })).status).toBe(
      "pending",
    );
  });
});
