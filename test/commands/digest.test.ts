import { webApi } from "@slack/bolt";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { clockFrom } from "../../src/clock.js";
import type { CommandDeps } from "../../src/commands/context.js";
import { DIGEST_COOLDOWN_MS } from "../../src/commands/handlers/digest.js";
import { migrateCommand } from "../../src/commands/migrate.js";
import { digestDeps } from "../../src/digest/index.js";
import { digestSources } from "../../src/digest/sources.js";
import { LockService } from "../../src/jobs/locks.js";
import { Metrics } from "../../src/metrics.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { buildCommandArguments } from "../helpers/bolt-args.js";
import { CHANNEL, OPERATOR, STRANGER, startTestBot, type TestBot, testConfig } from "../helpers/bot.js";
import { APPROVER, commandDeps } from "../helpers/command-deps.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/*
 * `/migrate digest`: today's daily digest posted to its channel now, through the schedule's own
 * publishDigest, by an operator, audited; a burst of requests posts one digest. First the listener
 * called directly (built arguments, a real state database, the fake Slack behind a real WebClient),
 * then the same command signed through the real receiver of a running bot.
 */

/** The digest messages in the channel: the ones carrying the two chart files. */
const digests = (fake: FakeSlack, channel = CHANNEL) =>
  fake.messages(channel).filter((m) => (m.files?.length ?? 0) === 2);

describe("/migrate digest, called directly", () => {
  let state: TestDatabase;
  let db: Db;
  let pool: pg.Pool;
  let fake: FakeSlack;
  let n = 0;

  beforeAll(async () => {
    state = await createTestDatabase("cmd-digest");
    db = createPrismaClient(state.url);
    pool = new pg.Pool({ connectionString: state.url, max: 30 });
    fake = new FakeSlack();
    await fake.start();
  });
  afterAll(async () => {
    await db.$disconnect();
    await pool.end();
    await fake.stop();
    await state.drop();
  });
  afterEach(async () => {
    fake.reset();
    await db.auditEvent.deleteMany({});
  });

  /** the command deps over the real state database, the lock service and a digest posting to the fake */
  function deps(opts: { at?: Date; digestEnabled?: boolean; channel?: string } = {}): CommandDeps {
    const base = commandDeps().deps;
    const file = {
      ...base.file,
      slack: { channel: opts.channel ?? base.file.slack.channel },
      digest: { ...base.file.digest, enabled: opts.digestEnabled ?? true },
    };
    const client = new webApi.WebClient("xoxb-test", {
      slackApiUrl: fake.apiUrl,
      retryConfig: { retries: 0 },
    });
    return {
      ...base,
      db,
      file,
      runner: { locks: new LockService(pool, base.log) } as unknown as CommandDeps["runner"],
      now: () => opts.at ?? new Date("2026-03-02T09:00:00Z"),
      digest: digestDeps({
        db,
        file,
        log: base.log,
        client,
        sources: digestSources({ db, file, log: base.log }),
      }),
    };
  }

  /** sends `/migrate digest` as `user` and returns the reply's text */
  async function send(d: CommandDeps, user = OPERATOR): Promise<string> {
    const { args, ack, respond } = buildCommandArguments({ text: "digest", user, triggerId: `t-${++n}` });
    await migrateCommand(d, new Metrics())(args);
    expect(ack).toHaveBeenCalledWith();
    expect(respond).toHaveBeenCalledTimes(1);
    return String((respond.mock.calls[0]![0] as { text: string }).text);
  }

  it("posts today's digest with its two charts to the channel and audits who asked", async () => {
    const text = await send(deps());
    expect(text).toBe(`✅ The digest of 2026-03-02 is posted to <#${CHANNEL}>, with its two charts.`);
    const posted = digests(fake);
    expect(posted).toHaveLength(1);
    expect(JSON.stringify(posted[0]!.blocks)).toContain("shop");
    const events = await db.auditEvent.findMany({ where: { action: "command.digest" } });
    expect(events).toMatchObject([
      {
        actor: OPERATOR,
        target: "production",
        outcome: "ok",
        details: { day: "2026-03-02", channel: CHANNEL },
      },
    ]);
  });

  it("refuses a non-operator, posts nothing and audits the refusal", async () => {
    const text = await send(deps(), APPROVER);
    expect(text).toMatch(/^⛔ You are not an operator of this migration, so `digest` is not yours to use/);
    expect(fake.calls("files.getUploadURLExternal")).toHaveLength(0);
    expect(digests(fake)).toHaveLength(0);
    const events = await db.auditEvent.findMany({ where: { action: "command.digest" } });
    expect(events).toMatchObject([{ actor: APPROVER, outcome: "refused" }]);
  });

  it("posts one digest for twenty requests sent at once; the others are told it is on its way", async () => {
    const d = deps();
    const texts = await Promise.all(Array.from({ length: 20 }, () => send(d)));
    expect(texts.filter((t) => t.startsWith("✅"))).toHaveLength(1);
    const others = texts.filter((t) => !t.startsWith("✅"));
    expect(others).toHaveLength(19);
    for (const t of others) expect(t).toMatch(/^⏳ .*(right now|s ago)/);
    expect(digests(fake)).toHaveLength(1);
    const events = await db.auditEvent.findMany({ where: { action: "command.digest" } });
    expect(events.filter((e) => e.outcome === "ok")).toHaveLength(1);
    // declined for the state (one on its way, one just posted), not for who asked
    expect(events.filter((e) => e.outcome === "info")).toHaveLength(19);
  });

  it("points at the digest just posted within the cooldown, and posts a fresh one after it", async () => {
    const at = new Date("2026-03-02T09:00:00Z");
    expect(await send(deps({ at }))).toMatch(/^✅/);
    const soon = new Date(at.getTime() + 10_000);
    expect(await send(deps({ at: soon }))).toBe(
      `⏳ <@${OPERATOR}> had the digest posted to <#${CHANNEL}> 10 s ago; it is there to read. Ask again in ${(DIGEST_COOLDOWN_MS - 10_000) / 1000} s for a fresh one.`,
    );
    expect(digests(fake)).toHaveLength(1);
    const later = new Date(at.getTime() + DIGEST_COOLDOWN_MS);
    expect(await send(deps({ at: later }))).toMatch(/^✅/);
    expect(digests(fake)).toHaveLength(2);
  });

  it("says the file has no digest when digest.enabled is false, and posts nothing", async () => {
    const text = await send(deps({ digestEnabled: false }));
    expect(text).toMatch(/^⛔ This migration file has no daily digest \(`digest: \{ enabled: false \}`\)/);
    expect(text).toContain("Set `digest.enabled: true`");
    expect(digests(fake)).toHaveLength(0);
    const events = await db.auditEvent.findMany({ where: { action: "command.digest" } });
    expect(events).toMatchObject([{ outcome: "info", details: { reason: "digest-disabled" } }]);
  });

  it("says what to set when the file names no channel, and posts nothing", async () => {
    const text = await send(deps({ channel: "" }));
    expect(text).toMatch(/^⛔ The migration file names no channel for the digest\. Set `digest\.channel`/);
    expect(fake.calls("files.getUploadURLExternal")).toHaveLength(0);
    const events = await db.auditEvent.findMany({ where: { action: "command.digest" } });
    expect(events).toMatchObject([{ outcome: "info", details: { reason: "no-channel" } }]);
  });

  it("says the terminal has no Slack to post with when there is no digest client", async () => {
    const d = deps();
    delete d.digest;
    const text = await send(d);
    expect(text).toMatch(
      /^⛔ This front end of Cutover has no Slack token to post with: set SLACK_BOT_TOKEN/,
    );
  });
});

