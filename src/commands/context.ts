import type { View } from "@slack/types";
import type { Logger } from "pino";
import type { CloudflareClients } from "../cloud/cloudflare.js";
import type { CostExplorerApi } from "../cloud/cost-explorer.js";
import type { MigrationFile } from "../config/schema.js";
import type { DigestDeps } from "../digest/publish.js";
import type { Approval } from "../generated/prisma/client.js";
import type { LiveDeps } from "../jobs/cutover/live.js";
import type { StepRegistry } from "../jobs/define-step.js";
import type { Runner } from "../jobs/Runner.js";
import type { DecommissionChange } from "../jobs/steps/ops/decommission.js";
import type { Db } from "../store/client.js";
import type { Reply } from "../views/blocks.js";
import type { AccessControl } from "./access.js";

/** Who asked, from where. The terminal front end acts as the file's local operator. */
export interface Caller {
  user: string;
  via: "slack" | "terminal";
  channel: string | null;
  /** a Slack retry of the same request carries the same key, so it does not act twice */
  idempotencyKey: string | null;
}

/** What command handlers need; built once by the deps factory. */
export interface CommandDeps {
  db: Db;
  runner: Runner;
  file: MigrationFile;
  registry: StepRegistry;
  access: AccessControl;
  log: Logger;
  now: () => Date;
  cloudflare?: CloudflareClients | undefined;
  /** AWS Cost Explorer, for `/migrate cost` */
  costExplorer?: CostExplorerApi | undefined;
  /**
   * asks for the decommission's approval (src/jobs/steps/ops/decommission.ts): checks the window and
   * the KPIs, stores the pending request; absent where the process has no step dependencies
   */
  requestDecommission?: (
    stepWith: unknown,
    by: string,
    channel: string | null,
  ) => Promise<{ approval: Approval; change: DecommissionChange }>;
  /** posting into the channel and opening modals; absent in the terminal */
  slack?: SlackSurface;
  /** the database half of a live cutover and rollback (the file's `replication` section) */
  live?: LiveDeps | undefined;
  /** what the daily digest is posted with, for `/migrate digest`; absent where there is no Slack client */
  digest?: DigestDeps | undefined;
}

/** The few Slack calls listeners make besides replying. */
export interface SlackSurface {
  post(channel: string, reply: Reply): Promise<string>;
  update(channel: string, ts: string, reply: Reply): Promise<void>;
  /** opens a modal; resolves with the view's id and hash as Slack answered */
  openView(triggerId: string, view: View): Promise<{ id: string; hash: string } | undefined>;
}

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
