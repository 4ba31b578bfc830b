import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendSlashCommand } from "../../src/sandbox/slack-sender.js";
import { ACTION } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  GROUP_MEMBER,
  OPERATOR,
  OTHER_CHANNEL,
  replyText,
  SECOND_OPERATOR,
  STRANGER,
  startTestBot,
  type TestBot,
  testConfig,
} from "../helpers/bot.js";
import { waitForValue, waitUntil } from "../helpers/wait.js";

let t: TestBot;

beforeAll(async () => {
  t = await startTestBot("routing", { config: testConfig({ probeRows: 3000, pauseMs: 40 }) });
});
afterAll(async () => {
  await t?.stop();
});

function waitForRun(status: string[], timeoutMs = 20_000) {
  return waitForValue(
    `a run to reach ${status.join("/")}`,
    () => t.bot.deps.db.run.findFirst({ where: { dryRun: false }, orderBy: { createdAt: "desc" } }),
    (run) => run !== null && status.includes(run.status),
    { timeoutMs, intervalMs: 100 },
  ).then((run) => run!);
}

async function auditRows(action: string, outcome: string) {
  return t.bot.deps.db.auditEvent.findMany({ where: { action, outcome } });
}

describe("/migrate through the real receiver", () => {
  it("answers help to anyone, in any channel, inside the ack", async () => {
    const res = await t.command("help", { user: STRANGER, channel: OTHER_CHANNEL });
    expect(res.status).toBe(200);
    const text = JSON.stringify(JSON.parse(res.body).blocks);
    for (const sub of ["plan", "status", "run", "cancel", "audit"]) expect(text).toContain(`/migrate ${sub}`);
    expect(text).toContain("/rollback");
  });

  it("answers an unknown subcommand with a did-you-mean and the help", async () => {
    const res = await t.command("stauts");
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.text).toContain("I don't know `stauts`");
    expect(body.text).toContain("Did you mean `/migrate status`?");
    expect(JSON.stringify(body.blocks)).toContain("/migrate run");
  });

  it("acks /migrate status in under 3 s and the status message arrives", async () => {
    const res = await t.command("status");
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3_000);
    const text = await replyText(t, res);
    expect(text).toMatch(/^Migration status: \d+\/2 steps done/);
    const call = t.fake.calls("response_url").at(-1)!;
    expect(JSON.stringify(call.args)).toContain("Phase 1 · Probe the target");
    expect(JSON.stringify(call.args)).toContain("Phase 2 · Not yet built");
  });

  it("refuses a user who is not an operator, and audits the refusal", async () => {
    const before = (await auditRows("command.status", "refused")).length;
    const res = await t.command("status", { user: STRANGER });
    expect(await replyText(t, res)).toContain("You are not an operator of this migration");
    const after = await auditRows("command.status", "refused");
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)?.actor).toBe(STRANGER);
  });

  it("lets an approver read status but not run anything", async () => {
    expect(await replyText(t, await t.command("status", { user: APPROVER }))).toMatch(/^Migration status/);
    expect(await replyText(t, await t.command("run probe", { user: APPROVER }))).toContain("not an operator");
  });

  it("counts members of an operator user group as operators", async () => {
    expect(await replyText(t, await t.command("status", { user: GROUP_MEMBER }))).toMatch(
      /^Migration status/,
    );
  });

  it("refuses commands from a channel the file does not allow", async () => {
    const res = await t.command("status", { channel: OTHER_CHANNEL });
    expect(await replyText(t, res)).toContain("This channel does not take migration commands");
  });

  it("rejects a forged signature and a stale timestamp with 401", async () => {
    const forged = await sendSlashCommand({
      url: t.eventsUrl,
      signingSecret: "not-the-secret",
      command: "/migrate",
      text: "status",
      userId: OPERATOR,
      channelId: CHANNEL,
    });
    expect(forged.status).toBe(401);
    const stale = await sendSlashCommand({
      url: t.eventsUrl,
      signingSecret: t.signingSecret,
      command: "/migrate",
      text: "status",
      userId: OPERATOR,
      channelId: CHANNEL,
      timestampSeconds: Math.floor(Date.now() / 1000) - 6 * 60,
    });
    expect(stale.status).toBe(401);
    const tampered = await sendSlashCommand({
      url: t.eventsUrl,
      signingSecret: t.signingSecret,
      command: "/migrate",
      text: "status",
      userId: STRANGER,
      channelId: CHANNEL,
      tamper: (body) => body.replace(STRANGER, OPERATOR),
    });
    expect(tampered.status).toBe(401);
  });

  it("runs a phase once for a Slack retry, refuses a second person while the lock is held, and edits one message in place", async () => {
    const duplicates = () => [...t.bot.deps.metrics.duplicates.values.values()].reduce((a, b) => a + b, 0);
    const duplicatesBefore = duplicates();
    const first = await t.command("run probe", { triggerId: "trigger-run-1" });
    // Slack's redelivery repeats the payload, response_url and all; either delivery may be the
    // one that wins the deduplication and answers
    const retry = await t.command("run probe", {
      triggerId: "trigger-run-1",
      retryNum: 1,
      responseUrl: first.responseUrl,
    });
    expect(first.status).toBe(200);
    expect(retry.status).toBe(200);
    expect(await replyText(t, first)).toMatch(/Run of phase `probe` queued as `[0-9a-f]{8}`/);
    // answered once, not once per delivery: once the losing delivery has been seen as a retry
    // and dropped, it answers nothing more (waited for, not slept on)
    await waitUntil("the retry to be dropped as a duplicate", () => duplicates() === duplicatesBefore + 1);
    const id = first.responseUrl.split("/").pop();
    expect(
      t.fake
        .calls("response_url")
        .filter((c) => (c.args as { response_url_id?: string }).response_url_id === id),
    ).toHaveLength(1);

    const other = await t.command("run probe", { user: SECOND_OPERATOR });
    // generous: under a loaded CI machine this reply once took longer than the default 5 s
    const refusal = await replyText(t, other, 15_000);
    expect(refusal).toContain(`locked by <@${OPERATOR}>`);
    expect(refusal).toMatch(/cancel [0-9a-f]{8}/);

    const run = await waitForRun(["succeeded", "failed"]);
    expect(run.status).toBe("succeeded");
    expect(await t.bot.deps.db.run.count({ where: { dryRun: false } })).toBe(1);

    const client = new pg.Client({ connectionString: t.state.url });
    await client.connect();
    const rows = await client.query("SELECT count(*)::int AS n, count(DISTINCT n)::int AS d FROM probe_rows");
    await client.end();
    expect(rows.rows[0]).toEqual({ n: 3000, d: 3000 });

    // one progress message for the run, edited in place, ending in the final state
    await t.fake.waitFor((c) => c.method === "chat.update" && JSON.stringify(c.args).includes("succeeded"), {
      timeoutMs: 5_000,
    });
    const messages = t.fake.messages(CHANNEL).filter((m) => m.text.includes("Run probe"));
    expect(messages).toHaveLength(1);
    expect(messages[0]!.edits).toBeGreaterThan(0);
    expect(messages[0]!.text).toContain("succeeded");
    expect(messages[0]!.replies.some((r) => r.text.includes("✓ write-rows"))).toBe(true);
    expect(await t.bot.deps.db.envLock.count()).toBe(0);
  });

  it("cancels a running run from the Cancel button and frees the lock", async () => {
    await t.bot.deps.db.$executeRawUnsafe("DROP TABLE IF EXISTS probe_rows; DELETE FROM _cutover_progress");
    const res = await t.command("run write-rows");
    expect(await replyText(t, res)).toMatch(/queued as/);
    const running = await waitForRun(["running"]);
    const click = await t.click(ACTION.cancelRun, running.id);
    expect(click.status).toBe(200);
    const done = await waitForRun(["cancelled"]);
    expect(done.error).toContain(`cancelled by ${OPERATOR}`);
    expect(await t.bot.deps.db.envLock.count()).toBe(0);
    const strangerClick = await t.click(ACTION.cancelRun, running.id, { user: STRANGER });
    expect(await replyText(t, strangerClick)).toContain("not an operator");
  });

  it("asks for an explicit confirmation before a run with --replace, and audits who confirmed", async () => {
    const res = await t.command("run write-rows --replace");
    const text = await replyText(t, res);
    expect(text).toContain("will overwrite what the target already holds");
    const reply = t.fake.calls("response_url").at(-1)!;
    const blocks = JSON.stringify(reply.args);
    expect(blocks).toContain(ACTION.confirmRun);
    expect(blocks).toContain('"confirm":{');
    expect(await t.bot.deps.db.run.count({ where: { target: "write-rows", status: "queued" } })).toBe(0);

    const value = JSON.stringify({ target: "write-rows", replace: true, delete: false });
    const stranger = await t.click(ACTION.confirmRun, value, { user: STRANGER });
    expect(await replyText(t, stranger)).toContain("not an operator");
    const click = await t.click(ACTION.confirmRun, value);
    expect(await replyText(t, click)).toMatch(/Run of step `write-rows` queued as/);
    const run = await waitForRun(["succeeded", "failed"]);
    expect(run.options).toEqual({ replace: true, delete: false });
    const confirmations = await t.bot.deps.db.auditEvent.findMany({
      where: { action: "run.confirm" },
      orderBy: { id: "asc" },
    });
    expect(confirmations.map((a) => [a.actor, a.outcome])).toEqual([
      [STRANGER, "refused"],
      [OPERATOR, "ok"],
    ]);
  });

  it("asks for the same confirmation before an undo, then runs the undo of the phase, audited", async () => {
    const text = await replyText(t, await t.command("undo probe"));
    expect(text).toContain("tears down what Cutover created there");
    const blocks = JSON.stringify(t.fake.calls("response_url").at(-1)!.args);
    expect(blocks).toContain(ACTION.confirmRun);
    expect(blocks).toContain('"confirm":{');

    const value = JSON.stringify({ target: "probe", replace: false, delete: false, undo: true });
    const click = await t.click(ACTION.confirmRun, value);
    expect(await replyText(t, click)).toMatch(/Run of undo of phase `probe` queued as/);
    const run = await waitForRun(["succeeded", "failed"]);
    expect(run.options).toEqual({ undo: true });
    expect(run.status).toBe("succeeded");
    const confirmed = await t.bot.deps.db.auditEvent.findFirst({
      where: { action: "run.confirm", actor: OPERATOR },
      orderBy: { id: "desc" },
    });
    expect(confirmed?.details).toMatchObject({ undo: true });
  });

  it("answers /rollback when the migration switches no DNS, and refuses a non-operator", async () => {
    expect(await replyText(t, await t.command("", { command: "/rollback" }))).toContain(
      "nothing to roll back",
    );
    expect(await replyText(t, await t.command("", { command: "/rollback", user: STRANGER }))).toContain(
      "Only an operator",
    );
  });

  it("runs verify steps on their own, and says what it can verify", async () => {
    expect(await replyText(t, await t.command("verify database"))).toContain(
      "This runbook has no database verification step",
    );
    expect(await replyText(t, await t.command("verify everything"))).toContain(
      "Choose one of: database, storage, cdn",
    );
  });

  it("serves /healthz and Prometheus /metrics", async () => {
    const health = await fetch(`http://127.0.0.1:${t.bot.port}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${t.bot.port}/metrics`)).text();
    expect(metrics).toContain("# TYPE cutover_slack_ack_seconds histogram");
    expect(metrics).toMatch(/cutover_slack_commands_total\{command="status",outcome="answered"\} \d+/);
    expect(metrics).toContain('cutover_env_locked{env="test"} 0');
  });

  it("never writes the bot token or signing secret to the log", () => {
    const all = t.logs.join("");
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(t.env.SLACK_BOT_TOKEN);
    expect(all).not.toContain(t.signingSecret);
  });
});
