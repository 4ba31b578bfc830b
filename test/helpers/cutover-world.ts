import { expect } from "vitest";
import { type AppServer, startAppServer } from "../../src/sandbox/app-servers.js";
import { EXAMPLE_OLD_IP, FakeCloudflare, seedExampleCutover } from "../../src/sandbox/FakeCloudflare.js";
import { sendRollbackSubmission, sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { createApproval } from "../../src/store/approvals.js";
import type { Db } from "../../src/store/client.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  OPERATOR,
  openModal,
  replyText,
  SECOND_OPERATOR,
  startTestBot,
  type TestBot,
  testConfig,
} from "./bot.js";
import { SteerableClock } from "./clock.js";
import { waitForValue } from "./wait.js";

export const APPROVER2 = "U0APPROVER2";
export const OLD_IP = EXAMPLE_OLD_IP;
export const NEW_IP = "198.51.100.7";
export const RECORD = "api.example.com";
/** a record the cutover creates (no `from`): removed again by a rollback */
export const NEW_RECORD = "cdn.example.com";
export const CF_TOKEN = "cf-test-token-0123456789";
export const CF_ACCOUNT = "0123456789abcdef0123456789abcdef";

/** A migration of one A record and two Pages variables, with a 5 s watch window. */
export function cutoverConfig(oldApp: AppServer, newApp: AppServer, extraSteps = ""): string {
  return `version: 1
project: testco
environment: test
slack: { channel: ${CHANNEL} }
access:
  operators: [${OPERATOR}, ${SECOND_OPERATOR}]
  approvers: [${APPROVER}, ${APPROVER2}]
  channels: [${CHANNEL}]
engine: { attempts: 2, backoffMs: 50 }
source:
  app: { url: ${oldApp.url}, healthPath: /health }
dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  cutoverTtl: 60
  records:
    - { name: ${RECORD}, type: A, from: ${OLD_IP}, to: ${NEW_IP} }
    - { name: ${NEW_RECORD}, type: CNAME, to: d111.cloudfront.net }   # new: created by the cutover
pages:
  project: web
  accountId: ${CF_ACCOUNT}
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  env:
    NEXT_PUBLIC_API_URL: { from: "https://old.example.app", to: "https://${RECORD}" }
    NEXT_PUBLIC_CDN_URL: { from: "https://pub-old.r2.dev", to: "https://d111.cloudfront.net" }
cutover:
  watchWindowSeconds: 5
  probeIntervalSeconds: 1
verification:
  baseUrl: ${newApp.url}
runbook:
  phases:
    - id: switch
      title: Verify and switch
      steps:
        - { id: lower-ttl, uses: dns.lower-ttl }
        - { id: dns-cutover, uses: dns.cutover }
${extraSteps}`;
}

/** The real bot over signed requests, a Cloudflare fake with the record and the Pages project, the old and new apps. */
export interface CutoverWorld {
  t: TestBot;
  /** the bot's calendar: `clock.advance(31 * 60_000)` is half an hour later for approvals and TTLs */
  clock: SteerableClock;
  cf: FakeCloudflare;
  oldApp: AppServer;
  newApp: AppServer;
  /** the record as the fake holds it now */
  record(): ReturnType<FakeCloudflare["records"]>[number];
  waitForRun(
    target: string,
    statuses: string[],
    since?: Date,
    timeoutMs?: number,
  ): Promise<
    Awaited<ReturnType<TestBot["bot"]["deps"]["db"]["run"]["findFirstOrThrow"]>> & {
      steps: Array<{ result: unknown }>;
    }
  >;
  /** moves the TTL lowering `hours` into the past: the test's clock, not an hour's wait */
  ageTheTtlChange(hours: number): Promise<void>;
  /** someone changes the record behind Cutover's back */
  setRecordContent(content: string): Promise<void>;
  requestCutover(): Promise<string>;
  submitApproval(user: string, approvalId: string, typed: string): ReturnType<typeof sendRollbackSubmission>;
  submitRollback(
    user: string,
    word: string,
    extra?: Record<string, string>,
  ): ReturnType<typeof sendRollbackSubmission>;
  stop(): Promise<void>;
}

/** What an approver types in the approval modal: the record's name (to confirm) and a note, if any. */
export function approvalValues(typed: string, note?: string) {
  return {
    [INPUT.confirmName.block]: { [INPUT.confirmName.action]: { type: "plain_text_input", value: typed } },
    ...(note !== undefined
      ? { [INPUT.note.block]: { [INPUT.note.action]: { type: "plain_text_input", value: note } } }
      : {}),
  };
}

/**
 * A pending request, made straight in the state database as `/migrate cutover` would make it,
 * to switch {@link RECORD} from {@link OLD_IP} to {@link NEW_IP}, asked by `requestedBy` in
 * `channel`, for an hour.
 */
export function pendingDnsCutover(db: Db, requestedBy: string, channel: string = CHANNEL) {
  return createApproval(db, {
    action: "dns.cutover",
    change: {
      environment: "test",
      zone: "example.com",
      records: [
        {
          name: RECORD,
          type: "A",
          from: OLD_IP,
          to: NEW_IP,
          fromTtl: 60,
          originalTtl: 3600,
          ttl: 3600,
          proxied: false,
        },
      ],
      pages: null,
    },
    requestedBy,
    channel,
    expiresAt: new Date(Date.now() + 3600_000),
  });
}

