import { expect } from "vitest";
import { sendSlashCommand } from "../../src/sandbox/slack-sender.js";
import { CHANNEL, OPERATOR, testConfig } from "./bot.js";
import { type ChildBotWorld, startChildBotWorld } from "./child-bot-world.js";

/**
 * The interrupted-run tests (SIGKILL, SIGTERM): the real bot as a child process runs the probe
 * phase (`db.write-probe`, {@link PROBE_ROWS} numbered rows, slowly enough to be stopped mid-way
 * into the state database), is stopped, started again, and must finish the same run.
 */
export const PROBE_ROWS = 20_000;

/** A child-bot world whose probe phase writes {@link PROBE_ROWS} rows into its state database. */
export async function startProbeWorld(label: string): Promise<ChildBotWorld> {
  const w = await startChildBotWorld(label, {
    config: testConfig({ probeRows: PROBE_ROWS, pauseMs: 15 }),
    spawnTimeoutMs: 30_000,
  });
  w.env.PROBE_DATABASE_URL = w.state.url;
  return w;
}

/**
 * `/migrate run probe` from the operator, signed, to the bot on `port` (expects the 200), then
 * waits until the step's checkpoint says a quarter of the rows are written; resolves with its count.
 */
export async function runToAQuarter(w: ChildBotWorld, port: number, replyId: string): Promise<number> {
  const res = await sendSlashCommand({
    url: `http://127.0.0.1:${port}/slack/events`,
    signingSecret: w.env.SLACK_SIGNING_SECRET!,
    command: "/migrate",
    text: "run probe",
    userId: OPERATOR,
    channelId: CHANNEL,
    responseUrl: w.fake.responseUrl(replyId, { channel: CHANNEL, user: OPERATOR }),
  });
  expect(res.status).toBe(200);
  return w.until("a quarter of the rows", async () => {
    const [row] = await w
      .query<{ done: string }>("SELECT done FROM _cutover_progress WHERE key = 'probe_rows'")
      .catch(() => []);
    return row && Number(row.done) >= PROBE_ROWS / 4 ? Number(row.done) : undefined;
  });
}

/** The process is gone mid-way: the run is still running, with at least `atLeast` rows of all written. */
export async function expectMidway(w: ChildBotWorld, atLeast: number): Promise<void> {
  const [row] = await w.query<{ n: number; status: string }>(
    "SELECT (SELECT count(*)::int FROM probe_rows) AS n, (SELECT status FROM runs LIMIT 1) AS status",
  );
  expect(row!.status).toBe("running");
  expect(row!.n).toBeGreaterThanOrEqual(atLeast);
  expect(row!.n).toBeLessThan(PROBE_ROWS);
}

/**
 * After the restart: the run succeeds with every row written exactly once, the new process
 * resumed that run (one `run.resume`, no second run), and the channel holds one progress message
 * for it, edited to its end, with the resume said in its thread.
 */
export async function expectResumed(w: ChildBotWorld): Promise<void> {
  const final = await w.until("the run to finish", async () => {
    const [run] = await w.query<{ status: string }>("SELECT status FROM runs LIMIT 1");
    return run && ["succeeded", "failed", "cancelled"].includes(run.status) ? run.status : undefined;
  });
  expect(final).toBe("succeeded");
  const [rows] = await w.query<{ n: number; d: number; lo: number; hi: number }>(
    "SELECT count(*)::int AS n, count(DISTINCT n)::int AS d, min(n)::int AS lo, max(n)::int AS hi FROM probe_rows",
  );
  expect(rows).toEqual({ n: PROBE_ROWS, d: PROBE_ROWS, lo: 1, hi: PROBE_ROWS });
  const resumed = await w.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM audit_events WHERE action = 'run.resume'",
  );
  expect(resumed[0]!.n).toBe(1);
  await w.until("the final edit", async () =>
    w.fake.messages(CHANNEL).some((m) => m.text.includes("Run probe: succeeded")) ? true : undefined,
  );
  const messages = w.fake.messages(CHANNEL).filter((m) => m.text.includes("Run probe"));
  expect(messages).toHaveLength(1);
  expect(messages[0]!.replies.some((r) => r.text.includes("Resumed after an interruption"))).toBe(true);
}
