import { readFile } from "node:fs/promises";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseMigrationFile } from "../../src/config/load.js";
import { ErrorCode, NOT_RETRYABLE, notSet } from "../../src/errors.js";
import {
  createStepRegistry,
  KNOWN_STEP_TYPES,
  STEP_CATALOGUE,
  STEP_SECTIONS,
  STEP_TIME_LIMITS,
  STEP_TYPES,
} from "../../src/jobs/catalogue.js";
import type { CheckpointStore, StepContext } from "../../src/jobs/define-step.js";
import { defineStep } from "../../src/jobs/define-step.js";
import { createPorts } from "../../src/ports.js";

/** A context whose checkpoints live in a Map the test can look into and tamper with. */
function contextWith(saved: Map<string, unknown>): StepContext {
  const checkpoint: CheckpointStore = {
    get: async <T>(key: string) => saved.get(key) as T | undefined,
    set: async (key, value) => {
      saved.set(key, value);
    },
  };
  return {
    log: pino({ level: "silent" }),
    run: { id: "r1", env: "unit", requestedBy: "U0OP", dryRun: false, options: {} },
    signal: new AbortController().signal,
    attempt: 1,
    progress: () => undefined,
    checkpoint,
  };
}

const counter = defineStep({
  type: "test.counter",
  description: "count to a number, keeping how far it got",
  input: z.strictObject({ to: z.number().int().min(1) }),
  configSections: ["source.database"],
  timeLimit: 60,
  mutating: true,
  checkpoints: { done: z.number(), "mark:*": z.boolean() },
});

const step = counter.implement({
  async plan(input) {
    return { summary: `would count to ${input.to}`, changes: [] };
  },
  async run(input, ctx) {
    let done = (await ctx.checkpoint.get("done")) ?? 0;
    while (done < input.to) {
      done++;
      await ctx.checkpoint.set("done", done);
      await ctx.checkpoint.set(`mark:${done}`, true);
    }
    return { summary: `counted to ${done}` };
  },
  async verify(input, ctx) {
    const done = await ctx.checkpoint.get("done");
    return { ok: done === input.to, summary: `at ${done}` };
  },
  async undo(_input, ctx) {
    // a key the declaration does not have: a mistake in the step's code, caught when used
    await ctx.checkpoint.get("nowhere" as "done");
  },
});

describe("defineStep", () => {
  it("parses the `with:` block, naming the step type and each field that is wrong", () => {
    expect(step.parse({ to: 3 })).toEqual({ to: 3 });
    expect(() => step.parse({ to: 0 })).toThrow(/^test\.counter: to: Too small/);
    expect(() => step.parse({ to: 2, ot: 1 })).toThrow(/^test\.counter: with: Unrecognized key: "ot"/);
    expect(() => step.parse(undefined)).toThrow(/^test\.counter: to: Invalid input/);
  });

  it("keeps typed checkpoints, resumes from them, and refuses one of another shape", async () => {
    const saved = new Map<string, unknown>([["done", 2]]);
    const ctx = contextWith(saved);
    expect(await step.run({ to: 4 }, ctx)).toEqual({ summary: "counted to 4" });
    // resumed at 2: the marks before it were never written by this run
    expect([...saved.keys()].sort()).toEqual(["done", "mark:3", "mark:4"]);
    expect(await step.verify({ to: 4 }, ctx)).toMatchObject({ ok: true });

    saved.set("done", "four");
    const err = await step.verify({ to: 4 }, ctx).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.StepFailed });
    expect(String(err)).toMatch(/test\.counter: the saved resume point "done" is not in the shape/);

    await expect(step.undo!({ to: 4 }, ctx)).rejects.toThrow(
      'step type test.counter uses checkpoint "nowhere" without declaring it',
    );
  });
});

describe("the catalogue", () => {
  it("is read from the declarations: every type once, with its description, sections and limits", async () => {
    expect(new Set(KNOWN_STEP_TYPES).size).toBe(STEP_TYPES.length);
    const dump = STEP_TYPES.find((s) => s.type === "db.dump")!;
    expect(STEP_CATALOGUE["db.dump"]).toBe(dump.description);
    expect(STEP_SECTIONS["db.dump"]).toEqual(["source.database"]);
    expect(STEP_TIME_LIMITS["rds.instance"]).toBe(5_400);
    // types whose time grows with the data have no limit: the stall watchdog stops them
    expect(STEP_TIME_LIMITS["storage.sync"]).toBeUndefined();
    expect(STEP_CATALOGUE["db.write-probe"]).toBe(
      "write numbered rows into a table in batches, checkpointing, to prove a database takes writes",
    );

    // every step this build registers is in the catalogue, with the declaration's own description
    const file = parseMigrationFile(await readFile("migration.example.yml", "utf8"), { checkEnv: false });
    const registry = createStepRegistry({
      env: {},
      ports: createPorts({ env: {} }, file),
      file,
      dataDir: "/tmp/cutover-define-step",
      log: pino({ level: "silent" }),
    });
    expect(registry.size).toBeGreaterThan(0);
    for (const [type, definition] of registry)
      expect(STEP_CATALOGUE[type], type).toBe(definition.description);
  });
});

describe("a variable the file names but the environment lacks", () => {
  it("is one error, with one code, never retried", () => {
    const err = notSet("SOURCE_DATABASE_URL", { where: "source.database.urlEnv", hint: "Set it." });
    expect(err.message).toBe("SOURCE_DATABASE_URL is not set (source.database.urlEnv).");
    expect(err.code).toBe(ErrorCode.SettingsMissing);
    expect(NOT_RETRYABLE.has(err.code)).toBe(true);
  });
});