/**
 * The test bot (the tests' access rules, `approvers` added to its approvers) with a `dns`
 * section switching {@link RECORD}, over a FakeCloudflare seeded with the example cutover, so that
 * an approval and `/rollback` have their modals. `stop` stops both.
 */
export async function startDnsTestBot(
  label: string,
  approvers: string[],
): Promise<{ t: TestBot; cf: FakeCloudflare; stop(): Promise<void> }> {
  const cf = new FakeCloudflare({ apiToken: CF_TOKEN, accountId: CF_ACCOUNT });
  await cf.start();
  seedExampleCutover(cf);
  const config = `${testConfig({ probeRows: 10 }).replace(
    `approvers: [${APPROVER}]`,
    `approvers: [${[APPROVER, ...approvers].join(", ")}]`,
  )}
dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  records:
    - { name: ${RECORD}, type: A, from: ${OLD_IP}, to: ${NEW_IP} }
`;
  expect(config).toContain(`approvers: [${[APPROVER, ...approvers].join(", ")}]`);
  const t = await startTestBot(label, {
    config,
    env: { CLOUDFLARE_API_TOKEN: CF_TOKEN, CLOUDFLARE_BASE_URL: cf.baseUrl },
  }).catch(async (err) => {
    await cf.stop();
    throw err;
  });
  return {
    t,
    cf,
    async stop() {
      await t.stop();
      await cf.stop();
    },
  };
}

/** `extraSteps`: YAML lines appended to the phase's steps (8 spaces in), e.g. a long-running step. */
export async function startCutoverWorld(label: string, extraSteps = ""): Promise<CutoverWorld> {
  const cf = new FakeCloudflare({ apiToken: CF_TOKEN, accountId: CF_ACCOUNT });
  await cf.start();
  seedExampleCutover(cf, { KEEP_ME: "yes" });
  cf.setDeploymentDuration(200);
  const oldApp = await startAppServer({ name: "old" });
  const newApp = await startAppServer({ name: "new" });
  const clock = new SteerableClock();
  const t = await startTestBot(label, {
    clock,
    config: cutoverConfig(oldApp, newApp, extraSteps),
    env: { CLOUDFLARE_API_TOKEN: CF_TOKEN, CLOUDFLARE_BASE_URL: cf.baseUrl },
  });
  const db = t.bot.deps.db;
  const world: CutoverWorld = {
    t,
    clock,
    cf,
    oldApp,
    newApp,
    record: () => cf.records("example.com").find((r) => r.name === RECORD)!,
    async waitForRun(target, statuses, since = new Date(0), timeoutMs = 30_000) {
      const run = await waitForValue(
        `${target}: a run to reach ${statuses.join("/")}`,
        () =>
          db.run.findFirst({
            where: { target, createdAt: { gt: since } },
            orderBy: { createdAt: "desc" },
            include: { steps: true },
          }),
        (r) => r !== null && statuses.includes(r.status),
        { timeoutMs, intervalMs: 100 },
      );
      return run!;
    },
    async ageTheTtlChange(hours) {
      const when = new Date(Date.now() - hours * 3600_000).toISOString();
      const n =
        await db.$executeRaw`UPDATE checkpoints SET value = jsonb_set(value, '{loweredAt}', to_jsonb(${when}::text)) WHERE key = 'snapshot'`;
      expect(n).toBe(1);
    },
    async setRecordContent(content) {
      const dns = t.bot.deps.cloudflare!.dns;
      const zone = await dns.findZone("example.com");
      const rec = await dns.getRecord(zone, RECORD, "A");
      await dns.updateRecord(rec!, { content });
    },
    async requestCutover() {
      const res = await t.command("cutover");
      expect(await replyText(t, res)).toContain("Cutover request posted");
      const approval = await db.approval.findFirstOrThrow({
        where: { status: "pending" },
        orderBy: { createdAt: "desc" },
      });
      return approval.id;
    },
    async submitApproval(user, approvalId, typed) {
      // as a person does: the Approve button opens the modal the submission comes from
      const modal = await openModal(t, (triggerId) =>
        t.click(ACTION.approveCutover, approvalId, { user, triggerId }),
      );
      return sendViewSubmission({
        url: t.eventsUrl,
        signingSecret: t.signingSecret,
        ...modal,
        callbackId: CALLBACK.approveCutover,
        privateMetadata: approvalId,
        userId: user,
        values: approvalValues(typed, `ok from ${user}`),
      });
    },
    async submitRollback(user, word, extra = {}) {
      // as a person does: /rollback opens the modal the submission comes from
      const modal = await openModal(t, (triggerId) =>
        t.command("", { command: "/rollback", user, triggerId }),
      );
      return sendRollbackSubmission({
        url: t.eventsUrl,
        signingSecret: t.signingSecret,
        ...modal,
        userId: user,
        word,
        reason: "drill",
        extra,
      });
    },
    async stop() {
      await t?.stop();
      await cf?.stop();
      await oldApp?.stop();
      await newApp?.stop();
    },
  };
  return world;
}
