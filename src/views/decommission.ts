import type { View } from "@slack/types";
import type { DecommissionChange } from "../jobs/steps/ops/decommission.js";
import { esc, person, type Reply, section } from "./blocks.js";
import { confirmModal, decisionBlocks } from "./cutover.js";

export interface DecommissionRequestState {
  approvalId: string;
  change: DecommissionChange;
  requestedBy: string;
  expiresAt: Date;
  status: string;
  decidedBy?: string | null;
  note?: string | null;
  runId?: string | null;
}

function changeLines(c: DecommissionChange): string[] {
  return [
    `• *Archive* the source database \`${esc(c.sourceDatabase)}\` into \`s3://${esc(c.archive.bucket)}/${esc(c.archive.prefix)}\`, then prove it restores`,
    "• *Then, by hand* (the bot shuts nothing down itself):",
    ...c.checklist.map((item) => `    ◦ ${esc(item)}`),
  ];
}

/** The decommission request in the channel; edited in place like the cutover's. */
export function decommissionRequestView(s: DecommissionRequestState): Reply {
  return {
    text: `Decommission of the old services requested by ${person(s.requestedBy)}: ${s.status}`,
    blocks: [
      section(
        `🧹 *Decommission requested* by <@${s.requestedBy}> for *${esc(s.change.environment)}* (cut over ${esc(s.change.cutoverAt.slice(0, 10))}) — needs a second person's approval`,
      ),
      section(`*What happens*\n${changeLines(s.change).join("\n")}`),
      ...decisionBlocks(
        s,
        `The approver types the environment name (${esc(s.change.environment)}) to confirm; the requester cannot approve.`,
      ),
    ],
  };
}

/** The approver's modal: type the environment's name to confirm. */
export function decommissionApproveModal(approvalId: string, change: DecommissionChange): View {
  return confirmModal({
    approvalId,
    title: "Approve decommission",
    intro: `*This retires the old services.*\n${changeLines(change).join("\n")}`,
    word: change.environment,
  });
}
