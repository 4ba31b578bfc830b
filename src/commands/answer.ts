import type { Reply } from "../views/blocks.js";

/**
 * How a command ended, for its caller to branch on (the metrics label, the terminal's exit
 * status) instead of reading the reply's first character:
 * - `ok`: done, or answered (help, status, a run queued)
 * - `refused`: a rule said no and nothing changed (access, the lock, a pre-check, a missing confirmation)
 * - `failed`: something went wrong while doing it
 * - `invalid`: the arguments were wrong; the reply says how to write them
 */
export type Outcome = "ok" | "refused" | "failed" | "invalid";

/** A command's reply with its outcome, and the runs it queued (full ids) for the caller to follow. */
export interface Answer extends Reply {
  outcome: Outcome;
  runs?: string[];
}

export const ok = (reply: Reply, runs?: string[]): Answer => ({
  ...reply,
  outcome: "ok",
  ...(runs ? { runs } : {}),
});
export const refused = (reply: Reply): Answer => ({ ...reply, outcome: "refused" });
export const failed = (reply: Reply): Answer => ({ ...reply, outcome: "failed" });
export const invalid = (reply: Reply): Answer => ({ ...reply, outcome: "invalid" });
