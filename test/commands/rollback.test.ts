import { spawn } from "node:child_process";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { announceInterruptedRollback, rollbackLockKey } from "../../src/commands/handlers/rollback.js";
import type { RecordedCall } from "../../src/sandbox/FakeSlack.js";
import { OPERATOR } from "../helpers/bot.js";
import { type CutoverWorld, NEW_IP, OLD_IP, RECORD, startCutoverWorld } from "../helpers/cutover-world.js";
import { waitForValue } from "../helpers/wait.js";

/**
 * The emergency way back when things are not tidy: another run holds the environment lock, the
 * runs database lost the cutover record, nothing at all is recorded, or Slack is unreachable
 * and the terminal is all there is.
 */
let w: CutoverWorld;

const SLOW_STEP = `        - id: slow-rows
          uses: db.write-probe
          with: { urlEnv: PROBE_DATABASE_URL, table: rollback_slow_rows, rows: 2000, batch: 10, pauseMs: 100 }
`;

function text(call: RecordedCall): string {
  return String((call.args as { text?: string }).text ?? "");
}

/** DNS and Pages as right after a cutover (by hand: the rollback is what is under test). */
async function switchedState() {
  await w.setRecordContent(NEW_IP);
  await w.t.bot.deps.cloudflare!.pages.setEnvVars("web", { NEXT_PUBLIC_API_URL: `https://${RECORD}` });
  expect(w.record().content).toBe(NEW_IP);
}

/** The first call recorded after the first `since` calls that matches, waiting up to `timeoutMs`. */
function nextCall(since: number, match: (c: RecordedCall) => boolean, timeoutMs = 15_000) {
  return waitForValue(
    "a matching Slack call",
    () => w.t.fake.calls().slice(since).find(match),
    (found) => found !== undefined,
    { timeoutMs },
  ).then((found) => found!);
}

const callCount = () => w.t.fake.calls().length;

/** /rollback, then the modal's text once it opens. */
async function openRollbackModal(): Promise<string> {
  const since = callCount();
  await w.t.command("", { command: "/rollback" });
  const modal = await nextCall(
    since,
    (c) => c.method === "views.open" && JSON.stringify(c.args).includes("Type ROLLBACK"),
  );
  return JSON.stringify(modal.args);
}

async function rollbackReport(since: number): Promise<string> {
  return text(
    await nextCall(
      since,
      (c) => c.method === "chat.postMessage" && /Rollback by|could not run/.test(text(c)),
    ),
  );
}

function cli(...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const env = w.t.env;
    const child = spawn(path.resolve("node_modules/.bin/node"), ["bin/cutover.js", ...args], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: env.DATABASE_URL,
        CUTOVER_CONFIG: env.CUTOVER_CONFIG,
        CUTOVER_DATA_DIR: env.CUTOVER_DATA_DIR,
        CLOUDFLARE_API_TOKEN: env.CLOUDFLARE_API_TOKEN,
        CLOUDFLARE_BASE_URL: env.CLOUDFLARE_BASE_URL,
        PROBE_DATABASE_URL: env.PROBE_DATABASE_URL,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("exit", (code) => resolve({ code, out }));
  });
}

beforeAll(async () => {
  w = await startCutoverWorld("rollback", SLOW_STEP);
  // a real cutover first: TTL lowered (and aged past the old TTL), requested, approved, switched
  await w.t.command("run lower-ttl");
  await w.waitForRun("lower-ttl", ["succeeded"]);
  await w.ageTheTtlChange(2);
  const approval = await w.requestCutover();
  await w.submitApproval("U0APPROVER", approval, RECORD);
  await w.waitForRun("dns-cutover", ["succeeded"]);
  expect(w.record().content).toBe(NEW_IP);
});

afterAll(async () => {
  await w?.stop();
});

