import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { steadyRespond } from "../../src/commands/reply.js";
import { startTestBot, type TestBot } from "../helpers/bot.js";
import { waitUntil } from "../helpers/wait.js";

let t: TestBot;

beforeAll(async () => {
  t = await startTestBot("steady-respond");
});
afterAll(async () => {
  await t?.stop();
});

const repliesTo = (res: { responseUrl: string }) => {
  const id = res.responseUrl.split("/").pop();
  return t.fake
    .calls("response_url")
    .filter((c) => (c.args as { response_url_id?: string }).response_url_id === id);
};

describe("replies through the response_url", () => {
  it("arrive when Slack's first answer to the reply is a 503", async () => {
    t.fake.failNext("response_url", "service_unavailable", { status: 503 });
    const res = await t.command("status");
    const id = res.responseUrl.split("/").pop();
    const delivered = await t.fake.waitFor(
      (c) =>
        c.method === "response_url" &&
        c.status === 200 &&
        (c.args as { response_url_id?: string }).response_url_id === id,
      { timeoutMs: 5_000 },
    );
    expect(String((delivered.args as { text?: string }).text)).toMatch(/^Migration status/);
    expect(repliesTo(res).map((c) => c.status)).toEqual([503, 200]);
  });

  it("are not tried again when the response_url is refused for good (404: expired)", async () => {
    t.fake.failNext("response_url", "expired_url", { status: 404 });
    const res = await t.command("status");
    await t.fake.waitFor((c) => c.method === "response_url" && c.status === 404, { timeoutMs: 5_000 });
    // the listener has given up once it says so; a retry would have come before that
    await waitUntil("the listener to give up on the reply", () =>
      t.logs.some((l) => l.includes("Failed to respond to the response_url: 404")),
    );
    expect(repliesTo(res).map((c) => c.status)).toEqual([404]);
  });

  it("survive connection failures twice, and give up after the third", async () => {
    const tries: number[] = [];
    const dropped = Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNRESET" } });
    const flaky = steadyRespond(async () => {
      tries.push(Date.now());
      if (tries.length < 3) throw dropped;
      return new Response("ok");
    }, [10, 20]);
    expect((await flaky("hello")).ok).toBe(true);
    expect(tries).toHaveLength(3);

    let calls = 0;
    const down = steadyRespond(async () => {
      calls++;
      throw dropped;
    }, [10, 20]);
    await expect(down("hello")).rejects.toThrow("fetch failed");
    expect(calls).toBe(3);
  });
});

describe("a reply that hangs", () => {
  it("ends the wait after the timeout and is not sent again", async () => {
    let calls = 0;
    const hanging = steadyRespond(
      () => {
        calls++;
        return new Promise<never>(() => undefined);
      },
      [10, 20],
      200,
    );
    const started = Date.now();
    await expect(hanging("hello")).rejects.toThrow("Slack did not take the reply within 0.2 s");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(calls).toBe(1);
  });
});

describe("a command whose handling fails before it has a reply", () => {
  it("still answers the person, saying what went wrong", async () => {
    // the deduplication table gone: the first thing after the ack fails
    await t.bot.deps.db.$executeRawUnsafe("ALTER TABLE slack_deliveries RENAME TO slack_deliveries_away");
    try {
      const res = await t.command("status");
      const id = res.responseUrl.split("/").pop();
      const reply = await t.fake.waitFor(
        (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
        { timeoutMs: 5_000 },
      );
      const text = String((reply.args as { text?: string }).text);
      expect(text).toMatch(/^⚠️ Something went wrong inside Cutover; the details are in its log\. Try again/);
      expect(t.logs.some((l) => l.includes("command failed before it could answer"))).toBe(true);
    } finally {
      await t.bot.deps.db.$executeRawUnsafe("ALTER TABLE slack_deliveries_away RENAME TO slack_deliveries");
    }
  });
});
