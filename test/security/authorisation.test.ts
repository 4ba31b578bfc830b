import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SUBCOMMANDS } from "../../src/commands/parse.js";
import { type SendResult, sendViewSubmission } from "../../src/sandbox/slack-sender.js";
import { ACTION, CALLBACK, INPUT } from "../../src/views/ids.js";
import {
  APPROVER,
  CHANNEL,
  GROUP_MEMBER,
  OPERATOR,
  OTHER_CHANNEL,
  openModal,
  SECOND_OPERATOR,
  STRANGER,
  type TestBot,
} from "../helpers/bot.js";
import { approvalValues, pendingDnsCutover, RECORD, startDnsTestBot } from "../helpers/cutover-world.js";
import { waitForValue } from "../helpers/wait.js";
import { reportFigure } from "./figures.js";

/**
 * The access rules (DESIGN.md; src/commands/access.ts, dispatch.ts `authorise`), as a matrix over
 * every `/migrate` subcommand, `/rollback`, every button and every modal × who asks and where.
 *
 * The rules: commands other than help only in `access.channels`; read-only commands (plan, status,
 * audit, cost, kpi) for operators and approvers; everything else for operators; a cutover request
 * is decided by an approver who is not its requester; only the requester withdraws it. Every
 * refusal is audited (outcome `refused`, actor = who asked).
 */

// SECOND_OPERATOR is an operator and an approver: when they ask for a cutover, only the
// "not your own request" rule stands between them and approving it.
const REQUESTER = SECOND_OPERATOR;
let t: TestBot;
let world: Awaited<ReturnType<typeof startDnsTestBot>>;

beforeAll(async () => {
  // a DNS section, so /rollback has a modal to open (its submission is read only from that modal)
  world = await startDnsTestBot("sec_authz", [SECOND_OPERATOR]);
  t = world.t;
});
afterAll(async () => {
  await world?.stop();
});

type Role = "operator" | "group operator" | "approver" | "neither" | "requester (self)" | "wrong channel";
type Expect = "allowed" | "refused";
interface Outcome {
  refused: boolean;
  text: string;
}

async function refusalsOf(user: string): Promise<number> {
  return t.bot.deps.db.auditEvent.count({ where: { actor: user, outcome: "refused" } });
}

