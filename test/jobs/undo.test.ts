import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stepRegistry } from "../../src/jobs/define-step.js";
import type { Runner } from "../../src/jobs/Runner.js";
import { createDbWriteProbeStep } from "../../src/jobs/steps/db/write-probe.js";
import { createHttpCheckStep } from "../../src/jobs/steps/verify/http-check.js";
import type { Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { runnerFile, runRequest, startRunnerOnNewDb, type TestRunner, testStep } from "../helpers/runner.js";
import { makeStepDeps } from "../helpers/step-context.js";
import { runFinished } from "../helpers/wait.js";

/**
 * `/migrate undo <phase>` as the runner carries it out: the phase's undos, newest step first,
 * reading what the undone run recorded, previewed by a dry run, and audited.
 */
const FILE = runnerFile({
  engine: { attempts: 1, backoffMs: 20 },
  phases: `    - id: rows
      title: Rows
      steps:
        - { id: first-rows, uses: db.write-probe, with: { urlEnv: PROBE_URL, table: undo_first, rows: 30, batch: 10 } }
        - { id: check, uses: http.check, with: { url: "http://127.0.0.1:9/" } }
        - { id: second-rows, uses: db.write-probe, with: { urlEnv: PROBE_URL, table: undo_second, rows: 20, batch: 10 } }
    - id: checks
      title: Checks
      steps:
        - { id: only-check, uses: http.check, with: { url: "http://127.0.0.1:9/" } }
    - id: switch
      title: Switch
      steps:
        - { id: dns-switch, uses: dns.cutover }
`,
});

let probe: TestDatabase;
let tr: TestRunner;
let runner: Runner;
let db: Db;
let switchUndone = false;

const request = (target: string, extra: Parameters<typeof runRequest>[1] = {}) =>
  runner.submit(runRequest(target, extra));

async function tables(): Promise<string[]> {
  const client = new pg.Client({ connectionString: probe.url });
  await client.connect();
  try {
    const res = await client.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'undo_%' ORDER BY 1",
    );
    return res.rows.map((r) => r.name);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  probe = await createTestDatabase("undo_probe");
  const env = { PROBE_URL: probe.url };
  tr = await startRunnerOnNewDb("undo", {
    file: FILE,
    registry: stepRegistry([
      createDbWriteProbeStep(makeStepDeps({ file: FILE, env })),
      createHttpCheckStep(makeStepDeps({ file: FILE })),
      // stands in for the DNS switch: what matters is that an undo never calls its undo
      testStep("dns.cutover", {
        undo: async () => {
          switchUndone = true;
        },
      }),
    ]),
  });
  ({ runner, db } = tr);
});

afterAll(async () => {
  await tr?.stop();
  await probe?.drop();
});

describe("undo of a phase", () => {
  it("previews, then tears down what the phase's steps created, newest first, and says so when run again", async () => {
    // The phase ran as far as its failing check: the first table exists, the second was never made.
    const ran = await request("rows");
    expect(ran.created).toBe(true);
    if (!ran.created) return;
    const first = await runFinished(db, ran.runId);
    expect(first.status).toBe("failed");
    expect(await tables()).toEqual(["undo_first"]);

    const preview = await request("rows", { dryRun: true, options: { undo: true } });
    if (!preview.created) throw new Error("the preview was not created");
    const previewed = await runFinished(db, preview.runId);
    expect(previewed.status).toBe("succeeded");
    // newest first, and only the steps that have an undo
    expect(previewed.steps.map((s) => s.step)).toEqual(["second-rows", "first-rows"]);
    expect(previewed.steps.map((s) => (s.plan as { summary: string }).summary)).toEqual([
      "never ran in this environment: nothing to undo",
      `would undo what run ${ran.runId.slice(0, 8)} did (db.write-probe: write numbered rows into a table in batches, checkpointing, to prove a database takes writes)`,
    ]);
    expect(await tables()).toEqual(["undo_first"]);

    const undo = await request("rows", { options: { undo: true } });
    if (!undo.created) throw new Error("the undo was not created");
    const undone = await runFinished(db, undo.runId);
    expect(undone.status).toBe("succeeded");
    expect(await tables()).toEqual([]);
    const asked = await db.auditEvent.findFirst({ where: { runId: undo.runId, action: "run.request" } });
    expect(asked?.details).toMatchObject({ undo: true, steps: ["second-rows", "first-rows"] });

    const again = await request("rows", { dryRun: true, options: { undo: true } });
    if (!again.created) throw new Error("the second preview was not created");
    const twice = await runFinished(db, again.runId);
    expect((twice.steps[1]!.plan as { summary: string }).summary).toBe(
      `already undone by run ${undo.runId.slice(0, 8)}: nothing to undo`,
    );
  });

  it("refuses a phase with nothing to undo, and the whole runbook, saying what to do instead", async () => {
    await expect(request("checks", { options: { undo: true } })).rejects.toThrow(
      /Nothing in `checks` can be undone/,
    );
    await expect(request("all", { options: { undo: true } })).rejects.toThrow(
      /`undo` takes one phase or step/,
    );
  });

  it("leaves the DNS switch to /rollback, and says so", async () => {
    const ran = await request("switch");
    if (!ran.created) throw new Error("the run was not created");
    expect((await runFinished(db, ran.runId)).status).toBe("succeeded");
    const undo = await request("switch", { options: { undo: true } });
    if (!undo.created) throw new Error("the undo was not created");
    const undone = await runFinished(db, undo.runId);
    expect(undone.status).toBe("succeeded");
    expect((undone.steps[0]!.result as { summary: string }).summary).toMatch(
      /^left alone: the way back from the DNS switch is `\/rollback`/,
    );
    expect(switchUndone).toBe(false);
  });
});
