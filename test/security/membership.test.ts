import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXAMPLE_OLD_IP, FakeCloudflare, seedExampleCutover } from "../../src/sandbox/FakeCloudflare.js";
import { sendRollbackSubmission, sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { createApproval } from "../../src/store/approvals.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  GROUP_MEMBER,
  OPERATOR,
  openModal,
  startTestBot,
  type TestBot,
  testConfig,
} from "../helpers/bot.js";

/**
 * Issue 15, item 4: user-group membership is cached for a minute for reading, but the moment an
 * approval or a rollback is decided it is asked afresh, so someone just removed from the group
 * cannot approve or roll back with a modal opened while they were in it.
 */

const APPROVER_GROUP = "S0APPROVERS";
const GROUP_APPROVER = "U0GROUPAPPR";
const RECORD = "api.example.com";
const CF_TOKEN = "cf-membership-token-0123456789";
const CF_ACCOUNT = "0123456789abcdef0123456789abcdef";

let t: TestBot;
let cf: FakeCloudflare;

beforeAll(async () => {
  cf = new FakeCloudflare({ apiToken: CF_TOKEN, accountId: CF_ACCOUNT });
  await cf.start();
  seedExampleCutover(cf);
  const config = `${testConfig({ probeRows: 10 }).replace(
    `approvers: [${APPROVER}]`,
    `approvers: [${APPROVER}, ${APPROVER_GROUP}]`,
  )}
dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  records:
    - { name: ${RECORD}, type: A, from: ${EXAMPLE_OLD_IP}, to: 198.51.100.7 }
`;
  t = await startTestBot("sec_membership", {
    config,
    env: { CLOUDFLARE_API_TOKEN: CF_TOKEN, CLOUDFLARE_BASE_URL: cf.baseUrl },
  });
  t.fake.setUsergroup(APPROVER_GROUP, [GROUP_APPROVER]);
});

afterAll(async () => {
  await t?.stop();
  await cf?.stop();
});

const record = () => cf.records("example.com").find((r) => r.name === RECORD)!;

describe("group membership at the moment of a decision (issue 15, item 4)", () => {
  it("someone removed from the operators' group cannot roll back with a modal opened before", async () => {
    const dns = t.bot.deps.cloudflare!.dns;
    const zone = await dns.findZone("example.com");
    await dns.updateRecord((await dns.getRecord(zone, RECORD, "A"))!, { content: "198.51.100.7" });

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
    expect(record().content).toBe("198.51.100.7");
    t.fake.setUsergroup("S0OPS", [GROUP_MEMBER]);
  });

  it("someone removed from the approvers' group cannot approve with a modal opened before", async () => {
    const approval = await createApproval(t.bot.deps.db, {
      action: "dns.cutover",
      change: {
        environment: "test",
        zone: "example.com",
        records: [
          {
            name: RECORD,
            type: "A",
            from: EXAMPLE_OLD_IP,
            to: "198.51.100.7",
            fromTtl: 60,
            originalTtl: 3600,
            ttl: 3600,
            proxied: false,
          },
        ],
        pages: null,
      },
      requestedBy: OPERATOR,
      channel: CHANNEL,
      expiresAt: new Date(Date.now() + 3600_000),
    });
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
