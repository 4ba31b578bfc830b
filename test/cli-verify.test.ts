import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDatabaseFrom,
  createEmptyDatabase,
  createTestDatabase,
  queryOnce,
  type TestDatabase,
} from "./helpers/db.js";
import { runCutoverCli } from "./helpers/process.js";
import { createFixtureSource, dbConfig } from "./jobs/db/fixture.js";

/**
 * `npx cutover verify …` and a failing preflight from a terminal: the comparison runs in the
 * command's own process, its exit status says whether the sides differ, and no run is left
 * queued behind it.
 */

let state: TestDatabase;
let source: TestDatabase;
let copy: TestDatabase;
let empty: TestDatabase;
let dir: string;

function cutover(target: TestDatabase, ...args: string[]) {
  return runCutoverCli(args, {
    PATH: process.env.PATH,
    DATABASE_URL: state.url,
    SOURCE_DATABASE_URL: source.url,
    TARGET_DATABASE_URL: target.url,
    RDS_MASTER_PASSWORD: "unused",
    CUTOVER_CONFIG: path.join(dir, "migration.yml"),
    CUTOVER_DATA_DIR: dir,
  });
}

const unfinished = async () =>
  (
    await queryOnce<{ n: string }>(
      state.url,
      "SELECT count(*)::text AS n FROM runs WHERE status IN ('queued', 'running')",
    )
  )[0]!.n;

beforeAll(async () => {
  [state, source, empty] = await Promise.all([
    createTestDatabase("cli_verify"),
    createFixtureSource("cli_verify_src"),
    createEmptyDatabase("cli_verify_empty"),
  ]);
  copy = await createDatabaseFrom("cli_verify_copy", source.name);
  dir = await mkdtemp(path.join(tmpdir(), "cutover-cli-verify-"));
  await writeFile(path.join(dir, "migration.yml"), dbConfig());
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([state?.drop(), source?.drop(), copy?.drop(), empty?.drop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("npx cutover verify", () => {
  it("compares in its own process and exits 0 when the databases are identical", async () => {
    const res = await cutover(copy, "verify", "database");
    expect(res.code, res.out + res.err).toBe(0);
    expect(res.out).toMatch(/queued as `[0-9a-f]{8}`/);
    expect(res.out).toMatch(/identical: \d+ tables, \d+ rows checksummed/);
    expect(await unfinished()).toBe("0");
  }, 60_000);

  it("exits 1 on a difference, printing the differences and the rows to look at, with nothing left queued", async () => {
    await queryOnce(copy.url, `UPDATE "販売 Sales"."商品" SET "名称" = 'tampered' WHERE "商品ID" = 7`);
    const res = await cutover(copy, "verify", "database");
    expect(res.code, res.out + res.err).toBe(1);
    expect(res.out).toContain("db-verify failed:");
    expect(res.out).toContain(`"商品ID" = '7' changed`);
    expect(res.out).toContain(`SELECT * FROM ONLY "販売 Sales"."商品" WHERE ("商品ID" = '7');`);
    expect(await unfinished()).toBe("0");
  }, 60_000);

  it("prints a failing preflight's failing line first and in full", async () => {
    // the copy is not empty: "Target is empty" fails; everything else passes
    const res = await cutover(copy, "run", "db-preflight");
    expect(res.code).toBe(1);
    const at = res.out.indexOf("Preflight found 1 problem:\n");
    expect(at, res.out).toBeGreaterThanOrEqual(0);
    const next = res.out.slice(at).split("\n")[1]!;
    expect(next).toMatch(/^❌ \*Target is empty\*: .*--replace/);
    expect(await unfinished()).toBe("0");
    // and the empty target passes, for contrast
    const ok = await cutover(empty, "run", "db-preflight");
    expect(ok.code, ok.out).toBe(0);
  }, 60_000);
});
