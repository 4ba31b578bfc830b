import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replyText, startTestBot, type TestBot } from "../helpers/bot.js";

/*
 * What a person types comes back in replies: through the real bot and receiver, the replies that
 * reach the fake Slack (which refuses what Slack refuses) quote it as text, never as markup.
 */

let t: TestBot;
beforeAll(async () => {
  t = await startTestBot("replies");
});
afterAll(async () => {
  await t?.stop();
});

/** as Slack delivers command text: &, < and > escaped */
const slackEscaped = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

async function reply(text: string): Promise<{ text: string; all: string }> {
  const res = await t.command(slackEscaped(text));
  const said = await replyText(t, res);
  const id = res.responseUrl.split("/").pop();
  const call = t.fake.calls("response_url").find((c) => c.args.response_url_id === id);
  return { text: said, all: JSON.stringify(call?.args ?? JSON.parse(res.body || "{}")) };
}

describe("replies quote what was typed", () => {
  it("an unknown command naming @channel notifies nobody", async () => {
    const { all } = await reply("<!channel> please");
    expect(all).not.toContain("<!channel>");
    expect(all).toContain("Type /migrate help");
  });

  it("help names its arguments in angle brackets without making links of them", async () => {
    for (const text of ["help", "help run"]) expect((await reply(text)).all).not.toMatch(/<step\|phase>/);
  });

  it("a destructive run of something that does not exist is answered as unknown, not confirmed", async () => {
    const { text, all } = await reply(`run ${"x".repeat(3000)} --replace`);
    expect(text).toMatch(/There is no phase or step called/);
    expect(all).not.toContain("cutover.run.confirm");
    // and of a step that exists: the confirmation, with its button
    expect((await reply("run write-rows --replace")).all).toContain("Replace and run");
  });

  it("Slack took every reply", () => {
    expect(t.fake.refusals()).toEqual([]);
  });
});
