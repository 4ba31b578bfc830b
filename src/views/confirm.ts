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
  const text = `⚠️ \`run ${escShort(target, 200)}\` with ${flags.replace ? "`--replace`" : ""}${flags.replace && flags.delete ? " and " : ""}${flags.delete ? "`--delete`" : ""} will ${what}. The source is never touched.`;
  return confirmation({
    text,
    verb: "run",
    target,
    value: { target, replace: flags.replace, delete: flags.delete },
    button: flags.replace ? "Replace and run" : "Delete and run",
    dialog: {
      title: "Change the target?",
      text: `This will ${what} for \`${escShort(target, 80)}\`.`,
      yes: "Yes, go ahead",
    },
  });
}

/** The question asked before `/migrate undo`: it tears down what Cutover created in the phase. */
function confirmUndoView(target: string): Reply {
  return confirmation({
    text: `⚠️ \`undo ${escShort(target, 200)}\` tears down what Cutover created there (instances, buckets, distributions, settings it changed), newest step first. The source is never touched.`,
    verb: "undo",
    target,
    value: { target, replace: false, delete: false, undo: true },
    button: "Undo",
    dialog: {
      title: "Tear it down?",
      text: `This removes what Cutover created for \`${escShort(target, 80)}\`.`,
      yes: "Yes, undo",
    },
  });
}

/**
 * A confirmation before `/migrate <verb> <target>`: what it will do, how to preview it, and a
 * danger button carrying `value` (which Slack's dialog asks about once more) beside Cancel.
 */
function confirmation(q: {
  text: string;
  verb: "run" | "undo";
  target: string;
  value: { target: string; replace: boolean; delete: boolean; undo?: true };
  button: string;
  dialog: { title: string; text: string; yes: string };
}): Reply {
  return {
    text: q.text,
    blocks: [
      section(q.text),
      context(
        `Preview first with \`/migrate ${q.verb} ${escShort(q.target, 200)} --dry-run\`. Confirming is written to the audit trail with your name.`,
      ),
      {
        type: "actions",
        elements: [
          {
            type: "button",
            action_id: ACTION.confirmRun,
            text: { type: "plain_text", text: q.button },
            style: "danger",
            value: JSON.stringify(q.value),
            confirm: {
              title: { type: "plain_text", text: q.dialog.title },
              text: { type: "mrkdwn", text: q.dialog.text },
              confirm: { type: "plain_text", text: q.dialog.yes },
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
