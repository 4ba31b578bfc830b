import { context, escShort, type Reply, section } from "./blocks.js";
import { ACTION } from "./ids.js";

/**
 * The question asked before a run that may overwrite (--replace) or delete (--delete) on the
 * target. `target` is a resolved step or phase id (≤ 63 characters), which the button carries
 * whole; what people read names it cut to fit Slack's confirm dialog (300 characters).
 */
export function confirmRunView(
  target: string,
  flags: { replace: boolean; delete: boolean; undo?: boolean },
): Reply {
  if (flags.undo) return confirmUndoView(target);
  const what = [
    flags.replace ? "overwrite what the target already holds" : "",
    flags.delete ? "delete objects on the target that the source does not have" : "",
  ]
    .filter(Boolean)
    .join(" and ");
  const value = JSON.stringify({ target, replace: flags.replace, delete: flags.delete });
  const text = `⚠️ \`run ${escShort(target, 200)}\` with ${flags.replace ? "`--replace`" : ""}${flags.replace && flags.delete ? " and " : ""}${flags.delete ? "`--delete`" : ""} will ${what}. The source is never touched.`;
  return {
    text,
    blocks: [
      section(text),
      context(
        `Preview first with \`/migrate run ${escShort(target, 200)} --dry-run\`. Confirming is written to the audit trail with your name.`,
      ),
      {
        type: "actions",
        elements: [
          {
            type: "button",
            action_id: ACTION.confirmRun,
            text: { type: "plain_text", text: flags.replace ? "Replace and run" : "Delete and run" },
            style: "danger",
            value,
            confirm: {
              title: { type: "plain_text", text: "Change the target?" },
              text: { type: "mrkdwn", text: `This will ${what} for \`${escShort(target, 80)}\`.` },
              confirm: { type: "plain_text", text: "Yes, go ahead" },
              deny: { type: "plain_text", text: "No" },
              style: "danger",
            },
          },
          {
            type: "button",
            action_id: ACTION.dismiss,
            text: { type: "plain_text", text: "Cancel" },
            value: "dismiss",
          },
        ],
      },
    ],
  };
}

/** The question asked before `/migrate undo`: it tears down what Cutover created in the phase. */
function confirmUndoView(target: string): Reply {
  const value = JSON.stringify({ target, replace: false, delete: false, undo: true });
  const text = `⚠️ \`undo ${escShort(target, 200)}\` tears down what Cutover created there (instances, buckets, distributions, settings it changed), newest step first. The source is never touched.`;
  return {
    text,
    blocks: [
      section(text),
      context(
        `Preview first with \`/migrate undo ${escShort(target, 200)} --dry-run\`. Confirming is written to the audit trail with your name.`,
      ),
      {
        type: "actions",
        elements: [
          {
            type: "button",
            action_id: ACTION.confirmRun,
            text: { type: "plain_text", text: "Undo" },
            style: "danger",
            value,
            confirm: {
              title: { type: "plain_text", text: "Tear it down?" },
              text: {
                type: "mrkdwn",
                text: `This removes what Cutover created for \`${escShort(target, 80)}\`.`,
              },
              confirm: { type: "plain_text", text: "Yes, undo" },
              deny: { type: "plain_text", text: "No" },
              style: "danger",
            },
          },
          {
            type: "button",
            action_id: ACTION.dismiss,
            text: { type: "plain_text", text: "Cancel" },
            value: "dismiss",
          },
        ],
      },
    ],
  };
}
