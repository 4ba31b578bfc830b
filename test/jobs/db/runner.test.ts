import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readVerifyReport, runDatabaseVerify } from "../../../src/jobs/steps/db/verify.js";
import { CHANNEL, OPERATOR, startTestBot, type TestBot } from "../../helpers/bot.js";
import { queryOnce, type TestDatabase } from "../../helpers/db.js";
import { runFinished } from "../../helpers/wait.js";
import { createFixtureSource, createRdsLikeTarget, dbConfig, fingerprint, makeDeps } from "./fixture.js";

let t: TestBot;
let source: TestDatabase;
let target: TestDatabase & { role: string };

beforeAll(async () => {
  source = await createFixtureSource("run_src");
  target = await createRdsLikeTarget("run_dst");
  t = await startTestBot("dbrun", {
    config: dbConfig(),
    env: {
      SOURCE_DATABASE_URL: source.url,
      TARGET_DATABASE_URL: target.url,
      RDS_MASTER_PASSWORD: "unused-here",
    },
  });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await source?.drop();
  await target?.drop();
});

const waitForRun = (runId: string, timeoutMs = 60_000) =>
  runFinished(t.bot.deps.db, runId, { timeoutMs, intervalMs: 200 });

describe("the data phase through the real Runner", () => {
  it("runs preflight, dump, restore and verify, shows progress in Slack, and leaves the target identical", async () => {
    const before = await fingerprint(source.url);
    const submitted = await t.bot.deps.runner.submit({
      target: "data",
      dryRun: false,
      requestedBy: OPERATOR,
      channel: CHANNEL,
      idempotencyKey: null,
    });
    expect(submitted.created).toBe(true);
    const runId = (submitted as { runId: string }).runId;
    const run = await waitForRun(runId);
    expect(run.error).toBeNull();
    expect(run.status).toBe("succeeded");
    expect(run.steps.map((s) => [s.step, s.status])).toEqual([
      ["db-preflight", "succeeded"],
      ["db-dump", "succeeded"],
      ["db-restore", "succeeded"],
      ["db-verify", "succeeded"],
    ]);
    const verify = run.steps.find((s) => s.step === "db-verify")!;
    expect(JSON.stringify(verify.result)).toContain('"identical":true');
    const restore = run.steps.find((s) => s.step === "db-restore")!;
    expect(restore.progress).toMatchObject({ unit: "objects" });

    // the run's Slack thread got a note per step, the verify one with the totals
    const notes = await t.fake.waitFor(
      (c) =>
        c.method === "chat.postMessage" &&
        String((c.args as { text?: string }).text ?? "").includes("db-verify"),
      { timeoutMs: 10_000 },
    );
    expect(String((notes.args as { text: string }).text)).toMatch(
      /identical: \d+ tables, \d+ rows checksummed/,
    );

    const deps = await makeDeps(source.url, target.url, { dataDir: t.env.CUTOVER_DATA_DIR! });
    const saved = await readVerifyReport(deps.dataDir, deps.file.environment);
    expect(saved?.identical).toBe(true);
    expect((await runDatabaseVerify(deps)).identical).toBe(true);
    expect(await fingerprint(source.url)).toEqual(before);
  }, 90_000);

  it("reports a difference once: the verify step fails on its first attempt, naming the row, and is not retried", async () => {
    await queryOnce(target.url, `UPDATE "販売 Sales"."商品" SET "名称" = 'tampered' WHERE "商品ID" = 42`);
    const submitted = await t.bot.deps.runner.submit({
      target: "db-verify",
      dryRun: false,
      requestedBy: OPERATOR,
      channel: CHANNEL,
      idempotencyKey: null,
    });
    const runId = (submitted as { runId: string }).runId;
    const run = await waitForRun(runId);
    expect(run.status).toBe("failed");
    const step = run.steps.find((s) => s.step === "db-verify")!;
    expect(step.attempts).toBe(1);
    expect(step.error).toContain(`"商品ID" = '42' changed`);
    const attempts = await t.bot.deps.db.auditEvent.findMany({ where: { runId, action: "step.attempt" } });
    expect(attempts).toHaveLength(1);
  }, 60_000);
});
