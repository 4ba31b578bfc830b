import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import type { StepDefinition } from "../../src/jobs/define-step.js";
import { failedNote, firstLine, retryNote, succeededNote } from "../../src/jobs/events.js";
import { runnerFile, runRequest, startRunnerOnNewDb, type TestRunner, testStep } from "../helpers/runner.js";

// a pg_restore-like error: a first line that says what, then thousands of characters of detail
const LONG_ERROR = `pg_restore: error: could not execute query: ERROR: relation "orders" already exists\n${"pg_restore: detail: Command was: CREATE TABLE public.orders (id bigint NOT NULL, …);\n".repeat(70)}`;

describe("the runner's notes", () => {
  it("say one line: the first line of an error, cut at a word", () => {
    expect(LONG_ERROR.length).toBeGreaterThan(5_000);
    const line = firstLine(LONG_ERROR);
    expect(line).toBe(
      'pg_restore: error: could not execute query: ERROR: relation "orders" already exists …',
    );
    const long = firstLine(`word ${"x".repeat(20)} `.repeat(40));
    expect([...long].length).toBeLessThanOrEqual(300);
    // cut after a whole word, not inside one
    expect(long).toMatch(/ (word|x{20})…$/);
    expect(long).not.toContain("\n");
  });

  it("name the verification only when it says something the summary did not", () => {
    expect(succeededNote("db-dump", "dumped 12 tables", "dumped 12 tables")).toBe(
      "✓ db-dump: dumped 12 tables · verified",
    );
    expect(
      succeededNote(
        "s",
        "functional: 2 of 2 checks passed",
        "functional: 2 of 2 checks passed\n✓ API health: 200",
      ),
    ).toBe("✓ s: functional: 2 of 2 checks passed · verified");
    expect(succeededNote("db-restore", "restored 12 tables", "12 tables, 9,001 rows on the target")).toBe(
      "✓ db-restore: restored 12 tables · verified: 12 tables, 9,001 rows on the target",
    );
  });

  it("do not repeat an error the thread has already heard", () => {
    expect(retryNote("s", 2, 3, "boom", "boom", 2000)).toBe(
      "↻ s attempt 2 of 3 failed (the same error); retrying in 2 s",
    );
    expect(failedNote("s", "boom", true)).toContain("the same error as the last attempt");
    expect(failedNote("s", LONG_ERROR, false).length).toBeLessThan(400);
  });
});

describe("a step that fails three times with a 6,000-character error, through the real Runner", () => {
  const FILE = runnerFile({
    environment: "notes",
    engine: { attempts: 3, backoffMs: 10 },
    phases: `    - id: one
      title: One
      steps:
        - { id: restore, uses: test.failing }
`,
  });
  const registry = new Map<string, StepDefinition<unknown>>([
    [
      "test.failing",
      testStep("test.failing", {
        async run() {
          throw new CutoverError(ErrorCode.StepFailed, LONG_ERROR);
        },
      }),
    ],
  ]);
  let tr: TestRunner;
  beforeAll(async () => {
    tr = await startRunnerOnNewDb("notes", { file: FILE, registry });
  });
  afterAll(async () => {
    await tr?.stop();
  });

  it("says the error once, in a line, and keeps the whole of it in the step's record", async () => {
    const submitted = await tr.runner.submit(runRequest("one"));
    if (!submitted.created) throw new Error("not created");
    await expect
      .poll(async () => (await tr.db.run.findUniqueOrThrow({ where: { id: submitted.runId } })).status, {
        timeout: 15_000,
      })
      .toBe("failed");
    const notes = tr.notes.filter((n) => n.includes("restore"));
    expect(notes).toHaveLength(3);
    expect(notes.join("\n").match(/already exists/g)).toHaveLength(1);
    expect(notes.every((n) => !n.includes("\n") && n.length < 400)).toBe(true);
    expect(notes[1]).toContain("(the same error)");
    expect(notes[2]).toMatch(/^✗ restore failed: the same error as the last attempt/);
    const step = await tr.db.stepExecution.findFirstOrThrow({ where: { runId: submitted.runId } });
    expect(step.error).toContain("Command was: CREATE TABLE");
    expect(step.error!.length).toBeGreaterThan(5_000);
  });
});
