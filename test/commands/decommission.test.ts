import { randomBytes } from "node:crypto";
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  latestModal,
  OPERATOR,
  replyText,
  startTestBot,
  type TestBot,
} from "../helpers/bot.js";
import { createEmptyDatabase, databaseUrl, type TestDatabase } from "../helpers/db.js";
import { type MotoHandle, useMoto } from "../helpers/moto.js";
import { waitForValue } from "../helpers/wait.js";

/**
 * `/migrate decommission` through the real receiver: refused while the stabilisation window is
 * open, then (the cutover 15 days back, the KPIs green over the window) a request an approver
 * other than the requester confirms by typing the environment's name, after which the step
 * archives the source database into the target bucket.
 */
const REGION = "ap-southeast-1";
const bucket = `decom-bot-${randomBytes(4).toString("hex")}`;
let t: TestBot;
let source: TestDatabase;
let moto: MotoHandle;
let s3: S3Client;

function config(): string {
  return `version: 1
project: decomco
environment: test
slack: { channel: ${CHANNEL} }
access:
  operators: [${OPERATOR}]
  approvers: [${APPROVER}]
  channels: [${CHANNEL}]
engine: { attempts: 1, backoffMs: 50 }
source:
  database: { urlEnv: NEON_DATABASE_URL, provider: Neon }
target:
  aws: { region: ${REGION} }
  s3: { bucket: ${bucket}, region: ${REGION} }
dns:
  zone: example.com
  apiTokenEnv: CLOUDFLARE_API_TOKEN
  records:
    - { name: api.example.com, type: A, from: 203.0.113.10, to: 198.51.100.7 }
kpis:
  probes:
    endpoints:
      - { id: api-health, url: "http://127.0.0.1:9/health" }
    database: { enabled: false }
runbook:
  phases:
    - id: switch
      title: Switch
      steps:
        - { id: dns-cutover, uses: dns.cutover }
    - id: stabilise
      title: Stabilise
      steps:
        - { id: decommission, uses: decommission, with: { notBeforeDays: 14, scratchUrlEnv: SCRATCH_PG_URL } }
`;
}

/** A DNS cutover that finished `days` ago, as the run store records one. */
async function cutoverDaysAgo(days: number) {
  const at = new Date(Date.now() - days * 86_400_000);
  await t.bot.deps.db.run.create({
    data: {
      env: "test",
      kind: "step",
      target: "dns-cutover",
      requestedBy: OPERATOR,
      status: "succeeded",
      steps: {
        create: [{ step: "dns-cutover", position: 0, status: "succeeded", startedAt: at, finishedAt: at }],
      },
    },
  });
  return at;
}

beforeAll(async () => {
  source = await createEmptyDatabase("decom_bot_src");
  const c = new pg.Client({ connectionString: source.url });
  await c.connect();
  await c.query(`CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL);
    INSERT INTO products (name) SELECT 'item ' || g FROM generate_series(1, 300) g;`);
  await c.end();
  moto = await useMoto();
  s3 = new S3Client({
    region: REGION,
    endpoint: moto.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  await s3.send(
    new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: REGION } }),
  );
  t = await startTestBot("decom-bot", {
    config: config(),
    env: {
      NEON_DATABASE_URL: source.url,
      CLOUDFLARE_API_TOKEN: "cf-unused-in-this-test",
      SCRATCH_PG_URL: databaseUrl("postgres"),
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    },
  });
}, 120_000);

afterAll(async () => {
  await t?.stop();
  s3?.destroy();
  await source?.drop();
  await moto?.stop();
});

describe("/migrate decommission", () => {
  it("is refused while the stabilisation window is open, saying why", async () => {
    await cutoverDaysAgo(3);
    const text = await replyText(t, await t.command("decommission"));
    expect(text).toMatch(/Not yet: .*(day|window)/i);
    expect(await t.bot.deps.db.approval.count({ where: { action: "decommission" } })).toBe(0);
  });

  it("after the window with green KPIs: a second person approves by typing the environment, and the source is archived", async () => {
    const db = t.bot.deps.db;
    await db.run.deleteMany({});
    const cutAt = await cutoverDaysAgo(15);
    // a green window: one good probe an hour since the cutover
    const rows = Array.from({ length: 15 * 24 }, (_, i) => ({
      at: new Date(cutAt.getTime() + (i + 1) * 3600_000),
      target: "api-health",
      ok: true,
      status: 200,
      latencyMs: 40 + (i % 7),
    }));
    await db.kpiSample.createMany({ data: rows });

    const reply = await replyText(t, await t.command("decommission"));
    expect(reply).toContain("Decommission request posted");
    const approval = await db.approval.findFirstOrThrow({
      where: { action: "decommission", status: "pending" },
    });
    const posted = await t.fake.waitFor(
      (c) => c.method === "chat.postMessage" && JSON.stringify(c.args).includes("Decommission requested"),
    );
    expect(JSON.stringify(posted.args)).toContain("Neon");

    // the requester may not approve their own request
    const self = await t.click(ACTION.approveCutover, approval.id, { user: OPERATOR });
    expect(await replyText(t, self)).toContain("You asked for this decommission");

    await t.click(ACTION.approveCutover, approval.id, { user: APPROVER });
    const modal = await t.fake.waitFor(
      (c) => c.method === "views.open" && JSON.stringify(c.args).includes("Approve decommission"),
    );
    expect(JSON.stringify(modal.args)).toContain("Type test to confirm");
    const opened = await latestModal(t, CALLBACK.approveCutover, approval.id);
    const submit = (typed: string) =>
      sendViewSubmission({
        url: t.eventsUrl,
        signingSecret: t.signingSecret,
        ...opened,
        callbackId: CALLBACK.approveCutover,
        privateMetadata: approval.id,
        userId: APPROVER,
        values: {
          [INPUT.confirmName.block]: {
            [INPUT.confirmName.action]: { type: "plain_text_input", value: typed },
          },
          [INPUT.note.block]: {
            [INPUT.note.action]: { type: "plain_text_input", value: "after 14 green days" },
          },
        },
      });
    const wrong = await submit("production");
    expect(JSON.parse(wrong.body).errors[INPUT.confirmName.block]).toBe("Type test exactly to confirm.");
    expect((await submit("test")).body).toBe("");

    const run = await waitForValue(
      "the decommission run to finish",
      () => db.run.findFirst({ where: { target: "decommission" }, include: { steps: true } }),
      (r) => r !== null && ["succeeded", "failed"].includes(r.status),
      { timeoutMs: 60_000, intervalMs: 200 },
    ).then((r) => r!);
    expect(run.status, run.error ?? "").toBe("succeeded");
    expect(run.requestedBy).toBe(OPERATOR);
    expect((await db.approval.findUniqueOrThrow({ where: { id: approval.id } })).status).toBe("used");
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "cutover-archive/" }));
    expect(listed.Contents?.length).toBeGreaterThanOrEqual(1);
    const summary = JSON.stringify(run.steps[0]!.result);
    expect(summary).toMatch(/Neon/);
  });
});