/** `fn`'s first defined value within the deadline; undefined when there is none by then. */
function until<T>(fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T | undefined> {
  return waitForValue("an answer", fn, (v) => v !== undefined, { timeoutMs }).catch(() => undefined);
}

/** The reply to a request: in the ack body, or through its response URL; or an allowed side effect. */
async function outcomeOf(
  res: SendResult & { responseUrl?: string },
  allowedSignal?: () => Promise<boolean>,
): Promise<Outcome> {
  if (res.status !== 200) return { refused: true, text: `HTTP ${res.status}` };
  if (res.body.trim().startsWith("{")) {
    const body = JSON.parse(res.body) as { text?: string; response_action?: string; errors?: unknown };
    if (body.response_action === "errors") return { refused: true, text: JSON.stringify(body.errors) };
    if (body.text) return { refused: body.text.startsWith("⛔"), text: body.text };
  }
  // A modal submission acked with an empty body: accepted (the handler then goes on).
  if (!res.responseUrl && res.body.trim() === "" && !allowedSignal)
    return { refused: false, text: "(accepted)" };
  const id = res.responseUrl?.split("/").pop();
  const found = await until(async () => {
    const call = t.fake
      .calls("response_url")
      .find((c) => (c.args as { response_url_id?: string }).response_url_id === id);
    if (call) {
      const text = String((call.args as { text?: string }).text ?? "");
      return { refused: text.startsWith("⛔"), text };
    }
    if (allowedSignal && (await allowedSignal())) return { refused: false, text: "(side effect seen)" };
    return undefined;
  });
  if (found) return found;
  throw new Error(`no answer to the request (HTTP ${res.status}, body ${res.body.slice(0, 200)})`);
}

// ───────────────────────────── the cases ─────────────────────────────

const WHO: Record<Exclude<Role, "requester (self)">, { user: string; channel: string }> = {
  operator: { user: OPERATOR, channel: CHANNEL },
  "group operator": { user: GROUP_MEMBER, channel: CHANNEL },
  approver: { user: APPROVER, channel: CHANNEL },
  neither: { user: STRANGER, channel: CHANNEL },
  "wrong channel": { user: OPERATOR, channel: OTHER_CHANNEL },
};

const READ_ONLY = new Set(["plan", "status", "audit", "cost", "kpi"]);
/** What each subcommand is sent as (valid arguments, so the parser lets it reach the access check). */
const TEXT: Record<keyof typeof SUBCOMMANDS, string> = {
  help: "help",
  plan: "plan",
  status: "status",
  run: "run probe --dry-run",
  undo: "undo probe --dry-run",
  cancel: "cancel 0000ffff",
  audit: "audit 5",
  cutover: "cutover",
  verify: "verify database",
  cost: "cost",
  kpi: "kpi",
  decommission: "decommission",
  digest: "digest",
};

function commandExpectation(sub: keyof typeof SUBCOMMANDS, role: keyof typeof WHO): Expect {
  if (sub === "help") return "allowed";
  if (role === "wrong channel" || role === "neither") return "refused";
  if (role === "approver") return READ_ONLY.has(sub) ? "allowed" : "refused";
  return "allowed";
}

interface Cell {
  item: string;
  role: Role;
  expect: Expect;
  actor: string;
  send: () => Promise<Outcome>;
}

function commandCells(): Cell[] {
  const cells: Cell[] = [];
  for (const sub of Object.keys(SUBCOMMANDS) as (keyof typeof SUBCOMMANDS)[]) {
    for (const [role, who] of Object.entries(WHO) as [
      keyof typeof WHO,
      { user: string; channel: string },
    ][]) {
      cells.push({
        item: `/migrate ${sub}`,
        role,
        expect: commandExpectation(sub, role),
        actor: who.user,
        send: async () => {
          const out = await outcomeOf(await t.command(TEXT[sub], who));
          // past the access check, a cutover is refused for the state (no TTL lowered yet): that
          // is the rule about when, not who, and is what an allowed person sees here
          if (sub === "cutover" && out.text.startsWith("⛔ Lower the TTL first"))
            return { ...out, refused: false };
          // past the access check, the test file has no digest to post: again the state, not who
          if (sub === "digest" && out.text.startsWith("⛔ This migration file has no daily digest"))
            return { ...out, refused: false };
          return out;
        },
      });
    }
  }
  for (const [role, who] of Object.entries(WHO) as [keyof typeof WHO, { user: string; channel: string }][]) {
    cells.push({
      item: "/rollback",
      role,
      expect: role === "operator" || role === "group operator" ? "allowed" : "refused",
      actor: who.user,
      send: async () => {
        const before = t.fake.calls("views.open").length;
        return outcomeOf(
          await t.command("", { ...who, command: "/rollback" }),
          async () => t.fake.calls("views.open").length > before,
        );
      },
    });
  }
  return cells;
}

/** A fresh pending cutover request from REQUESTER, posted in `channel`. */
async function pendingApproval(channel = CHANNEL): Promise<string> {
  // one live request per environment: the previous cell's request steps aside
  await t.bot.deps.db.approval.updateMany({
    where: { liveKey: { not: null } },
    data: { status: "void", liveKey: null },
  });
  const approval = await pendingDnsCutover(t.bot.deps.db, REQUESTER, channel);
  return approval.id;
}

const statusOf = async (id: string) =>
  (await t.bot.deps.db.approval.findUniqueOrThrow({ where: { id } })).status;

/**
 * A click of an approval request's button by one person in one channel, on a fresh pending
 * request; `effect(id)`, called just before the click, gives the check that it took effect.
 */
function buttonCell(
  item: string,
  actionId: string,
  [role, user, channel, rule]: [Role, string, string, Expect],
  effect: (id: string) => () => Promise<boolean>,
): Cell {
  return {
    item,
    role,
    expect: rule,
    actor: user,
    send: async () => {
      const id = await pendingApproval();
      const tookEffect = effect(id);
      return outcomeOf(await t.click(actionId, id, { user, channel }), tookEffect);
    },
  };
}

function approvalButtonCells(): Cell[] {
  const cells: Cell[] = [];
  const deciders: Array<[Role, string, string, Expect]> = [
    ["approver", APPROVER, CHANNEL, "allowed"],
    ["operator", OPERATOR, CHANNEL, "refused"], // an operator who is not an approver
    ["neither", STRANGER, CHANNEL, "refused"],
    ["requester (self)", REQUESTER, CHANNEL, "refused"],
    ["wrong channel", APPROVER, OTHER_CHANNEL, "refused"],
  ];
  for (const [role, user, channel, rule] of deciders) {
    const views = () => t.fake.calls("views.open").length;
    cells.push(
      buttonCell("button Approve…", ACTION.approveCutover, [role, user, channel, rule], () => {
        const before = views();
        return async () => views() > before;
      }),
      buttonCell(
        "button Reject",
        ACTION.rejectCutover,
        [role, user, channel, rule],
        (id) => async () => (await statusOf(id)) === "rejected",
      ),
    );
    cells.push({
      item: "modal approve (type the record name)",
      role,
      expect: rule,
      actor: user,
      // a modal carries no channel: "wrong channel" is a request posted where commands are not taken
      send: async () => {
        const id = await pendingApproval(channel);
        // as a person does: Approve… opens the modal (for those it refuses, none opens)
        const modal = await openModal(t, (triggerId) =>
          t.click(ACTION.approveCutover, id, { user, channel, triggerId }),
        );
        const res = await sendViewSubmission({
          url: t.eventsUrl,
          signingSecret: t.signingSecret,
          ...modal,
          callbackId: CALLBACK.approveCutover,
          privateMetadata: id,
          userId: user,
          values: approvalValues(RECORD),
        });
        const out = await outcomeOf(res);
        if (!out.refused)
          expect(await until(async () => ((await statusOf(id)) === "approved" ? true : undefined))).toBe(
            true,
          );
        else expect(await statusOf(id)).toBe("pending");
        return out;
      },
    });
  }
  const withdrawers: Array<[Role, string, string, Expect]> = [
    ["requester (self)", REQUESTER, CHANNEL, "allowed"],
    ["operator", OPERATOR, CHANNEL, "refused"],
    ["approver", APPROVER, CHANNEL, "refused"],
    ["neither", STRANGER, CHANNEL, "refused"],
    ["wrong channel", REQUESTER, OTHER_CHANNEL, "refused"],
  ];
  for (const [role, user, channel, rule] of withdrawers) {
    cells.push(
      buttonCell(
        "button Withdraw",
        ACTION.withdrawCutover,
        [role, user, channel, rule],
        (id) => async () => (await statusOf(id)) === "withdrawn",
      ),
    );
  }
  return cells;
}

function runButtonCells(): Cell[] {
  const cells: Cell[] = [];
  for (const [role, who] of Object.entries(WHO) as [keyof typeof WHO, { user: string; channel: string }][]) {
    const opAllowed: Expect = role === "operator" || role === "group operator" ? "allowed" : "refused";
    cells.push({
      item: "button Cancel run",
      role,
      expect: opAllowed,
      actor: who.user,
      send: async () => outcomeOf(await t.click(ACTION.cancelRun, "0000ffff", who)),
    });
    cells.push({
      item: "button Replace and run (confirm)",
      role,
      expect: opAllowed,
      actor: who.user,
      send: async () => {
        const out = await outcomeOf(
          await t.click(
            ACTION.confirmRun,
            JSON.stringify({ target: "write-rows", replace: true, delete: false }),
            who,
          ),
        );
        await idle(); // one run at a time, so the next operator's confirmation is not told "locked"
        return out;
      },
    });
    cells.push({
      item: "button Roll back (after a breach)",
      role,
      expect: opAllowed,
      actor: who.user,
      send: async () => {
        const before = t.fake.calls("views.open").length;
        return outcomeOf(
          await t.click(ACTION.rollbackNow, "", who),
          async () => t.fake.calls("views.open").length > before,
        );
      },
    });
    cells.push({
      item: "button Dismiss",
      role,
      // no rule: it deletes the clicker's own ephemeral question, and nothing else
      expect: "allowed",
      actor: who.user,
      send: async () => {
        const res = await t.click(ACTION.dismiss, "", who);
        const id = res.responseUrl.split("/").pop();
        const call = await t.fake.waitFor(
          (c) =>
            c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
          { timeoutMs: 10_000 },
        );
        return {
          refused: (call.args as { delete_original?: boolean }).delete_original !== true,
          text: "deleted",
        };
      },
    });
  }
  const rollbackers: Array<[Role, string, Expect]> = [
    ["operator", OPERATOR, "allowed"],
    ["group operator", GROUP_MEMBER, "allowed"],
    ["approver", APPROVER, "refused"],
    ["neither", STRANGER, "refused"],
  ];
  for (const [role, user, rule] of rollbackers) {
    cells.push({
      item: "modal /rollback (type ROLLBACK)",
      role,
      expect: rule,
      actor: user,
      send: async () => {
        const modal = await openModal(t, (triggerId) =>
          t.command("", { user, command: "/rollback", triggerId }),
        );
        const res = await sendViewSubmission({
          url: t.eventsUrl,
          signingSecret: t.signingSecret,
          ...modal,
          callbackId: CALLBACK.rollback,
          userId: user,
          values: {
            [INPUT.rollbackWord.block]: {
              [INPUT.rollbackWord.action]: { type: "plain_text_input", value: "ROLLBACK" },
            },
          },
        });
        const out = await outcomeOf(res);
        if (!out.refused)
          await t.fake.waitFor(
            (c) =>
              c.method === "chat.postMessage" &&
              String(c.args.text).includes(`Rollback started by <@${user}>`),
            { timeoutMs: 10_000 },
          );
        return out;
      },
    });
  }
  return cells;
}

async function idle(): Promise<void> {
  await until(async () =>
    (await t.bot.deps.db.run.count({ where: { status: { in: ["queued", "running"] } } })) === 0
      ? true
      : undefined,
  );
}

describe("the authorisation matrix", () => {
  it("refuses or allows every command, button and modal for every role exactly as the rules say, auditing each refusal", async () => {
    const cells = [...commandCells(), ...runButtonCells(), ...approvalButtonCells()];
    const rows: Array<{
      item: string;
      role: Role;
      expect: Expect;
      got: Expect;
      audited: boolean;
      text: string;
    }> = [];
    for (const cell of cells) {
      const before = await refusalsOf(cell.actor);
      const started = Date.now();
      const out = await cell.send();
      if (process.env.DEBUG_MATRIX)
        process.stdout.write(
          `${cell.item} | ${cell.role} | ${out.refused} | ${Date.now() - started} ms | ${out.text.slice(0, 80)}\n`,
        );
      const after = await refusalsOf(cell.actor);
      rows.push({
        item: cell.item,
        role: cell.role,
        expect: cell.expect,
        got: out.refused ? "refused" : "allowed",
        audited: after > before,
        text: out.text.slice(0, 120),
      });
    }
    const wrong = rows.filter((r) => r.got !== r.expect);
    const unaudited = rows.filter((r) => r.got === "refused" && !r.audited);
    const auditedAllowed = rows.filter((r) => r.got === "allowed" && r.audited);
    expect(wrong).toEqual([]);
    expect(unaudited).toEqual([]);
    expect(auditedAllowed).toEqual([]);
    // every subcommand, /rollback, every registered action and callback is in the matrix
    const items = new Set(rows.map((r) => r.item));
    for (const sub of Object.keys(SUBCOMMANDS)) expect(items).toContain(`/migrate ${sub}`);
    expect(items.size).toBe(Object.keys(SUBCOMMANDS).length + 1 + 7 + 2);
    const refused = rows.filter((r) => r.got === "refused").length;
    reportFigure("authorisation", {
      sent: rows.length,
      refused,
      expectedRefused: rows.filter((r) => r.expect === "refused").length,
      mismatches: wrong.length,
      refusalsNotAudited: unaudited.length,
      items: items.size,
    });
  }, 240_000);

  it("two approvers clicking Reject at once, ten times each: one decision, and every other click is told why", async () => {
    await t.bot.deps.db.approval.updateMany({
      where: { liveKey: { not: null } },
      data: { status: "void", liveKey: null },
    });
    // asked by an operator who is not an approver: both approvers may decide it
    const id = (await pendingDnsCutover(t.bot.deps.db, OPERATOR, CHANNEL)).id;
    const deciders = [APPROVER, SECOND_OPERATOR];
    const clicks = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.click(ACTION.rejectCutover, id, { user: deciders[i % 2], channel: CHANNEL }),
      ),
    );
    expect(clicks.map((c) => c.status)).toEqual(Array(20).fill(200));
    // the one that decided changes the request's message; each of the others gets a reply of its own
    const replies = await waitForValue(
      "19 replies",
      async () => {
        const ids = new Set(clicks.map((c) => c.responseUrl.split("/").pop()));
        return t.fake
          .calls("response_url")
          .filter((c) => ids.has((c.args as { response_url_id?: string }).response_url_id))
          .map((c) => String((c.args as { text?: string }).text ?? ""));
      },
      (r) => r.length >= 19,
      { timeoutMs: 20_000 },
    );
    expect(replies).toHaveLength(19);
    for (const text of replies)
      expect(text).toMatch(
        /^⛔ (This request is already rejected\.|Someone else already decided this request\.)$/,
      );
    expect(await statusOf(id)).toBe("rejected");
    const rows = await t.bot.deps.db.auditEvent.findMany({
      where: { action: "cutover.reject", details: { path: ["approvalId"], equals: id } },
    });
    expect(rows.filter((r) => r.outcome === "ok")).toHaveLength(1);
    expect(rows.filter((r) => r.outcome === "refused")).toHaveLength(19);
  });

  it("a refused run changes nothing: no run, no lock", async () => {
    await idle();
    const runs = await t.bot.deps.db.run.count();
    const out = await outcomeOf(await t.command("run probe", { user: APPROVER }));
    expect(out.refused).toBe(true);
    expect(await t.bot.deps.db.run.count()).toBe(runs);
    expect(await t.bot.deps.db.envLock.count()).toBe(0);
  });
});