describe("/migrate digest through the real receiver", () => {
  let t: TestBot;
  beforeAll(async () => {
    const config = testConfig().replace(
      "digest: { enabled: false }",
      'digest: { enabled: true, time: "09:00" }',
    );
    // 06:00 UTC on the bot's calendar: the scheduled digest is not due, so every digest here is asked for
    t = await startTestBot("cmd-digest-bot", { config, clock: clockFrom(new Date("2026-03-02T06:00:00Z")) });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** the reply's text at the command's response_url */
  async function reply(res: Awaited<ReturnType<TestBot["command"]>>): Promise<string> {
    const id = res.responseUrl.split("/").pop();
    const call = await t.fake.waitFor(
      (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
      { timeoutMs: 30_000 },
    );
    return String((call.args as { text?: string }).text ?? "");
  }

  it("refuses someone who is not an operator", async () => {
    const text = await reply(await t.command("digest", { user: STRANGER }));
    expect(text).toMatch(/^⛔ You are not an operator/);
    expect(digests(t.fake)).toHaveLength(0);
  });

  it("posts one digest for twenty signed commands sent at once", async () => {
    const sent = await Promise.all(Array.from({ length: 20 }, () => t.command("digest")));
    for (const res of sent) expect(res.status).toBe(200);
    const texts = await Promise.all(sent.map(reply));
    expect(texts.filter((x) => x.startsWith("✅ The digest of 2026-03-02 is posted"))).toHaveLength(1);
    expect(texts.filter((x) => x.startsWith("⏳"))).toHaveLength(19);
    expect(digests(t.fake)).toHaveLength(1);
    const events = await t.bot.deps.db.auditEvent.findMany({ where: { action: "command.digest" } });
    expect(events.filter((e) => e.outcome === "ok")).toMatchObject([{ actor: OPERATOR, target: "test" }]);
  });
});
