import type { KnownBlock, View } from "@slack/types";
import type { CutoverChange, PreCheck } from "../jobs/cutover/types.js";
import { context, esc, person, type Reply, section, short, slackDate } from "./blocks.js";
import { ACTION, CALLBACK, INPUT } from "./ids.js";

export interface CutoverRequestState {
  approvalId: string;
  change: CutoverChange;
  prechecks: PreCheck[];
  requestedBy: string;
  expiresAt: Date;
  /** pending | approved | rejected | withdrawn | expired | used | void */
  status: string;
  decidedBy?: string | null;
  note?: string | null;
  /** why it was asked for outside the maintenance window, when it was */
  outsideWindow?: { window: string; reason: string } | null;
  runId?: string | null;
}

/** The lines saying exactly what the cutover changes. */
export function changeLines(change: CutoverChange): string[] {
  const lines: string[] = [];
  if (change.live) {
    // the database moves first, within the approval: what freezes, and which way data flows after
    lines.push(
      `• *Database, first*: \`${esc(change.live.freeze.source)}\` on the source loses its writes (reads go on) → replication drained → sequences → verify → replication turned around${change.live.reverse ? " (the way back: target → source)" : " (none back: replication.reverse is off)"} → \`${esc(change.live.freeze.target)}\` writes on the target; lag must be ≤ ${change.live.maxLagSeconds} s`,
    );
  }
  lines.push(
    ...change.records.map(
      (r) =>
        `• *${r.type} \`${esc(r.name)}\`*: \`${esc(r.from ?? "(none)")}\` → \`${esc(r.to)}\` · TTL ${r.fromTtl} s → ${r.ttl} s${r.proxied ? " · proxied" : ""}`,
    ),
  );
  if (change.pages) {
    for (const v of change.pages.vars) {
      lines.push(
        `• *Pages \`${esc(change.pages.project)}\`* ${esc(v.name)}: \`${esc(v.from ?? "(unset)")}\` → \`${esc(v.to)}\``,
      );
    }
    if (change.pages.redeploy)
      lines.push(
        `• *Pages \`${esc(change.pages.project)}\`*: a new ${esc(change.pages.environment)} deployment`,
      );
  }
  return lines;
}

const OUTCOME: Record<string, string> = {
  approved: "✅ Approved",
  rejected: "🚫 Rejected",
  withdrawn: "↩️ Withdrawn by the requester",
  expired: "⌛ Expired unused",
  used: "🚀 Approved and carried out",
  void: "⛔ Void: the change differed when it was carried out",
};

/**
 * The foot of a request for a second person's approval: while pending, when it expires and the
 * Approve… / Reject / Withdraw buttons (their handlers look the request's kind up by its id);
 * afterwards, the outcome, who decided and the run that carried it out.
 */
export function decisionBlocks(
  s: Pick<CutoverRequestState, "approvalId" | "expiresAt" | "status" | "decidedBy" | "note" | "runId">,
  howToConfirm: string,
): KnownBlock[] {
  if (s.status !== "pending") {
    const who = s.decidedBy ? ` by <@${s.decidedBy}>` : "";
    const note = s.note ? ` — “${esc(s.note)}”` : "";
    return [
      section(
        `*${OUTCOME[s.status] ?? s.status}*${who}${note}${s.runId ? ` · run \`${s.runId.slice(0, 8)}\`` : ""}`,
      ),
    ];
  }
  return [
    context(`Expires ${slackDate(s.expiresAt)}. ${howToConfirm}`),
    {
      type: "actions",
      elements: [
        {
          type: "button",
          action_id: ACTION.approveCutover,
          text: { type: "plain_text", text: "Approve…" },
          style: "primary",
          value: s.approvalId,
        },
        {
          type: "button",
          action_id: ACTION.rejectCutover,
          text: { type: "plain_text", text: "Reject" },
          style: "danger",
          value: s.approvalId,
        },
        {
          type: "button",
          action_id: ACTION.withdrawCutover,
          text: { type: "plain_text", text: "Withdraw" },
          value: s.approvalId,
        },
      ],
    },
  ];
}

/** The cutover request in the channel; edited in place to show the outcome of every click. */
export function cutoverRequestView(s: CutoverRequestState): Reply {
  const blocks: KnownBlock[] = [
    section(
      `🔀 *DNS cutover requested* by <@${s.requestedBy}> for *${esc(s.change.environment)}* — needs a second person's approval`,
    ),
    section(`*What will change*\n${changeLines(s.change).join("\n")}`),
    section(
      `*Pre-checks*\n${s.prechecks.map((c) => `${c.ok ? "✅" : "❌"} ${esc(c.name)} — ${esc(c.detail)}`).join("\n") || "_none_"}`,
    ),
  ];
  if (s.outsideWindow) {
    blocks.push(
      section(
        `⚠️ Outside the maintenance window (${esc(s.outsideWindow.window)}). Reason given: _${esc(s.outsideWindow.reason)}_`,
      ),
    );
  }
  blocks.push(
    ...decisionBlocks(s, "The approver types the record name to confirm; the requester cannot approve."),
  );
  return { text: `DNS cutover requested by ${person(s.requestedBy)}: ${s.status}`, blocks };
}

