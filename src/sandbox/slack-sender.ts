import { createHmac } from "node:crypto";
import { CALLBACK, INPUT } from "../views/ids.js";

/**
 * What a Slack workspace sends to the app, signed the way Slack signs it: slash commands,
 * button clicks and modal submissions, POSTed to the app's `/slack/events`.
 */

/** Headers that make a body pass Slack's request verification. */
export interface SlackSignatureHeaders {
  "x-slack-signature": string;
  "x-slack-request-timestamp": string;
  "content-type": string;
}

/**
 * Sign a raw body as Slack does: `v0=` + hex HMAC-SHA256 of `v0:<ts>:<body>` under the
 * app's signing secret.
 *
 * @example signSlackRequest("8f7…", "command=%2Fmigrate&text=plan")
 */
export function signSlackRequest(
  signingSecret: string,
  rawBody: string,
  timestampSeconds: number = Math.floor(Date.now() / 1000),
  contentType = "application/x-www-form-urlencoded",
): SlackSignatureHeaders {
  const ts = String(Math.floor(timestampSeconds));
  const digest = createHmac("sha256", signingSecret).update(`v0:${ts}:${rawBody}`).digest("hex");
  return {
    "x-slack-signature": `v0=${digest}`,
    "x-slack-request-timestamp": ts,
    "content-type": contentType,
  };
}

/** How to deliver a request, and how to spoil it on purpose. */
export interface SendOptions {
  /** the app's events endpoint, e.g. `http://127.0.0.1:3000/slack/events` */
  url: string;
  /** the secret to sign with: pass a wrong one to test rejection */
  signingSecret: string;
  /** seconds since the epoch to sign with (default: now); an old one makes the request stale */
  timestampSeconds?: number;
  /** change the body after it was signed (the signature then no longer matches) */
  tamper?: (rawBody: string) => string;
  /** Slack's redelivery headers */
  retryNum?: number;
  retryReason?: string;
  /** extra headers */
  headers?: Record<string, string>;
  /** give up after this long (default 10 s) */
  timeoutMs?: number;
}

/** The app's answer. `ms` is the time until the response arrived: the ack latency. */
export interface SendResult {
  status: number;
  body: string;
  ms: number;
  headers: Record<string, string>;
}

/** Who and where, shared by every kind of request. */
export interface SlackActor {
  userId?: string;
  userName?: string;
  channelId?: string;
  channelName?: string;
  teamId?: string;
  teamDomain?: string;
  apiAppId?: string;
  triggerId?: string;
  responseUrl?: string;
}

export interface SlashCommandOptions extends SendOptions, SlackActor {
  /** e.g. `/migrate` */
  command: string;
  text?: string;
}

export interface BlockActionOptions extends SendOptions, SlackActor {
  actionId: string;
  blockId?: string;
  value?: string;
  /** the visible label of the button */
  buttonText?: string;
  /** the message that holds the button */
  messageTs?: string;
  messageText?: string;
  messageBlocks?: unknown[];
  /** the bot that posted the message */
  botUserId?: string;
  botId?: string;
}

/** One input's state, as Slack reports it in `view.state.values[blockId][actionId]`. */
export type ViewStateValue = { type: string } & Record<string, unknown>;

export interface ViewSubmissionOptions extends SendOptions, SlackActor {
  callbackId: string;
  viewId?: string;
  /** the view's hash, as Slack gave it when the app opened the view */
  viewHash?: string;
  privateMetadata?: string;
  /** `state.values`: block id → action id → value */
  values?: Record<string, Record<string, ViewStateValue>>;
  blocks?: unknown[];
  title?: string;
  /** response_urls, when the modal has `response_url_enabled` inputs */
  responseUrls?: { block_id: string; action_id: string; channel_id: string; response_url: string }[];
}

const DEFAULTS = {
  userId: "U0OPERATOR",
  userName: "operator",
  channelId: "C0CUTOVER",
  channelName: "cutover",
  teamId: "T0CUTOVER",
  teamDomain: "cutover-sandbox",
  apiAppId: "A0CUTOVER",
  responseUrl: "https://hooks.slack.com/commands/T0CUTOVER/1/none",
} as const;