// each terminal rollback starts a Node process: seconds apiece on a loaded machine
describe("/rollback when things are not tidy", { timeout: 120_000 }, () => {
  it("works while another run holds the environment lock", async () => {
    await w.t.command("run slow-rows");
    const slow = await w.waitForRun("slow-rows", ["running"]);
    const lock = await w.t.bot.deps.db.envLock.findUnique({ where: { env: "test" } });
    expect(lock?.runId).toBe(slow.id);

    const since = callCount();
    expect(await openRollbackModal()).toContain("Values from the cutover record");
    const res = await w.submitRollback(OPERATOR, "ROLLBACK");
    expect(res.body).toBe("");
    expect(await rollbackReport(since)).toContain(`✅ Rollback by <@${OPERATOR}> done in`);
    expect(w.record()).toMatchObject({ content: OLD_IP, ttl: 3600 });
    // the other run was not disturbed: it still holds the lock and goes on
    expect((await w.t.bot.deps.db.run.findUniqueOrThrow({ where: { id: slow.id } })).status).toBe("running");
    await w.t.command(`cancel ${slow.id.slice(0, 8)}`);
    await w.waitForRun("slow-rows", ["cancelled"]);
  });

  it("reads the values from the audit trail when the runs database lost the cutover record", async () => {
    await switchedState();
    const db = w.t.bot.deps.db;
    await db.approval.deleteMany({});
    await db.envLock.deleteMany({});
    await db.run.deleteMany({});
    expect(await db.stepExecution.count()).toBe(0);

    const since = callCount();
    const modal = await openRollbackModal();
    expect(modal).toContain("Values from the audit trail");
    expect(modal).toContain(`\`${OLD_IP}\``);
    await w.submitRollback(OPERATOR, "ROLLBACK");
    expect(await rollbackReport(since)).toContain("✅ Rollback by");
    expect(w.record()).toMatchObject({ content: OLD_IP, ttl: 3600 });
    expect(w.cf.envVars("web").NEXT_PUBLIC_API_URL).toBe("https://old.example.app");
  });

  it("runs from the terminal with `npx cutover rollback --confirm`, and refuses without --confirm", async () => {
    await switchedState();
    const unconfirmed = await cli("rollback");
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.out).toContain("Add --confirm to do it now.");
    expect(w.record().content).toBe(NEW_IP);

    const done = await cli("rollback", "--confirm");
    expect(done.out).toMatch(/From confirmation to verified: \d+ ms\./);
    expect(done.code).toBe(0);
    expect(w.record()).toMatchObject({ content: OLD_IP, ttl: 3600 });
    const events = await w.t.bot.deps.db.auditEvent.findMany({
      where: { action: "rollback.finish" },
      orderBy: { id: "desc" },
      take: 1,
    });
    expect(events[0]).toMatchObject({ outcome: "ok" });
  });

  it("refuses a second rollback while one is under way in any replica, and changes nothing", async () => {
    await switchedState();
    // another replica's rollback at work: it holds the rollback lock on the state database
    const other = new pg.Client({ connectionString: w.t.env.DATABASE_URL });
    await other.connect();
    try {
      await other.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [rollbackLockKey("test")]);
      const since = callCount();
      await w.submitRollback(OPERATOR, "ROLLBACK");
      const report = await rollbackReport(since);
      expect(report).toContain("could not run");
      expect(report).toContain("is already under way");
      expect(w.record().content).toBe(NEW_IP);
    } finally {
      await other.end();
    }
    // the other one gone (its session ended), the next press works
    const since = callCount();
    await w.submitRollback(OPERATOR, "ROLLBACK");
    expect(await rollbackReport(since)).toContain("✅ Rollback by");
    expect(w.record().content).toBe(OLD_IP);
  });

  it("says in the channel, once, that a rollback cut off by a stop did not finish", async () => {
    const db = w.t.bot.deps.db;
    // as a SIGKILL between the start and the finish leaves the audit trail
    await db.auditEvent.create({
      data: { actor: OPERATOR, action: "rollback.start", target: "test", outcome: "started", details: {} },
    });
    const post = vi.fn(async (_text: string) => undefined);
    const { db: stateDb, runner, file } = w.t.bot.deps;
    const deps = { db: stateDb, runner, file };
    expect(await announceInterruptedRollback(deps, post)).toBe(true);
    expect(post).toHaveBeenCalledTimes(1);
    expect(post.mock.calls[0]![0]).toContain(`The rollback <@${OPERATOR}> started at`);
    expect(post.mock.calls[0]![0]).toContain("Run `/rollback` again");
    // a second start-up says nothing more
    expect(await announceInterruptedRollback(deps, post)).toBe(false);
    expect(post).toHaveBeenCalledTimes(1);
    expect(await db.auditEvent.count({ where: { action: "rollback.interrupted" } })).toBe(1);
    // and a finished rollback is never announced
    await db.auditEvent.create({
      data: { actor: OPERATOR, action: "rollback.start", target: "test", outcome: "started", details: {} },
    });
    await db.auditEvent.create({
      data: { actor: OPERATOR, action: "rollback.finish", target: "test", outcome: "ok", details: {} },
    });
    expect(await announceInterruptedRollback(deps, post)).toBe(false);
  });

  it("restores the old values the migration file names when nothing at all is recorded, and says so", async () => {
    await switchedState();
    await w.t.bot.deps.db.auditEvent.deleteMany({ where: { action: "dns.snapshot" } });
    const modal = await openRollbackModal();
    expect(modal).toContain("No record of the values before the cutover was found");
    expect(modal).toContain(`\`${OLD_IP}\``);
    // it shows the values and asks for none: nothing typed can point production elsewhere
    expect(modal).not.toContain("rb_record_");
    expect(modal).not.toContain("initial_value");

    const since = callCount();
    await w.submitRollback(OPERATOR, "ROLLBACK");
    const report = await rollbackReport(since);
    expect(report).toContain("✅ Rollback by");
    expect(report).toContain(
      `A ${RECORD}: ${NEW_IP} → ${OLD_IP} (TTL 300 s) (value from the migration file)`,
    );
    expect(w.record().content).toBe(OLD_IP);
    expect(w.cf.envVars("web")).toMatchObject({
      NEXT_PUBLIC_API_URL: "https://old.example.app",
      NEXT_PUBLIC_CDN_URL: "https://pub-old.r2.dev",
    });
  });
});