/** The approver's modal for a request: what it does, the word to type to confirm, an optional note. */
export function confirmModal(opts: { approvalId: string; title: string; intro: string; word: string }): View {
  return {
    type: "modal",
    callback_id: CALLBACK.approveCutover,
    private_metadata: opts.approvalId,
    title: { type: "plain_text", text: short(opts.title, 24) },
    submit: { type: "plain_text", text: "Approve" },
    close: { type: "plain_text", text: "Cancel" },
    blocks: [
      section(opts.intro),
      {
        type: "input",
        block_id: INPUT.confirmName.block,
        label: { type: "plain_text", text: short(`Type ${opts.word} to confirm`, 2000) },
        element: {
          type: "plain_text_input",
          action_id: INPUT.confirmName.action,
          // a DNS name runs to 253 characters, a placeholder to 150: the label says it whole
          placeholder: { type: "plain_text", text: short(opts.word, 150) },
        },
      },
      {
        type: "input",
        block_id: INPUT.note.block,
        optional: true,
        label: { type: "plain_text", text: "Note" }, // Slack adds "(optional)" itself
        element: { type: "plain_text_input", action_id: INPUT.note.action, multiline: true },
      },
    ],
  };
}

/** The approver's modal: type the first record's name to confirm, optionally leave a note. */
export function approveModal(approvalId: string, change: CutoverChange): View {
  return confirmModal({
    approvalId,
    title: "Approve the cutover",
    intro: `*This switches production.*\n${changeLines(change).join("\n")}`,
    word: change.records[0]?.name ?? "",
  });
}

/** /rollback: type ROLLBACK to put DNS and the front end back. */
export function rollbackModal(summary: string[]): View {
  return {
    type: "modal",
    callback_id: CALLBACK.rollback,
    title: { type: "plain_text", text: "Emergency rollback" },
    submit: { type: "plain_text", text: "Roll back now" },
    close: { type: "plain_text", text: "Cancel" },
    blocks: [
      section(
        `*This puts production back on the old services.*\n${summary.join("\n") || "_The values to restore are read from the cutover record._"}`,
      ),
      {
        type: "input",
        block_id: INPUT.rollbackWord.block,
        label: { type: "plain_text", text: "Type ROLLBACK to confirm" },
        element: {
          type: "plain_text_input",
          action_id: INPUT.rollbackWord.action,
          placeholder: { type: "plain_text", text: "ROLLBACK" },
        },
      },
      {
        type: "input",
        block_id: INPUT.rollbackReason.block,
        optional: true,
        label: { type: "plain_text", text: "Why (goes to the channel and the audit trail)" },
        element: { type: "plain_text_input", action_id: INPUT.rollbackReason.action },
      },
    ],
  };
}

/** The alert posted when the watch after a cutover breaches a threshold. */
export function alertView(text: string, rollbackButton: boolean): Reply {
  const blocks: KnownBlock[] = [section(`*${esc(text)}*`)];
  if (rollbackButton) {
    blocks.push({
      type: "actions",
      elements: [
        {
          type: "button",
          action_id: ACTION.rollbackNow,
          text: { type: "plain_text", text: "🚨 Roll back now" },
          style: "danger",
          value: "rollback",
        },
      ],
    });
  }
  return { text: esc(text), blocks };
}