/** A fresh trigger id in Slack's shape. */
export function newTriggerId(): string {
  return `${Date.now()}.${Math.floor(Math.random() * 1e12)}.${Math.random().toString(16).slice(2, 18)}`;
}

/** The form body Slack POSTs for a slash command. */
export function slashCommandBody(opts: Omit<SlashCommandOptions, keyof SendOptions>): string {
  return new URLSearchParams({
    token: "deprecated-verification-token",
    team_id: opts.teamId ?? DEFAULTS.teamId,
    team_domain: opts.teamDomain ?? DEFAULTS.teamDomain,
    channel_id: opts.channelId ?? DEFAULTS.channelId,
    channel_name: opts.channelName ?? DEFAULTS.channelName,
    user_id: opts.userId ?? DEFAULTS.userId,
    user_name: opts.userName ?? DEFAULTS.userName,
    command: opts.command,
    text: opts.text ?? "",
    api_app_id: opts.apiAppId ?? DEFAULTS.apiAppId,
    is_enterprise_install: "false",
    response_url: opts.responseUrl ?? DEFAULTS.responseUrl,
    trigger_id: opts.triggerId ?? newTriggerId(),
  }).toString();
}

/** The `block_actions` payload Slack sends when someone clicks a button in a message. */
export function blockActionPayload(
  opts: Omit<BlockActionOptions, keyof SendOptions>,
): Record<string, unknown> {
  const teamId = opts.teamId ?? DEFAULTS.teamId;
  const channelId = opts.channelId ?? DEFAULTS.channelId;
  const userId = opts.userId ?? DEFAULTS.userId;
  const userName = opts.userName ?? DEFAULTS.userName;
  const messageTs = opts.messageTs ?? "1700000000.000100";
  const blockId = opts.blockId ?? "actions";
  const actionTs = (Date.now() / 1000).toFixed(6);
  return {
    type: "block_actions",
    user: { id: userId, username: userName, name: userName, team_id: teamId },
    api_app_id: opts.apiAppId ?? DEFAULTS.apiAppId,
    token: "deprecated-verification-token",
    container: { type: "message", message_ts: messageTs, channel_id: channelId, is_ephemeral: false },
    trigger_id: opts.triggerId ?? newTriggerId(),
    team: { id: teamId, domain: opts.teamDomain ?? DEFAULTS.teamDomain },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: channelId, name: opts.channelName ?? DEFAULTS.channelName },
    message: {
      type: "message",
      subtype: "bot_message",
      user: opts.botUserId ?? "U0CUTOVER",
      bot_id: opts.botId ?? "B0CUTOVER",
      ts: messageTs,
      text: opts.messageText ?? "",
      blocks: opts.messageBlocks ?? [],
      team: teamId,
    },
    state: { values: {} },
    response_url: opts.responseUrl ?? DEFAULTS.responseUrl,
    actions: [
      {
        action_id: opts.actionId,
        block_id: blockId,
        text: { type: "plain_text", text: opts.buttonText ?? opts.actionId, emoji: true },
        ...(opts.value === undefined ? {} : { value: opts.value }),
        type: "button",
        action_ts: actionTs,
      },
    ],
  };
}

