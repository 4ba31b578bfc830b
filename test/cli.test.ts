import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeSlack } from "../src/sandbox/FakeSlack.js";
import { CHANNEL, testConfig } from "./helpers/bot.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { runCutoverCli } from "./helpers/process.js";

let state: TestDatabase;
let dir: string;
let env: NodeJS.ProcessEnv;

const cutover = (...args: string[]) => runCutoverCli(args, env);

beforeAll(async () => {
  state = await createTestDatabase("cli");
  dir = await mkdtemp(path.join(tmpdir(), "cutover-cli-"));
  await writeFile(path.join(dir, "migration.yml"), testConfig({ probeRows: 300 }));
  env = {
    PATH: process.env.PATH,
    DATABASE_URL: state.url,
    PROBE_DATABASE_URL: state.url,
    CUTOVER_CONFIG: path.join(dir, "migration.yml"),
    CUTOVER_DATA_DIR: dir,
  };
});

afterAll(async () => {
  await state?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("npx cutover", () => {
  it("prints usage for help, and a did-you-mean with exit status 2 for a typo", async () => {
    const help = await cutover("help");
    expect(help.code).toBe(0);
    expect(help.out).toContain("Usage: npx cutover <command>");
    const typo = await cutover("stauts");
    expect(typo.code).toBe(2);
    expect(typo.out).toContain("Did you mean `/migrate status`?");
  });

  it("runs a phase as the local operator, follows it to the end and exits 0; status and audit show it", async () => {
    const run = await cutover("run", "probe");
    expect(run.err).toBe("");
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/Run of phase `probe` queued as `[0-9a-f]{8}`/);
    expect(run.out).toContain("write-rows");
    expect(run.out).toContain("300 rows, each of 1…300 exactly once");
    const status = await cutover("status");
    expect(status.code).toBe(0);
    expect(status.out).toContain("MIGRATION STATUS — TESTCO (TEST)");
    expect(status.out).toMatch(/write-rows.*succeeded.*test-terminal/);
    const audit = await cutover("audit", "5");
    expect(audit.out).toContain("run.finish");
  }, 60_000);

  it("undoes a phase: asks for --confirm, previews with --dry-run, then undoes it and a second preview says so", async () => {
    const asked = await cutover("undo", "probe");
    expect(asked.code).toBe(1);
    expect(asked.out).toContain("add `--confirm` to go ahead");
    const preview = await cutover("undo", "probe", "--dry-run");
    expect(preview.err).toBe("");
    expect(preview.code).toBe(0);
    expect(preview.out).toMatch(/Dry run of undo of `probe` queued as `[0-9a-f]{8}`/);
    expect(preview.out).toMatch(/would undo what run [0-9a-f]{8} did \(db\.write-probe/);
    const undo = await cutover("undo", "probe", "--confirm");
    expect(undo.err).toBe("");
    expect(undo.code).toBe(0);
    expect(undo.out).toMatch(/Run of undo of phase `probe` queued as `[0-9a-f]{8}`/);
    const again = await cutover("undo", "probe", "--dry-run");
    expect(again.out).toMatch(/already undone by run [0-9a-f]{8}: nothing to undo/);
  }, 60_000);

  it("exits by the command's outcome: 2 for a wrong argument, 1 for what it refuses", async () => {
    const window = await cutover("kpi", "1d", "2d");
    expect(window.out).toContain("at most one window");
    expect(window.code).toBe(2);
    const cutoverHere = await cutover("cutover");
    expect(cutoverHere.code).toBe(1);
  }, 30_000);

  it("posts today's digest with the bot's token, and says to set SLACK_BOT_TOKEN without one", async () => {
    const fake = new FakeSlack();
    await fake.start();
    const before = env;
    const digestFile = path.join(dir, "digest.yml");
    await writeFile(
      digestFile,
      testConfig().replace("digest: { enabled: false }", "digest: { enabled: true }"),
    );
    try {
      env = { ...before, CUTOVER_CONFIG: digestFile };
      const without = await cutover("digest");
      expect(without.out).toContain("no Slack token to post with: set SLACK_BOT_TOKEN");
      expect(without.code).toBe(1);
      expect(fake.messages(CHANNEL)).toHaveLength(0);

      const token = "xoxb-cli-digest-0123456789";
      env = { ...env, SLACK_BOT_TOKEN: token, SLACK_API_URL: fake.apiUrl };
      const posted = await cutover("digest");
      expect(posted.out).toMatch(/✅ The digest of \d{4}-\d{2}-\d{2} is posted to/);
      expect(`${posted.out}${posted.err}`).not.toContain(token);
      expect(posted.code).toBe(0);
      expect(fake.messages(CHANNEL).filter((m) => m.files?.length === 2)).toHaveLength(1);
    } finally {
      env = before;
      await fake.stop();
    }
  }, 60_000);

  it("says what is wrong when the migration file is missing", async () => {
    const saved = env.CUTOVER_CONFIG;
    env.CUTOVER_CONFIG = path.join(dir, "nope.yml");
    try {
      const res = await cutover("status");
      expect(res.code).toBe(2);
      expect(res.out).toContain("cp migration.example.yml migration.yml");
    } finally {
      env.CUTOVER_CONFIG = saved;
    }
  });
});
