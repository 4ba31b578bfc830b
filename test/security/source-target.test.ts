import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CutoverError, describeError, ErrorCode } from "../../src/errors.js";
import { readManifest, writeManifest } from "../../src/jobs/steps/db/dump-files.js";
import { createTestDatabase, queryOnce, type TestDatabase, withAdmin } from "../helpers/db.js";
import { cutoverErrorOf } from "../helpers/errors.js";
import { runCutoverCli } from "../helpers/process.js";
import { makeStepContext } from "../helpers/step-context.js";
import { createFixtureSource, createRdsLikeTarget, dbConfig, dbStepsFor } from "../jobs/db/fixture.js";

/**
 * Issue 15, item 5: a restore must never write to the source. The target's URL naming the
 * source under another spelling (another host name for the same address, other parameters,
 * another user) is refused before anything runs, by preflight, the plan and the restore; and a
 * restore refuses a dump that was not taken from the configured source. Real pg_dump and
 * pg_restore against real databases.
 */

let source: TestDatabase;
let other: TestDatabase;
let target: TestDatabase & { role: string };
const ROLE = "cutover_sec_other_user";
const SOURCE_ONLY = "source_only_orders";

const failure = cutoverErrorOf;
const stepsFor = (sourceUrl: string, targetUrl: string, dataDir?: string) =>
  dbStepsFor(sourceUrl, targetUrl, dataDir ? { dataDir } : {});

const sourceTables = async () =>
  (
    await queryOnce<{ n: number }>(
      source.url,
      "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname <> 'pg_catalog' AND schemaname <> 'information_schema'",
    )
  )[0]!.n;
const sourceOnlyRows = async () =>
  (await queryOnce<{ n: number }>(source.url, `SELECT count(*)::int AS n FROM ${SOURCE_ONLY}`))[0]!.n;

/** The source's URL respelled: each reaches the same server and database. */
function spellings(): Record<string, string> {
  const u = new URL(source.url);
  const db = u.pathname.slice(1);
  const own = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
  return {
    "localhost for 127.0.0.1": `postgresql://postgres@localhost:5432/${db}`,
    "another loopback address": `postgresql://postgres@127.0.0.2/${db}`,
    "other parameters": `${source.url}?sslmode=disable&application_name=restore&connect_timeout=5`,
    "another user": `postgresql://${ROLE}@127.0.0.1:5432/${db}`,
    "the host in the query string": `postgresql://elsewhere.invalid:5432/${db}?host=127.0.0.1`,
    "the database in the query string": `postgresql://postgres@127.0.0.1/other_name?dbname=${db}`,
    "upper-case host, default port": `postgresql://postgres@LOCALHOST/${db}`,
    ...(own ? { "this machine's own address": `postgresql://postgres@${own}:5432/${db}` } : {}),
  };
}

beforeAll(async () => {
  source = await createFixtureSource("sec_src");
  other = await createFixtureSource("sec_other");
  target = await createRdsLikeTarget("sec_dst");
  await queryOnce(
    source.url,
    `CREATE TABLE ${SOURCE_ONLY} (id int PRIMARY KEY); INSERT INTO ${SOURCE_ONLY} SELECT generate_series(1, 25)`,
  );
  await withAdmin((c) => c.query(`DROP ROLE IF EXISTS ${ROLE}; CREATE ROLE ${ROLE} LOGIN`));
}, 120_000);

afterAll(async () => {
  await source?.drop();
  await other?.drop();
  await target?.drop();
  await withAdmin((c) => c.query(`DROP ROLE IF EXISTS ${ROLE}`)).catch(() => undefined);
});