/** The `view_submission` payload Slack sends when someone presses a modal's submit button. */
export function viewSubmissionPayload(
  opts: Omit<ViewSubmissionOptions, keyof SendOptions>,
): Record<string, unknown> {
  const teamId = opts.teamId ?? DEFAULTS.teamId;
  const userName = opts.userName ?? DEFAULTS.userName;
  const viewId = opts.viewId ?? "V0CUTOVER1";
  return {
    type: "view_submission",
    team: { id: teamId, domain: opts.teamDomain ?? DEFAULTS.teamDomain },
    user: { id: opts.userId ?? DEFAULTS.userId, username: userName, name: userName, team_id: teamId },
    api_app_id: opts.apiAppId ?? DEFAULTS.apiAppId,
    token: "deprecated-verification-token",
    trigger_id: opts.triggerId ?? newTriggerId(),
    view: {
      id: viewId,
      team_id: teamId,
      type: "modal",
      blocks: opts.blocks ?? [],
      private_metadata: opts.privateMetadata ?? "",
      callback_id: opts.callbackId,
      state: { values: opts.values ?? {} },
      hash: opts.viewHash ?? `${Math.floor(Date.now() / 1000)}.sandbox`,
      title: { type: "plain_text", text: opts.title ?? "Cutover", emoji: true },
      clear_on_close: false,
      notify_on_close: false,
      close: null,
      submit: { type: "plain_text", text: "Submit", emoji: true },
      previous_view_id: null,
      root_view_id: viewId,
      app_id: opts.apiAppId ?? DEFAULTS.apiAppId,
      external_id: "",
      app_installed_team_id: teamId,
      bot_id: "B0CUTOVER",
    },
    response_urls: opts.responseUrls ?? [],
    is_enterprise_install: false,
    enterprise: null,
  };
}

/** Sign a raw body and POST it; resolves with the app's answer and how long it took. */
export async function sendSigned(rawBody: string, opts: SendOptions): Promise<SendResult> {
  const signed = signSlackRequest(opts.signingSecret, rawBody, opts.timestampSeconds);
  const body = opts.tamper ? opts.tamper(rawBody) : rawBody;
  const headers: Record<string, string> = { ...signed, ...opts.headers };
  if (opts.retryNum !== undefined) headers["x-slack-retry-num"] = String(opts.retryNum);
  if (opts.retryReason !== undefined) headers["x-slack-retry-reason"] = opts.retryReason;
  const started = performance.now();
  // Node's fetch keeps connections alive between calls, as Slack's senders do.
  const res = await fetch(opts.url, {
    method: "POST",
    headers,
    body,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  const ms = performance.now() - started;
  return { status: res.status, body: await res.text(), ms, headers: Object.fromEntries(res.headers) };
}

/** POST a signed slash command, as Slack does when someone types it. */
export function sendSlashCommand(opts: SlashCommandOptions): Promise<SendResult> {
  return sendSigned(slashCommandBody(opts), opts);
}

/** POST a signed button click. */
export function sendBlockAction(opts: BlockActionOptions): Promise<SendResult> {
  return sendSigned(interactivityBody(blockActionPayload(opts)), opts);
}

/** POST a signed modal submission. */
export function sendViewSubmission(opts: ViewSubmissionOptions): Promise<SendResult> {
  return sendSigned(interactivityBody(viewSubmissionPayload(opts)), opts);
}

/**
 * The /rollback modal submitted: `word` typed into the confirmation (ROLLBACK to go ahead), a
 * reason, and `extra` text inputs by block id (the values asked for when nothing is recorded).
 */
export function sendRollbackSubmission(
  opts: SendOptions &
    SlackActor & {
      word?: string;
      reason?: string;
      extra?: Record<string, string>;
      /** the modal the app opened (its id and hash), as Slack sends them back */
      viewId?: string;
      viewHash?: string;
    },
): Promise<SendResult> {
  const { word = "ROLLBACK", reason = "", extra = {}, ...rest } = opts;
  const fields = Object.fromEntries(
    Object.entries(extra).map(([block, value]) => [block, { value: { type: "plain_text_input", value } }]),
  );
  return sendViewSubmission({
    ...rest,
    callbackId: CALLBACK.rollback,
    values: {
      [INPUT.rollbackWord.block]: { [INPUT.rollbackWord.action]: { type: "plain_text_input", value: word } },
      [INPUT.rollbackReason.block]: {
        [INPUT.rollbackReason.action]: { type: "plain_text_input", value: reason },
      },
      ...fields,
    },
  });
}

/** Interactivity arrives as one form field, `payload`, holding JSON. */
export function interactivityBody(payload: Record<string, unknown>): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}
