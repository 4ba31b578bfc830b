import { WebClient } from "@slack/web-api";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SlackProgress } from "../../src/cloud/slack-progress.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createRun } from "../../src/store/runs.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

const CHANNEL = "C0MIGRATE";
let state: TestDatabase;
let db: Db;
let fake: FakeSlack;

beforeAll(async () => {
  state = await createTestDatabase("slack_progress");
  db = createPrismaClient(state.url);
  fake = new FakeSlack();
  await fake.start();
});
afterAll(async () => {
  await db?.$disconnect();
  await fake?.stop();
  await state?.drop();
});

/** A new run of the step `probe`, asked by U0OP in CHANNEL. */
async function probeRun() {
  const created = await createRun(
    db,
    {
      env: "test",
      kind: "step",
      target: "probe",
      dryRun: false,
      options: {},
      requestedBy: "U0OP",
      channel: CHANNEL,
      idempotencyKey: null,
      steps: [{ step: "probe" }],
    },
    false,
  );
  if (!created.created) throw new Error("no run");
  return created;
}

describe("SlackProgress in a process that resumes a run", () => {
  it("puts its first thread note under the message the earlier process posted", async () => {
    const created = await probeRun();
    // the earlier process posted the progress message and recorded it, then died
    const client = new WebClient("xoxb-test", { slackApiUrl: fake.apiUrl });
    const posted = await client.chat.postMessage({ channel: CHANNEL, text: "🔄 Run probe: running" });
    await db.run.update({ where: { id: created.runId }, data: { messageTs: posted.ts as string } });

    // a new process: nothing known yet about the run's channel when the first note comes
    const progress = new SlackProgress(client, db, pino({ level: "silent" }), CHANNEL);
    progress.runNote(created.runId, "Resumed after an interruption; continuing from the last checkpoint.");
    await progress.flush();

    const [message] = fake.messages(CHANNEL);
    expect(fake.messages(CHANNEL)).toHaveLength(1);
    expect(message!.replies.map((r) => r.text)).toEqual([
      "Resumed after an interruption; continuing from the last checkpoint.",
    ]);
  });
});

describe("SlackProgress edits", () => {
  it("sends no edit that changes nothing, and every edit that does", async () => {
    const created = await probeRun();
    const client = new WebClient("xoxb-test", { slackApiUrl: fake.apiUrl });
    const progress = new SlackProgress(client, db, pino({ level: "silent" }), CHANNEL, 1000);
    const before = fake.calls("chat.update").length;
    // the first change posts the message (once the run's channel is looked up)
    progress.runChanged(created.runId);
    await expect
      .poll(async () => (await db.run.findUniqueOrThrow({ where: { id: created.runId } })).messageTs)
      .toBeTruthy();
    // the same state again, twice: each is rendered (flush waits for it) and sends nothing
    for (let i = 0; i < 2; i++) {
      progress.runChanged(created.runId);
      await progress.flush();
    }
    await db.run.update({ where: { id: created.runId }, data: { status: "cancelled" } });
    progress.runChanged(created.runId);
    await progress.flush();
    // edits go out in order on one chain: the one that changes something is the only one
    const edits = fake.calls("chat.update").slice(before);
    expect(edits.map((e) => e.args.text)).toEqual(["⏹️ Run probe: cancelled"]);
  });
});