describe("a restore never writes to the source (issue 15, item 5)", { timeout: 180_000 }, () => {
  it("refuses a target that is the source under any spelling of its URL, before anything runs", async () => {
    const tablesBefore = await sourceTables();
    const { deps: dumpDeps, step: dumpStep, input: dumpInput } = await stepsFor(source.url, target.url);
    await dumpStep("db.dump").run(dumpInput("db.dump"), makeStepContext());
    const refused: Record<string, string> = {};
    for (const [how, url] of Object.entries(spellings())) {
      const { step, input } = await stepsFor(source.url, url, dumpDeps.dataDir);
      const replace = makeStepContext({ run: { options: { replace: true } } });
      const err = await failure(step("db.restore").run(input("db.restore"), replace)).catch((e: Error) => {
        throw new Error(`${how}: ${e.message}`);
      });
      expect(err.code, how).toBe(ErrorCode.TargetIsSource);
      expect(describeError(err), how).toMatch(/is the source database.*Cutover never writes to the source/s);
      const plan = await step("db.restore").plan(input("db.restore"), replace);
      expect(plan.summary, how).toMatch(/^would refuse: .*is the source database/);
      // preflight says so in its own line, first among the checks after the connections
      const pre = await failure(step("db.preflight").run(input("db.preflight"), replace)).catch(
        (e: Error) => new CutoverError(ErrorCode.PreflightFailed, e.message),
      );
      expect(pre.message, how).toMatch(/❌ \*Target is not the source\*/);
      refused[how] = err.code;
      // nothing happened to the source
      expect(await sourceTables(), how).toBe(tablesBefore);
      expect(await sourceOnlyRows(), how).toBe(25);
    }
    expect(Object.keys(refused).length).toBeGreaterThanOrEqual(7);
  });

  it("refuses a dump that was not taken from the configured source, and one that does not say where it came from", async () => {
    // the dump is of `other`; the configured source is `source`
    const { deps, step, input } = await stepsFor(other.url, target.url);
    await step("db.dump").run(input("db.dump"), makeStepContext());
    const restoreFromSource = await stepsFor(source.url, target.url, deps.dataDir);
    const err = await failure(
      restoreFromSource.step("db.restore").run(restoreFromSource.input("db.restore"), makeStepContext()),
    );
    expect(err.code).toBe(ErrorCode.DumpInvalid);
    expect(describeError(err)).toMatch(
      /was taken from .*, not from the configured source .*SOURCE_DATABASE_URL/s,
    );
    // the target was left alone
    expect(
      (
        await queryOnce<{ n: number }>(
          target.url,
          "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'",
        )
      )[0]!.n,
    ).toBe(0);

    // a dump from before its source was recorded: refused too (take it again)
    const { deps: d2, step: s2, input: i2 } = await stepsFor(source.url, target.url);
    await s2("db.dump").run(i2("db.dump"), makeStepContext());
    const root = path.join(d2.dataDir, "dumps", "test");
    const name = (await queryLatest(root)).trim();
    const manifest = (await readManifest(path.join(root, name)))!;
    delete manifest.sourceIdentity;
    await writeManifest(path.join(root, name), manifest);
    const unknown = await failure(s2("db.restore").run(i2("db.restore"), makeStepContext()));
    expect(unknown.code).toBe(ErrorCode.DumpInvalid);
    expect(describeError(unknown)).toMatch(/does not record which database it was taken from/);

    // the right dump of the right source restores (the refusals above are not a broken restore);
    // a run id of its own, so its folder is not the edited dump's (names carry the second and run)
    await s2("db.dump").run(i2("db.dump"), makeStepContext({ run: { id: "11111111-second-dump" } }));
    const ok = await s2("db.restore").run(i2("db.restore"), makeStepContext());
    expect(ok.summary).toMatch(/^restored /);
    await rm(d2.dataDir, { recursive: true, force: true });
  });
});

async function queryLatest(root: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  return readFile(path.join(root, "latest"), "utf8");
}

describe("the same attack from a terminal (issue 15, item 5)", { timeout: 240_000 }, () => {
  it("`npx cutover run db-restore --replace --confirm` into the source under another spelling exits 1 and changes nothing", async () => {
    const state = await createTestDatabase("sec_cli_state");
    const dir = await mkdtemp(path.join(tmpdir(), "cutover-sec-cli-"));
    try {
      await writeFile(path.join(dir, "migration.yml"), dbConfig());
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        DATABASE_URL: state.url,
        CUTOVER_CONFIG: path.join(dir, "migration.yml"),
        CUTOVER_DATA_DIR: dir,
        SOURCE_DATABASE_URL: source.url,
        // the source again, spelled with another host name and another user
        TARGET_DATABASE_URL: `postgresql://${ROLE}@localhost:5432/${new URL(source.url).pathname.slice(1)}`,
        RDS_MASTER_PASSWORD: "not-used-in-tests",
      };
      // what it printed, on either stream
      const cutover = async (...args: string[]) => {
        const { code, out, err } = await runCutoverCli(args, env);
        return { code, out: out + err };
      };
      const tablesBefore = await sourceTables();
      const dumped = await cutover("run", "db-dump");
      expect(dumped.code, dumped.out).toBe(0);
      const restore = await cutover("run", "db-restore", "--replace", "--confirm");
      expect(restore.code).toBe(1);
      expect(restore.out).toMatch(/is the source database/);
      expect(restore.out).toMatch(/Cutover never writes to the source/);
      expect(await sourceTables()).toBe(tablesBefore);
      expect(await sourceOnlyRows()).toBe(25);
    } finally {
      await state.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
