import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Progress, ShardPool } from "../../../src/jobs/define-step.js";
import {
  createDbVerifyStep,
  readVerifyReport,
  runDatabaseVerify,
} from "../../../src/jobs/steps/db/verify.js";
import { groupTables } from "../../../src/jobs/steps/db/verify-tables.js";
import { createDatabaseFrom, queryOnce, type TestDatabase } from "../../helpers/db.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { createFixtureSource, makeDeps } from "./fixture.js";

/**
 * db.verify with `tableJobs`: the tables' data compared in groups, each group a part of the step
 * (a pg-boss job in the product: src/jobs/shards.ts, whose hand-over between workers the storage
 * shard tests cover). Here the parts run through the step's own `shard()`, their input and result
 * passed through JSON as the queue and the checkpoint table pass them, and the report must be the
 * one a single process makes: the same differences, rows and tables.
 */

let source: TestDatabase;
let target: TestDatabase;

beforeAll(async () => {
  source = await createFixtureSource("vt_src");
  target = await createDatabaseFrom("vt_dst", source.name);
  await queryOnce(
    target.url,
    `UPDATE public."Customers" SET "名前" = 'changed' WHERE "CustomerID" = (SELECT min("CustomerID") FROM public."Customers")`,
  );
  await queryOnce(
    target.url,
    "UPDATE inventory.warehouses SET name = name || ' (moved)' WHERE code = (SELECT min(code) FROM inventory.warehouses)",
  );
}, 120_000);
afterAll(async () => {
  await Promise.allSettled([target?.drop(), source?.drop()]);
});

/** Runs each part through the step's `shard()`, one at a time, as one worker would. */
function jsonPool(
  work: (part: unknown, progress: (p: Progress) => void) => Promise<unknown>,
  seen: { parts: unknown[]; messages: string[] },
): ShardPool {
  return {
    async run<R>(
      parts: unknown[],
      summarize: (each: Array<Progress | undefined>, finished: number) => Progress,
    ) {
      const each: Array<Progress | undefined> = parts.map(() => undefined);
      const results: R[] = [];
      for (const [i, part] of parts.entries()) {
        const sent = JSON.parse(JSON.stringify(part)) as unknown;
        seen.parts.push(sent);
        const result = await work(sent, (p) => {
          each[i] = p;
        });
        results.push(JSON.parse(JSON.stringify(result)) as R);
        seen.messages.push(summarize(each, i + 1).message ?? "");
      }
      return results;
    },
  };
}

describe("db.verify in table jobs", () => {
  it("deals tables into groups of about equal size, each table once", () => {
    const groups = groupTables(
      [
        { name: "a", bytes: 900 },
        { name: "b", bytes: 500 },
        { name: "c", bytes: 400 },
        { name: "d", bytes: 100 },
      ],
      2,
    );
    expect(groups).toEqual([
      ["a", "d"],
      ["b", "c"],
    ]);
    expect(groupTables([{ name: "only", bytes: 1 }], 8)).toEqual([["only"]]);
  });

  it("finds what one process finds, with the tables compared in three jobs", async () => {
    const deps = await makeDeps(source.url, target.url);
    const whole = await runDatabaseVerify(deps);
    expect(whole.identical).toBe(false);

    const step = createDbVerifyStep(deps);
    const input = step.parse({ tableJobs: 3 });
    const seen = { parts: [] as unknown[], messages: [] as string[] };
    const ctx = makeStepContext();
    const shards = jsonPool((part, progress) => step.shard!(input, part, { ...ctx, progress }), seen);
    const outcome = await step.run(input, { ...ctx, shards });
    const inJobs = await readVerifyReport(deps.dataDir, deps.file.environment);

    expect(seen.parts).toHaveLength(3);
    const dealt = seen.parts.flatMap((p) => (p as { tables: string[] }).tables).sort();
    expect(dealt).toHaveLength(whole.tablesCompared);
    expect(new Set(dealt).size).toBe(dealt.length);
    expect(seen.messages.at(-1)).toMatch(/comparing \d+ tables in 3 jobs, 3 done/);
    expect(inJobs?.differences).toEqual(whole.differences);
    expect(inJobs?.totals).toEqual(whole.totals);
    expect(inJobs?.tablesCompared).toBe(whole.tablesCompared);
    expect(outcome.figures?.identical).toBe(false);
    expect(inJobs?.differences.map((d) => d.object)).toEqual(
      expect.arrayContaining([`public."Customers"`, "inventory.warehouses"]),
    );
  }, 120_000);
});
