import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signalGroup } from "../../src/sandbox/child-bot.js";
import { sendSlashCommand } from "../../src/sandbox/slack-sender.js";
import { CHANNEL, OPERATOR, testConfig } from "../helpers/bot.js";
import { type ChildBotWorld, startChildBotWorld } from "../helpers/child-bot-world.js";

/**
 * The graceful stop a process manager gives (systemd's and Supervisor's SIGTERM, deploy/): the
 * step in progress stops at its next safe point and keeps its checkpoint, the run stays running
 * (not failed, not cancelled), the process exits 0, and the next start resumes it from there.
 */
const ROWS = 20_000;
let w: ChildBotWorld;

beforeAll(async () => {
  w = await startChildBotWorld("sigterm", {
    config: testConfig({ probeRows: ROWS, pauseMs: 15 }),
    spawnTimeoutMs: 30_000,
  });
  w.env.PROBE_DATABASE_URL = w.state.url;
});

afterAll(async () => {
  await w?.stop();
});

describe("a step stopped by SIGTERM", () => {
  it("stops at a safe point, exits 0, and the next start resumes it: every row exactly once", async () => {
    const first = await w.startBot();
    const res = await sendSlashCommand({
      url: `http://127.0.0.1:${first.port}/slack/events`,
      signingSecret: w.env.SLACK_SIGNING_SECRET!,
      command: "/migrate",
      text: "run probe",
      userId: OPERATOR,
      channelId: CHANNEL,
      responseUrl: w.fake.responseUrl("sigterm-run", { channel: CHANNEL, user: OPERATOR }),
    });
    expect(res.status).toBe(200);
    await w.until("a quarter of the rows", async () => {
      const [row] = await w
        .query<{ done: string }>("SELECT done FROM _cutover_progress WHERE key = 'probe_rows'")
        .catch(() => []);
      return row && Number(row.done) >= ROWS / 4 ? true : undefined;
    });

    const exited = new Promise<number | null>((resolve) => first.child.once("exit", (code) => resolve(code)));
    await signalGroup(first.child, "SIGTERM");
    expect(await exited).toBe(0);
    const [stopped] = await w.query<{ n: number; status: string }>(
      "SELECT (SELECT count(*)::int FROM probe_rows) AS n, (SELECT status FROM runs LIMIT 1) AS status",
    );
    // stopped, not ended: the run waits for the next start
    expect(stopped!.status).toBe("running");
    expect(stopped!.n).toBeGreaterThan(0);
    expect(stopped!.n).toBeLessThan(ROWS);

    const second = await w.startBot();
    const final = await w.until("the run to finish", async () => {
      const [run] = await w.query<{ status: string }>("SELECT status FROM runs LIMIT 1");
      return run && ["succeeded", "failed", "cancelled"].includes(run.status) ? run.status : undefined;
    });
    expect(final).toBe("succeeded");
    const [rows] = await w.query<{ n: number; d: number; lo: number; hi: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT n)::int AS d, min(n)::int AS lo, max(n)::int AS hi FROM probe_rows",
    );
    expect(rows).toEqual({ n: ROWS, d: ROWS, lo: 1, hi: ROWS });
    const resumed = await w.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE action = 'run.resume'",
    );
    expect(resumed[0]!.n).toBe(1);
    // one progress message for the run, the resume said in its thread
    await w.until("the final edit", async () =>
      w.fake.messages(CHANNEL).some((m) => m.text.includes("Run probe: succeeded")) ? true : undefined,
    );
    const messages = w.fake.messages(CHANNEL).filter((m) => m.text.includes("Run probe"));
    expect(messages).toHaveLength(1);
    expect(messages[0]!.replies.some((r) => r.text.includes("Resumed after an interruption"))).toBe(true);
    await signalGroup(second.child, "SIGTERM");
  }, 120_000);
});
