import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blockActionPayload,
  interactivityBody,
  signSlackRequest,
  slashCommandBody,
  viewSubmissionPayload,
} from "../../src/sandbox/slack-sender.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import { CHANNEL, OPERATOR, replyText, startTestBot, type TestBot } from "../helpers/bot.js";
import { reportFigure } from "./figures.js";

/**
 * Hostile requests through the real receiver: every kind of request Slack sends, each spoiled in
 * every way a forger or a replayer could, is refused with 401 and leaves no trace: no run, no
 * audit event, no Slack call.
 */

let t: TestBot;

beforeAll(async () => {
  t = await startTestBot("sec_signatures");
});
afterAll(async () => {
  await t?.stop();
});

/** A valid body for each endpoint kind, as Slack would send it from an operator in the channel. */
function bodies(): Record<string, string> {
  const actor = { userId: OPERATOR, channelId: CHANNEL, responseUrl: t.fake.responseUrl("forged") };
  return {
    "/migrate run": slashCommandBody({ ...actor, command: "/migrate", text: "run probe" }),
    "/rollback": slashCommandBody({ ...actor, command: "/rollback", text: "" }),
    "block_actions (confirm run)": interactivityBody(
      blockActionPayload({
        ...actor,
        actionId: ACTION.confirmRun,
        value: JSON.stringify({ target: "probe", replace: true, delete: false }),
      }),
    ),
    "block_actions (cancel run)": interactivityBody(
      blockActionPayload({ ...actor, actionId: ACTION.cancelRun, value: "00000000" }),
    ),
    "view_submission (rollback)": interactivityBody(
      viewSubmissionPayload({
        ...actor,
        callbackId: CALLBACK.rollback,
        values: {
          [INPUT.rollbackWord.block]: {
            [INPUT.rollbackWord.action]: { type: "plain_text_input", value: "ROLLBACK" },
          },
        },
      }),
    ),
  };
}

type Spoil = (secret: string, body: string) => { headers: Record<string, string>; body: string };
const now = () => Math.floor(Date.now() / 1000);

/** The ways a request can be wrong. Each returns the headers and body actually sent. */
const SPOILS: Record<string, Spoil> = {
  "bad signature (wrong secret)": (_s, body) => ({
    headers: { ...signSlackRequest("not-the-secret", body) },
    body,
  }),
  "bad signature (garbage)": (s, body) => ({
    headers: { ...signSlackRequest(s, body), "x-slack-signature": "v0=deadbeef" },
    body,
  }),
  "signature of another version": (s, body) => {
    const h = signSlackRequest(s, body);
    return { headers: { ...h, "x-slack-signature": h["x-slack-signature"].replace(/^v0=/, "v1=") }, body };
  },
  "missing signature header": (s, body) => {
    const { "x-slack-signature": _drop, ...rest } = signSlackRequest(s, body);
    return { headers: rest, body };
  },
  "missing timestamp header": (s, body) => {
    const { "x-slack-request-timestamp": _drop, ...rest } = signSlackRequest(s, body);
    return { headers: rest, body };
  },
  "timestamp 6 min old (replay)": (s, body) => ({
    headers: { ...signSlackRequest(s, body, now() - 6 * 60) },
    body,
  }),
  "timestamp 1 day old (replay)": (s, body) => ({
    headers: { ...signSlackRequest(s, body, now() - 86_400) },
    body,
  }),
  "signed for another timestamp": (s, body) => ({
    headers: { ...signSlackRequest(s, body, now() - 30), "x-slack-request-timestamp": String(now()) },
    body,
  }),
  "body changed after signing (user)": (s, body) => ({
    headers: { ...signSlackRequest(s, body) },
    body: body.replace(/U0OPERATOR/g, "U0OPERATOS"),
  }),
  "body changed after signing (appended field)": (s, body) => ({
    headers: { ...signSlackRequest(s, body) },
    body: `${body}&x=1`,
  }),
  "empty signature": (s, body) => ({
    headers: { ...signSlackRequest(s, body), "x-slack-signature": "" },
    body,
  }),
};

async function post(headers: Record<string, string>, body: string): Promise<number> {
  const res = await fetch(t.eventsUrl, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  await res.text();
  return res.status;
}

async function traces() {
  const db = t.bot.deps.db;
  return {
    runs: await db.run.count(),
    audit: await db.auditEvent.count(),
    approvals: await db.approval.count(),
    deliveries: Number(
      ((await db.$queryRawUnsafe("SELECT count(*)::int AS n FROM slack_deliveries")) as { n: number }[])[0]!
        .n,
    ),
    slackCalls: t.fake.calls().length,
  };
}

describe("signed-request verification through the real receiver", () => {
  const results: Array<{ kind: string; spoil: string; status: number }> = [];

  it("refuses every spoiled request of every kind with 401, and nothing happens", async () => {
    const before = await traces();
    for (const [kind, body] of Object.entries(bodies())) {
      for (const [spoil, make] of Object.entries(SPOILS)) {
        const req = make(t.signingSecret, body);
        results.push({ kind, spoil, status: await post(req.headers, req.body) });
      }
    }
    // A genuine request afterwards, answered: once its reply arrived, anything the forged
    // requests could have set off would have had time to show.
    const control = await t.command("status");
    expect(control.status).toBe(200);
    expect(await replyText(t, control)).toMatch(/^Migration status/);
    // no sleep to prove the negative: each forged request was answered 401 by the receiver
    // before any listener ran, and the control request was answered after all of them
    const after = await traces();

    const accepted = results.filter((r) => r.status !== 401);
    expect(accepted).toEqual([]);
    expect(results.length).toBe(Object.keys(bodies()).length * Object.keys(SPOILS).length);
    expect(after.runs).toBe(before.runs);
    expect(after.approvals).toBe(before.approvals);
    expect(after.audit).toBe(before.audit); // status is a read: it audits nothing
    expect(after.deliveries).toBe(before.deliveries + 1); // the control request only
    // only the control request's reply reached Slack
    const newCalls = t.fake.calls().slice(before.slackCalls);
    expect(newCalls.map((c) => c.method)).toEqual(["response_url"]);
    reportFigure("signatures", {
      refused: results.length - accepted.length,
      sent: results.length,
      kinds: Object.keys(bodies()).length,
      spoils: Object.keys(SPOILS).length,
    });
  });

  it("accepts the same requests when correctly signed (the refusals above are not a broken receiver)", async () => {
    for (const body of Object.values(bodies())) {
      const status = await post({ ...signSlackRequest(t.signingSecret, body) }, body);
      expect(status).toBe(200);
    }
  });
});
