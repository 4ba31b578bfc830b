import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHANNEL, replyText, startTestBot, type TestBot, testConfig } from "../helpers/bot.js";
import { waitUntil } from "../helpers/wait.js";

/**
 * Slack did the chat.postMessage but its answer never reached the bot (the connection cut in
 * the middle of the response). A blind retry would post the run's progress message again; the
 * bot must find the one it posted (by the run id in its metadata) and go on editing that.
 */
let t: TestBot;

beforeAll(async () => {
  t = await startTestBot("lost-reply", {
    config: testConfig({ probeRows: 2000, pauseMs: 20 }),
    slackProxy: true,
  });
});
afterAll(async () => {
  await t?.stop();
});

describe("a progress message whose post was answered into a cut connection", () => {
  it("is posted once and edited in place to the end", async () => {
    const proxy = t.proxy!;
    // the next four connections to the Web API are cut 40 bytes into Slack's answer
    proxy.dropAfterBytes(40, 4);
    proxy.dropAll();
    const res = await t.command("run probe");
    expect(await replyText(t, res)).toMatch(/queued as/);

    await waitUntil(
      "the run's message to say it succeeded",
      () => t.fake.messages(CHANNEL).some((m) => /Run probe: succeeded/.test(m.text)),
      { timeoutMs: 40_000, intervalMs: 200 },
    );
    // the cuts did happen, and at least one of them ate the answer to a post Slack carried out
    expect(proxy.stats.dropped).toBeGreaterThanOrEqual(1);
    const posts = t.fake
      .calls("chat.postMessage")
      .filter((c) => JSON.stringify(c.args).includes("Run probe"));
    expect(posts.length).toBeGreaterThanOrEqual(1);
    const progress = t.fake.messages(CHANNEL).filter((m) => m.text.includes("Run probe"));
    // it looked for the message it may have posted instead of posting blindly again
    expect(t.fake.calls("conversations.history").length).toBeGreaterThanOrEqual(1);
    expect(progress).toHaveLength(1);
    expect(progress[0]!.text).toContain("succeeded");
  });
});
