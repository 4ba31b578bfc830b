import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { CallRecord, FakeHttpServer, FaultPlan } from "./fake-harness.js";
import { checkMessage, checkView, type SlackRefusal } from "./slack-limits.js";
import { slashCommandBody } from "./slack-sender.js";

/**
 * One request the fake received. `method` is the Web API method (`chat.postMessage`), or
 * `response_url` for a POST to a {@link FakeSlack.responseUrl}, or `file_upload` for the bytes
 * sent to an upload URL, or `socket_mode` for a Socket Mode envelope the fake pushed to the app
 * (`args`: `type`, `envelope_id`, `payload`, and the app's `ack` payload and `ms` once it came). `args` are parsed (JSON-string fields such as `blocks` and `view`
 * are objects again) and never hold the token: that is kept apart in `token`, for assertions,
 * and FakeSlack never prints it.
 */
export interface RecordedCall {
  method: string;
  args: Record<string, unknown>;
  /** epoch milliseconds when the request arrived */
  at: number;
  token: string | undefined;
  /** the error the fake answered with, when it answered with one */
  error?: string;
  /**
   * with a refusal of the payload (`invalid_blocks`, `msg_too_long`, `invalid_arguments`…), what
   * was wrong and where, as Slack says it in `response_metadata.messages`
   */
  detail?: string;
  /** the HTTP status the fake answered with (`socket_mode`: 200 when acked, 504 when no ack came) */
  status: number;
}

/** A file shared into a message (no bytes: see {@link FakeSlack.files}). */
export interface FakeFileRef {
  id: string;
  name: string;
  title: string;
  size: number;
}

/** A channel message as a person would now see it: its edits applied. */
export interface FakeMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  user: string;
  bot_id: string;
  text: string;
  blocks?: unknown[];
  attachments?: unknown[];
  files?: FakeFileRef[];
  /** how many times it was edited (chat.update or a response_url with replace_original) */
  edits: number;
  /** thread replies, oldest first (always empty on a reply) */
  replies: FakeMessage[];
}

/** A message only one person sees. */
export interface FakeEphemeral {
  channel: string | undefined;
  user: string | undefined;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks?: unknown[];
  source: "chat.postEphemeral" | "response_url";
}

/** An uploaded file with its bytes. */
export interface FakeFile {
  id: string;
  name: string;
  title: string;
  /** the length announced to files.getUploadURLExternal */
  length: number;
  /** the bytes POSTed to the upload URL (empty until then) */
  bytes: Buffer;
  uploaded: boolean;
  /** where files.completeUploadExternal shared it */
  channel?: string;
  ts?: string;
}

/** A modal as last opened, updated or pushed. */
export interface FakeView {
  id: string;
  view: Record<string, unknown>;
  /** how it got here */
  via: "views.open" | "views.update" | "views.push";
  trigger_id?: string;
  updates: number;
  /** the hash Slack gave this version of the view (it comes back in the view_submission) */
  hash: string;
}

/** Where a response_url's replies land, as Slack knows from the request that carried it. */
export interface ResponseUrlContext {
  channel?: string;
  user?: string;
  /** the message a `replace_original` / `delete_original` reply acts on */
  messageTs?: string;
}

export interface FakeSlackOptions {
  /** default 0: any free port */
  port?: number;
  /** when set, Web API calls must carry this bearer token (or `token` field) */
  expectedToken?: string;
  /**
   * when set, apps.connections.open must carry exactly this app-level token; any `xapp-…` token
   * is taken otherwise (a bot token is always refused, as Slack does)
   */
  expectedAppToken?: string;
  teamId?: string;
  teamName?: string;
  botUserId?: string;
  botId?: string;
  /**
   * seconds part of the first `ts` handed out, then counting up 100 µs a message; by default
   * ts values follow the wall clock as Slack's do (so `oldest`/`latest` filters by time work)
   */
  firstTs?: number;
}

export interface FailOptions {
  /** HTTP status; 200 (the default) answers `{ok:false, error}` like Slack does */
  status?: number;
  /** for 429: the Retry-After header, in seconds (default 1) */
  retryAfterSeconds?: number;
}

/** The kinds of Socket Mode envelope the fake can push to the app. */
export type SocketEnvelopeType = "slash_commands" | "interactive" | "events_api";

/**
 * The app's answer to a Socket Mode envelope: `{ envelope_id, payload }` as it came back over
 * the WebSocket, and how long it took.
 */
export interface SocketAck {
  envelope_id: string;
  /** what the app put in its ack: a reply such as `{ text, blocks }`, or `{}` for a bare ack */
  payload?: Record<string, unknown>;
  /** milliseconds from pushing the envelope to its ack arriving: the ack latency */
  ms: number;
}

/** A slash command's ack, with the response_url and trigger_id the command carried. */
export interface SocketSlashCommandAck extends SocketAck {
  response_url: string;
  trigger_id: string;
}

/**
 * The fields of a slash command, as Slack puts them in a Socket Mode payload. Only `command` is
 * needed; the rest default like the signed HTTP sender's (src/sandbox/slack-sender.ts), and the
 * default `response_url` is a fresh {@link FakeSlack.responseUrl} on this fake.
 */
export interface SocketSlashCommand {
  command: string;
  text?: string;
  user_id?: string;
  user_name?: string;
  channel_id?: string;
  channel_name?: string;
  team_id?: string;
  team_domain?: string;
  api_app_id?: string;
  trigger_id?: string;
  response_url?: string;
}

export interface SocketSendOptions {
  /**
   * how long to wait for an open connection and then for the ack (default 10 s); past it the
   * promise rejects and the envelope is recorded with `error: "no_ack"`
   */
  timeoutMs?: number;
  /** `events_api` only: Slack's redelivery count and reason */
  retryAttempt?: number;
  retryReason?: string;
}

interface PendingAck {
  resolve(ack: { payload?: Record<string, unknown>; at: number }): void;
  reject(err: Error): void;
}

interface StoredMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks?: unknown[];
  attachments?: unknown[];
  files?: FakeFileRef[];
  /** chat.postMessage's `metadata` ({ event_type, event_payload }), returned by conversations.history */
  metadata?: unknown;
  edits: number;
  deleted: boolean;
}

interface Fault {
  error: string;
  status: number;
  retryAfterSeconds: number;
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> };

class SlackError extends Error {
  constructor(
    readonly code: string,
    /** what Slack puts in `response_metadata.messages` */
    readonly messages: string[] = [],
  ) {
    super(code);
  }
}

/** Throws Slack's refusal of a payload that breaks a Block Kit limit (src/sandbox/slack-limits.ts). */
function refuse(refusal: SlackRefusal | undefined): void {
  if (refusal) throw new SlackError(refusal.error, [refusal.message]);
}

type FakeSlackEvents = { call: [RecordedCall] };

/** fields Slack takes as JSON-encoded strings in a form body */
const JSON_FIELDS = ["blocks", "attachments", "view", "files", "metadata"] as const;

/**
 * A stand-in for the Slack Web API: a real HTTP server on 127.0.0.1 that keeps channels,
 * modals and files in memory and records every call. Point the real WebClient (or Bolt,
 * through `clientOptions: { slackApiUrl: fake.apiUrl }`) at it.
 *
 * @example
 * const fake = new FakeSlack(); await fake.start();
 * const client = new WebClient("xoxb-test", { slackApiUrl: fake.apiUrl });
 * await client.chat.postMessage({ channel: "C1", text: "hi" });
 * fake.messages("C1")[0].text; // "hi"
 */
export class FakeSlack extends EventEmitter<FakeSlackEvents> {
  private readonly opts: Required<
    Omit<FakeSlackOptions, "expectedToken" | "expectedAppToken" | "firstTs">
  > & {
    expectedToken?: string;
    expectedAppToken?: string;
    firstTs: number | undefined;
  };
  private readonly server = new FakeHttpServer("FakeSlack", (req, res) => this.handle(req, res));
  private seq = 0;
  private lastMicros = 0;
  private idSeq = 0;
  private readonly callRecord = new CallRecord<RecordedCall>("FakeSlack", cloneCall, (calls) =>
    describeCalls(calls),
  );
  private stored: StoredMessage[] = [];
  private ephemeralList: FakeEphemeral[] = [];
  private fileMap = new Map<string, FakeFile>();
  private viewMap = new Map<string, FakeView>();
  private readonly faults = new FaultPlan<string, Fault>();
  private readonly responseContexts = new Map<string, ResponseUrlContext>();
  private readonly usergroups = new Map<string, string[]>();
  private readonly users = new Map<string, Record<string, unknown>>();
  private readonly channels = new Map<string, Record<string, unknown>>();
  // Socket Mode: one-time tickets from apps.connections.open, the open connections (hello sent),
  // acks awaited by envelope id, and senders waiting for a connection to open.
  private wss: WebSocketServer | undefined;
  private readonly tickets = new Set<string>();
  private sockets: WebSocket[] = [];
  private nextSocket = 0;
  private readonly pendingAcks = new Map<string, PendingAck>();
  private socketWaiters: Array<() => void> = [];

  constructor(options: FakeSlackOptions = {}) {
    super();
    this.opts = {
      port: options.port ?? 0,
      teamId: options.teamId ?? "T0CUTOVER",
      teamName: options.teamName ?? "Cutover Sandbox",
      botUserId: options.botUserId ?? "U0CUTOVER",
      botId: options.botId ?? "B0CUTOVER",
      firstTs: options.firstTs,
      ...(options.expectedToken === undefined ? {} : { expectedToken: options.expectedToken }),
      ...(options.expectedAppToken === undefined ? {} : { expectedAppToken: options.expectedAppToken }),
    };
  }

  /** Listen on 127.0.0.1 (the port given in the options, or a free one). */
  async start(): Promise<void> {
    await this.server.start(this.opts.port);
    // Socket Mode shares the port: apps.connections.open hands out ws://127.0.0.1:PORT/socket?ticket=…
    this.wss = new WebSocketServer({ noServer: true });
    this.server.http?.on("upgrade", (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** Close the server and every connection still open (clients keep them alive). */
  async stop(): Promise<void> {
    if (!this.server.http) return;
    // Upgraded sockets are no longer the HTTP server's to close: end them here, or close() waits.
    const stopped = new Error("FakeSlack stopped before the app acked");
    for (const pending of this.pendingAcks.values()) pending.reject(stopped);
    this.pendingAcks.clear();
    for (const ws of this.sockets) ws.terminate();
    this.sockets = [];
    this.tickets.clear();
    for (const wake of this.socketWaiters) wake();
    this.socketWaiters = [];
    this.wss?.close();
    this.wss = undefined;
    await this.server.stop();
  }

  /** `http://127.0.0.1:PORT/api/`: what WebClient and Bolt take as `slackApiUrl`. */
  get apiUrl(): string {
    return `${this.baseUrl}/api/`;
  }

  private get baseUrl(): string {
    return this.server.origin;
  }

  // ---- set-up --------------------------------------------------------------------------

  /** Members of a user group, answered by usergroups.users.list. */
  setUsergroup(id: string, userIds: readonly string[]): void {
    this.usergroups.set(id, [...userIds]);
  }

  /** Profile fields for users.info (defaults are made up from the id). */
  setUser(id: string, fields: { name?: string; real_name?: string; tz?: string; is_bot?: boolean }): void {
    this.users.set(id, { ...fields });
  }

  /** Fields for conversations.info (defaults are made up from the id). */
  setChannel(id: string, fields: { name?: string; is_private?: boolean; is_member?: boolean }): void {
    this.channels.set(id, { ...fields });
  }

  /**
   * Make the next call of `method` fail. With the default status 200 the reply is
   * `{ok:false, error}`; status 429 adds `Retry-After`; other statuses answer with that status.
   * Faults queue up: call it twice to fail the next two calls.
   */
  failNext(method: string, error = "internal_error", options: FailOptions = {}): void {
    this.faults.add((m) => m === method, {
      error,
      status: options.status ?? 200,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
    });
  }

  /**
   * A response_url on this server. Posts to it are recorded as `response_url` calls; the
   * optional context says where Slack would have put them (channel, person, message).
   */
  responseUrl(id?: string, context: ResponseUrlContext = {}): string {
    const key = id ?? `R${this.nextId()}`;
    this.responseContexts.set(key, { ...context });
    return `${this.baseUrl}/response/${encodeURIComponent(key)}`;
  }

  // ---- Socket Mode -----------------------------------------------------------------------

  /** How many Socket Mode connections are open (greeted with `hello`). */
  get socketConnections(): number {
    return this.sockets.length;
  }

  /** Resolves once a Socket Mode connection is open; rejects after `timeoutMs` (default 5000). */
  async waitForSocket(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.openSocket(options.timeoutMs ?? 5_000);
  }

  /**
   * Push a slash command over Socket Mode, as Slack does when someone types it while the app is
   * connected. Resolves with the app's ack (a reply in `payload` when the app answered inside its
   * ack), the response_url the command carried, and the ack latency.
   *
   * @example
   * const ack = await fake.sendSocketSlashCommand({ command: "/migrate", text: "help", user_id: "U1", channel_id: "C1" });
   * ack.payload?.text; // the reply the app put in its ack
   */
  async sendSocketSlashCommand(
    command: SocketSlashCommand,
    options: SocketSendOptions = {},
  ): Promise<SocketSlashCommandAck> {
    const fields = Object.fromEntries(
      new URLSearchParams(
        slashCommandBody({
          command: command.command,
          teamId: command.team_id ?? this.opts.teamId,
          ...(command.text === undefined ? {} : { text: command.text }),
          ...(command.user_id === undefined ? {} : { userId: command.user_id }),
          ...(command.user_name === undefined ? {} : { userName: command.user_name }),
          ...(command.channel_id === undefined ? {} : { channelId: command.channel_id }),
          ...(command.channel_name === undefined ? {} : { channelName: command.channel_name }),
          ...(command.team_domain === undefined ? {} : { teamDomain: command.team_domain }),
          ...(command.api_app_id === undefined ? {} : { apiAppId: command.api_app_id }),
          ...(command.trigger_id === undefined ? {} : { triggerId: command.trigger_id }),
        }),
      ),
    );
    fields.response_url =
      command.response_url ??
      this.responseUrl(undefined, { channel: fields.channel_id, user: fields.user_id });
    const ack = await this.sendSocketEnvelope("slash_commands", fields, options);
    return { ...ack, response_url: String(fields.response_url), trigger_id: String(fields.trigger_id) };
  }

  /**
   * Push an interactivity payload (a `block_actions` click, a `view_submission`, …: see
   * `blockActionPayload` and `viewSubmissionPayload` in slack-sender.ts) over Socket Mode.
   */
  sendSocketInteractive(
    payload: Record<string, unknown>,
    options: SocketSendOptions = {},
  ): Promise<SocketAck> {
    return this.sendSocketEnvelope("interactive", payload, options);
  }

  /**
   * Push one envelope `{ envelope_id, type, payload, accepts_response_payload }` on an open
   * connection (round robin, as Slack spreads them) and wait for the app's ack. Waits up to
   * `timeoutMs` for a connection when none is open. Recorded as a `socket_mode` call.
   */
  async sendSocketEnvelope(
    type: SocketEnvelopeType,
    payload: Record<string, unknown>,
    options: SocketSendOptions = {},
  ): Promise<SocketAck> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const deadline = performance.now() + timeoutMs;
    const ws = await this.openSocket(timeoutMs);
    const envelopeId = randomUUID();
    const envelope: Record<string, unknown> = {
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: type !== "events_api",
      ...(type === "events_api"
        ? { retry_attempt: options.retryAttempt ?? 0, retry_reason: options.retryReason ?? "" }
        : {}),
    };
    const call: RecordedCall = {
      method: "socket_mode",
      args: { type, envelope_id: envelopeId, payload: structuredClone(payload) },
      at: Date.now(),
      token: undefined,
      status: 200,
    };
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const ack = await new Promise<{ payload?: Record<string, unknown>; at: number }>((resolve, reject) => {
        this.pendingAcks.set(envelopeId, { resolve, reject });
        timer = setTimeout(
          () =>
            reject(new Error(`FakeSlack: no ack for ${type} envelope ${envelopeId} within ${timeoutMs} ms`)),
          Math.max(0, deadline - started),
        );
        ws.send(JSON.stringify(envelope), (err) => {
          if (err) reject(new Error(`FakeSlack: could not push the envelope: ${err.message}`));
        });
      });
      const ms = ack.at - started;
      call.args.ack = ack.payload;
      call.args.ms = ms;
      // a reply in the ack is held to the same limits as any message or modal; Slack shows the
      // person an error instead of it
      const refusal = ackRefusal(ack.payload);
      if (refusal) {
        call.error = refusal.error;
        call.detail = refusal.message;
      }
      this.record(call);
      return { envelope_id: envelopeId, ...(ack.payload === undefined ? {} : { payload: ack.payload }), ms };
    } catch (err) {
      call.status = 504;
      call.error = "no_ack";
      this.record(call);
      throw err;
    } finally {
      clearTimeout(timer);
      this.pendingAcks.delete(envelopeId);
    }
  }

  /**
   * Ask every connected app to reconnect, as Slack does before recycling a server:
   * `{ type: "disconnect", reason }`. The app closes the connection and opens a new one.
   */
  sendSocketDisconnect(reason = "refresh_requested"): void {
    const message = JSON.stringify({ type: "disconnect", reason, debug_info: { host: "fake-slack" } });
    for (const ws of this.sockets) ws.send(message);
  }

  // ---- what happened ---------------------------------------------------------------------

  /**
   * Calls refused for their payload (a Block Kit limit broken, text too long or missing: see
   * slack-limits.ts), oldest first, each with Slack's error and its `detail`. A person saw
   * nothing of these: a test or a rehearsal that ends with any has failed.
   */
  refusals(): RecordedCall[] {
    return this.callRecord.list((c) => c.detail !== undefined || c.error === "no_text");
  }

  /** Every call so far, oldest first; only those of one method when given. */
  calls(method?: string): RecordedCall[] {
    return this.callRecord.list(method === undefined ? undefined : (c) => c.method === method);
  }

  /**
   * The first call, past or future, that matches (a method name or a predicate). Rejects after
   * `timeoutMs` (default 2000) with the calls seen so far, so a failing test says what happened.
   */
  waitFor(
    match: string | ((call: RecordedCall) => boolean),
    options: { timeoutMs?: number } = {},
  ): Promise<RecordedCall> {
    const predicate = typeof match === "string" ? (c: RecordedCall) => c.method === match : match;
    const what = typeof match === "string" ? `a ${match} call` : "a matching call";
    return this.callRecord.waitFor(predicate, what, options.timeoutMs ?? 2000);
  }

  /** The channel as it now reads: top-level messages in order, edits applied, replies nested. */
  messages(channel: string): FakeMessage[] {
    const live = this.stored.filter((m) => m.channel === channel && !m.deleted);
    const toView = (m: StoredMessage, replies: FakeMessage[]): FakeMessage => ({
      channel: m.channel,
      ts: m.ts,
      ...(m.thread_ts === undefined ? {} : { thread_ts: m.thread_ts }),
      user: this.opts.botUserId,
      bot_id: this.opts.botId,
      text: m.text,
      ...(m.blocks === undefined ? {} : { blocks: structuredClone(m.blocks) }),
      ...(m.attachments === undefined ? {} : { attachments: structuredClone(m.attachments) }),
      ...(m.files === undefined ? {} : { files: structuredClone(m.files) }),
      edits: m.edits,
      replies,
    });
    return live
      .filter((m) => m.thread_ts === undefined)
      .map((top) =>
        toView(
          top,
          live.filter((r) => r.thread_ts === top.ts).map((r) => toView(r, [])),
        ),
      );
  }

  /** Ephemeral messages (chat.postEphemeral and ephemeral response_url replies), for one person when given. */
  ephemerals(user?: string): FakeEphemeral[] {
    const list = user === undefined ? this.ephemeralList : this.ephemeralList.filter((e) => e.user === user);
    return structuredClone(list);
  }

  /** Files announced to files.getUploadURLExternal, with the bytes uploaded for them. */
  files(): FakeFile[] {
    return [...this.fileMap.values()].map((f) => ({ ...f, bytes: Buffer.from(f.bytes) }));
  }

  /** Modals opened, in the order they were first opened or pushed. */
  views(): FakeView[] {
    return structuredClone([...this.viewMap.values()]);
  }
  /**
   * The newest view open with this callback id (and private_metadata, when given): its id and
   * hash are what Slack sends back when the person submits it.
   */
  latestView(callbackId: string, privateMetadata?: string): FakeView | undefined {
    return [...this.viewMap.values()]
      .reverse()
      .find(
        (v) =>
          v.view.callback_id === callbackId &&
          (privateMetadata === undefined || (v.view.private_metadata ?? "") === privateMetadata),
      );
  }

  /**
   * Forget every call, message, file, modal and pending fault; keep users, groups and channels.
   * `ts` and ids keep counting up, so nothing handed out before a reset is handed out again.
   */
  reset(): void {
    this.callRecord.clear();
    this.stored = [];
    this.ephemeralList = [];
    this.fileMap = new Map();
    this.viewMap = new Map();
    this.faults.clear();
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const raw = await readBody(req);
    const [, area, rest] = /^\/([^/]+)\/(.+)$/.exec(url.pathname) ?? [];
    const name = rest === undefined ? "" : decodeURIComponent(rest);
    let reply: Reply;
    if (area === "api") {
      reply = await this.handleApi(name, req, url, raw);
    } else if (area === "response" && req.method === "POST") {
      reply = this.handleResponseUrl(name, req, raw);
    } else if (area === "upload" && req.method === "POST") {
      reply = await this.handleUpload(name, req, raw);
    } else {
      reply = { status: 404, body: { ok: false, error: "not_found" } };
    }
    const text = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body);
    const contentType =
      typeof reply.body === "string" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8";
    res.writeHead(reply.status, { "content-type": contentType, ...reply.headers });
    res.end(text);
  }

  private async handleApi(method: string, req: IncomingMessage, url: URL, raw: Buffer): Promise<Reply> {
    let args: Record<string, unknown>;
    let token: string | undefined;
    let parseError: string | undefined;
    try {
      args = { ...Object.fromEntries(url.searchParams), ...(await parseBody(req, raw)) };
    } catch {
      args = {};
      parseError = "invalid_form_data";
    }
    const auth = req.headers.authorization;
    if (auth?.startsWith("Bearer ")) token = auth.slice("Bearer ".length).trim();
    if (typeof args.token === "string") token ??= args.token;
    delete args.token;
    for (const field of JSON_FIELDS) {
      const value = args[field];
      if (typeof value !== "string" || parseError) continue;
      try {
        args[field] = JSON.parse(value);
      } catch {
        parseError = field === "blocks" ? "invalid_blocks_format" : "invalid_arguments";
      }
    }

    const call: RecordedCall = { method, args, at: Date.now(), token, status: 200 };
    const finish = (reply: Reply): Reply => {
      call.status = reply.status;
      const body = reply.body as {
        ok?: boolean;
        error?: string;
        response_metadata?: { messages?: string[] };
      };
      if (body && typeof body === "object" && body.ok === false) {
        call.error = body.error;
        const detail = body.response_metadata?.messages?.join(" ");
        if (detail) call.detail = detail;
      }
      this.record(call);
      return reply;
    };

    const fault = this.takeFault(method);
    if (fault) return finish(faultReply(fault));
    if (parseError) return finish(fail(parseError));
    // Socket Mode's one method is called with the app-level token, not the bot's.
    if (method === "apps.connections.open") return finish(this.openConnection(token));
    if (this.opts.expectedToken !== undefined && token !== this.opts.expectedToken) {
      return finish(fail(token === undefined ? "not_authed" : "invalid_auth"));
    }
    try {
      return finish({ status: 200, body: { ok: true, ...this.dispatch(method, args) } });
    } catch (err) {
      if (err instanceof SlackError) return finish(fail(err.code, err.messages));
      throw err;
    }
  }

  private dispatch(method: string, a: Record<string, unknown>): Record<string, unknown> {
    switch (method) {
      case "api.test":
        return { args: a };
      case "auth.test":
        return {
          url: "https://cutover-sandbox.slack.com/",
          team: this.opts.teamName,
          user: "cutover",
          team_id: this.opts.teamId,
          user_id: this.opts.botUserId,
          bot_id: this.opts.botId,
          is_enterprise_install: false,
        };
      case "chat.postMessage":
        return this.postMessage(a);
      case "chat.update":
        return this.updateMessage(a);
      case "chat.delete":
        return this.deleteMessage(a);
      case "chat.postEphemeral":
        return this.postEphemeral(a);
      case "views.open":
      case "views.push":
        return this.openView(method, a);
      case "views.update":
        return this.updateView(a);
      case "usergroups.users.list": {
        const users = this.usergroups.get(str(a.usergroup));
        if (!users) throw new SlackError("no_such_subteam");
        return { users: [...users] };
      }
      case "users.info":
        return this.userInfo(a);
      case "conversations.info":
        return this.conversationInfo(a);
      case "conversations.history":
        return this.history(a);
      case "files.getUploadURLExternal":
        return this.getUploadUrl(a);
      case "files.completeUploadExternal":
        return this.completeUpload(a);
      default:
        throw new SlackError("unknown_method");
    }
  }

  // ---- chat ------------------------------------------------------------------------------

  private postMessage(a: Record<string, unknown>): Record<string, unknown> {
    const channel = str(a.channel);
    if (!channel) throw new SlackError("channel_not_found");
    const content = messageContent(a);
    if (content.text === undefined && !content.blocks?.length && !content.attachments?.length) {
      throw new SlackError("no_text");
    }
    refuse(checkMessage(a));
    const threadTs = optStr(a.thread_ts);
    if (threadTs !== undefined && !this.find(channel, threadTs)) throw new SlackError("thread_not_found");
    const msg = this.store({ channel, thread_ts: threadTs, ...content, text: content.text ?? "" });
    if (a.metadata && typeof a.metadata === "object") msg.metadata = a.metadata;
    return { channel, ts: msg.ts, message: this.wire(msg) };
  }

  /** conversations.history: top-level messages, newest first; `metadata` with include_all_metadata. */
  private history(a: Record<string, unknown>): Record<string, unknown> {
    const channel = str(a.channel);
    if (!channel) throw new SlackError("channel_not_found");
    const oldest = Number(str(a.oldest) || "0");
    const limit = Math.min(Number(str(a.limit) || "100") || 100, 1000);
    const withMetadata = a.include_all_metadata === true || a.include_all_metadata === "true";
    const messages = this.stored
      .filter((m) => m.channel === channel && !m.thread_ts && !m.deleted && Number(m.ts) >= oldest)
      .sort((x, y) => Number(y.ts) - Number(x.ts))
      .slice(0, limit)
      .map((m) => ({ ...this.wire(m), ...(withMetadata && m.metadata ? { metadata: m.metadata } : {}) }));
    return { messages, has_more: false };
  }

  private updateMessage(a: Record<string, unknown>): Record<string, unknown> {
    const channel = str(a.channel);
    const msg = this.find(channel, str(a.ts));
    if (!msg) throw new SlackError("message_not_found");
    refuse(checkMessage(a));
    this.edit(msg, messageContent(a));
    return { channel, ts: msg.ts, text: msg.text, message: this.wire(msg) };
  }

  private deleteMessage(a: Record<string, unknown>): Record<string, unknown> {
    const channel = str(a.channel);
    const msg = this.find(channel, str(a.ts));
    if (!msg) throw new SlackError("message_not_found");
    msg.deleted = true;
    return { channel, ts: msg.ts };
  }

  private postEphemeral(a: Record<string, unknown>): Record<string, unknown> {
    const channel = str(a.channel);
    const user = str(a.user);
    if (!channel) throw new SlackError("channel_not_found");
    if (!user) throw new SlackError("user_not_in_channel");
    const content = messageContent(a);
    if (content.text === undefined && !content.blocks?.length && !content.attachments?.length) {
      throw new SlackError("no_text");
    }
    refuse(checkMessage(a));
    const ts = this.nextTs();
    const threadTs = optStr(a.thread_ts);
    this.ephemeralList.push({
      channel,
      user,
      ts,
      ...(threadTs === undefined ? {} : { thread_ts: threadTs }),
      text: content.text ?? "",
      ...(content.blocks === undefined ? {} : { blocks: content.blocks }),
      source: "chat.postEphemeral",
    });
    return { message_ts: ts };
  }

  private store(fields: Omit<StoredMessage, "ts" | "edits" | "deleted">): StoredMessage {
    const msg: StoredMessage = { ...dropUndefined(fields), ts: this.nextTs(), edits: 0, deleted: false };
    this.stored.push(msg);
    return msg;
  }

  private edit(msg: StoredMessage, content: ReturnType<typeof messageContent>): void {
    // Slack keeps blocks and attachments that an update leaves out; an empty array removes them.
    if (content.text !== undefined) msg.text = content.text;
    if (content.blocks !== undefined) msg.blocks = content.blocks.length ? content.blocks : undefined;
    if (content.attachments !== undefined) {
      msg.attachments = content.attachments.length ? content.attachments : undefined;
    }
    msg.edits += 1;
  }

  private find(channel: string, ts: string): StoredMessage | undefined {
    return this.stored.find((m) => m.channel === channel && m.ts === ts && !m.deleted);
  }

  /** a message as the Web API returns it */
  private wire(m: StoredMessage): Record<string, unknown> {
    return dropUndefined({
      type: "message",
      user: this.opts.botUserId,
      bot_id: this.opts.botId,
      ts: m.ts,
      thread_ts: m.thread_ts,
      text: m.text,
      blocks: m.blocks,
      attachments: m.attachments,
      files: m.files,
      team: this.opts.teamId,
    });
  }

  // ---- views -----------------------------------------------------------------------------

  private openView(method: "views.open" | "views.push", a: Record<string, unknown>): Record<string, unknown> {
    const triggerId = str(a.trigger_id);
    if (!triggerId) throw new SlackError("invalid_trigger_id");
    const view = asObject(a.view);
    if (!view) throw new SlackError("invalid_arguments");
    refuse(checkView(view));
    const id = `V${this.nextId()}`;
    const stored: FakeView = {
      id,
      view,
      via: method,
      trigger_id: triggerId,
      updates: 0,
      hash: this.viewHash(id),
    };
    this.viewMap.set(id, stored);
    return { view: this.wireView(stored) };
  }

  private updateView(a: Record<string, unknown>): Record<string, unknown> {
    const view = asObject(a.view);
    if (!view) throw new SlackError("invalid_arguments");
    refuse(checkView(view));
    const externalId = optStr(a.external_id);
    const stored =
      this.viewMap.get(str(a.view_id)) ??
      [...this.viewMap.values()].find((v) => externalId !== undefined && v.view.external_id === externalId);
    if (!stored) throw new SlackError("not_found");
    stored.view = view;
    stored.via = "views.update";
    stored.updates += 1;
    stored.hash = this.viewHash(stored.id);
    return { view: this.wireView(stored) };
  }

  /** a new hash for each version of a view, as Slack's changes with every update */
  private viewHash(id: string): string {
    return `${Math.floor(Date.now() / 1000)}.${id}${this.nextId()}`;
  }

  private wireView({ id, view, hash }: FakeView): Record<string, unknown> {
    return {
      id,
      team_id: this.opts.teamId,
      type: "modal",
      private_metadata: "",
      callback_id: "",
      external_id: "",
      ...view,
      state: { values: {} },
      hash,
      root_view_id: id,
      app_id: "A0CUTOVER",
      bot_id: this.opts.botId,
    };
  }

  // ---- people and channels ---------------------------------------------------------------

  private userInfo(a: Record<string, unknown>): Record<string, unknown> {
    const id = str(a.user);
    if (!id) throw new SlackError("user_not_found");
    const known = this.users.get(id) ?? {};
    const name = typeof known.name === "string" ? known.name : id.toLowerCase();
    const realName = typeof known.real_name === "string" ? known.real_name : name;
    return {
      user: {
        id,
        team_id: this.opts.teamId,
        name,
        real_name: realName,
        tz: known.tz ?? "UTC",
        is_bot: known.is_bot ?? false,
        deleted: false,
        profile: { display_name: name, real_name: realName },
      },
    };
  }

  private conversationInfo(a: Record<string, unknown>): Record<string, unknown> {
    const id = str(a.channel);
    if (!id) throw new SlackError("channel_not_found");
    const known = this.channels.get(id) ?? {};
    return {
      channel: {
        id,
        name: known.name ?? id.toLowerCase(),
        is_channel: true,
        is_private: known.is_private ?? false,
        is_member: known.is_member ?? true,
        is_archived: false,
      },
    };
  }

  // ---- files -----------------------------------------------------------------------------

  private getUploadUrl(a: Record<string, unknown>): Record<string, unknown> {
    const filename = str(a.filename);
    const length = Number(a.length);
    if (!filename || !Number.isInteger(length) || length < 0) throw new SlackError("invalid_arguments");
    const id = `F${this.nextId()}`;
    this.fileMap.set(id, {
      id,
      name: filename,
      title: filename,
      length,
      bytes: Buffer.alloc(0),
      uploaded: false,
    });
    return { upload_url: `${this.baseUrl}/upload/${id}`, file_id: id };
  }

  private async handleUpload(fileId: string, req: IncomingMessage, raw: Buffer): Promise<Reply> {
    const call: RecordedCall = {
      method: "file_upload",
      args: { file_id: fileId },
      at: Date.now(),
      token: undefined,
      status: 200,
    };
    const auth = req.headers.authorization;
    if (auth?.startsWith("Bearer ")) call.token = auth.slice("Bearer ".length).trim();
    const done = (reply: Reply): Reply => {
      call.status = reply.status;
      if (reply.status !== 200) call.error = String(reply.body);
      this.record(call);
      return reply;
    };
    const fault = this.takeFault("file_upload");
    if (fault) return done({ status: fault.status === 200 ? 500 : fault.status, body: fault.error });
    const file = this.fileMap.get(fileId);
    if (!file) return done({ status: 404, body: "file_not_found" });
    const bytes = await uploadedBytes(req, raw);
    file.bytes = bytes;
    file.uploaded = true;
    call.args.length = bytes.length;
    return done({ status: 200, body: `OK - ${bytes.length}` });
  }

  private completeUpload(a: Record<string, unknown>): Record<string, unknown> {
    const list = Array.isArray(a.files) ? (a.files as unknown[]) : undefined;
    if (!list?.length) throw new SlackError("invalid_arguments");
    const files: FakeFile[] = [];
    for (const entry of list) {
      const e = asObject(entry);
      const file = e ? this.fileMap.get(str(e.id)) : undefined;
      if (!file?.uploaded) throw new SlackError("file_not_found");
      if (e && typeof e.title === "string" && e.title) file.title = e.title;
      files.push(file);
    }
    if (a.blocks !== undefined && a.initial_comment === undefined)
      refuse(checkMessage({ blocks: a.blocks }, { needText: false }));
    const channel = optStr(a.channel_id) ?? optStr(a.channels)?.split(",")[0];
    if (channel) {
      const threadTs = optStr(a.thread_ts);
      if (threadTs !== undefined && !this.find(channel, threadTs)) throw new SlackError("thread_not_found");
      const msg = this.store({
        channel,
        thread_ts: threadTs,
        text: optStr(a.initial_comment) ?? "",
        blocks: Array.isArray(a.blocks) ? a.blocks : undefined,
        files: files.map((f) => ({ id: f.id, name: f.name, title: f.title, size: f.bytes.length })),
      });
      for (const f of files) {
        f.channel = channel;
        f.ts = msg.ts;
      }
    }
    return { files: files.map((f) => ({ id: f.id, name: f.name, title: f.title, size: f.bytes.length })) };
  }

  // ---- response_url ----------------------------------------------------------------------

  private handleResponseUrl(id: string, req: IncomingMessage, raw: Buffer): Reply {
    let args: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw.toString("utf8") || "{}");
      args = asObject(parsed) ?? {};
    } catch {
      args = { raw: raw.toString("utf8") };
    }
    const call: RecordedCall = {
      method: "response_url",
      args: { ...args, response_url_id: id },
      at: Date.now(),
      token: undefined,
      status: 200,
    };
    const done = (reply: Reply): Reply => {
      call.status = reply.status;
      if (reply.status !== 200) call.error = JSON.stringify(reply.body);
      this.record(call);
      return reply;
    };
    const fault = this.takeFault("response_url");
    if (fault) return done(faultReply(fault));
    if (!(req.headers["content-type"] ?? "").includes("application/json") || "raw" in args) {
      return done({ status: 400, body: { ok: false, error: "invalid_payload" } });
    }
    // a response_url refuses what chat.postMessage refuses, with the same answer
    const refusal = args.delete_original ? undefined : checkMessage(args);
    if (refusal) {
      call.error = refusal.error;
      call.detail = refusal.message;
      return done({
        status: 200,
        body: { ok: false, error: refusal.error, response_metadata: { messages: [refusal.message] } },
      });
    }
    this.applyResponse(this.responseContexts.get(id) ?? {}, args);
    return done({ status: 200, body: { ok: true } });
  }

  private applyResponse(ctx: ResponseUrlContext, a: Record<string, unknown>): void {
    const content = messageContent(a);
    const original = ctx.channel && ctx.messageTs ? this.find(ctx.channel, ctx.messageTs) : undefined;
    if (truthy(a.delete_original)) {
      if (original) original.deleted = true;
      return;
    }
    if (truthy(a.replace_original) && original) {
      this.edit(original, content);
      return;
    }
    if (a.response_type === "in_channel" && ctx.channel) {
      const threadTs = optStr(a.thread_ts);
      this.store({ channel: ctx.channel, thread_ts: threadTs, ...content, text: content.text ?? "" });
      return;
    }
    this.ephemeralList.push({
      channel: ctx.channel,
      user: ctx.user,
      ts: this.nextTs(),
      text: content.text ?? "",
      ...(content.blocks === undefined ? {} : { blocks: content.blocks }),
      source: "response_url",
    });
  }

  // ---- Socket Mode (server side) -------------------------------------------------------------

  private openConnection(token: string | undefined): Reply {
    if (token === undefined) return fail("not_authed");
    // Slack answers a bot or user token here with not_allowed_token_type.
    if (!token.startsWith("xapp-")) return fail("not_allowed_token_type");
    if (this.opts.expectedAppToken !== undefined && token !== this.opts.expectedAppToken) {
      return fail("invalid_auth");
    }
    const ticket = randomBytes(12).toString("hex");
    this.tickets.add(ticket);
    return {
      status: 200,
      body: {
        ok: true,
        url: `${this.baseUrl.replace(/^http/, "ws")}/socket?ticket=${ticket}&app_id=A0CUTOVER`,
      },
    };
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const ticket = url.searchParams.get("ticket") ?? "";
    // A ticket is good for one connection, as Slack's are.
    if (url.pathname !== "/socket" || !this.wss || !this.tickets.delete(ticket)) {
      socket.end("HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    if (!this.server.http) {
      ws.terminate();
      return;
    }
    this.sockets.push(ws);
    ws.on("message", (data, isBinary) => this.onSocketMessage(data, isBinary));
    ws.on("close", () => {
      this.sockets = this.sockets.filter((s) => s !== ws);
    });
    ws.on("error", () => ws.terminate());
    ws.send(
      JSON.stringify({
        type: "hello",
        num_connections: this.sockets.length,
        debug_info: { host: "fake-slack", build_number: 1, approximate_connection_time: 18060 },
        connection_info: { app_id: "A0CUTOVER" },
      }),
    );
    const waiters = this.socketWaiters;
    this.socketWaiters = [];
    for (const wake of waiters) wake();
  }

  private onSocketMessage(data: RawData, isBinary: boolean): void {
    const at = performance.now();
    if (isBinary) return;
    let message: Record<string, unknown> | undefined;
    try {
      message = asObject(JSON.parse(rawText(data)));
    } catch {
      message = undefined;
    }
    const pending = message ? this.pendingAcks.get(str(message.envelope_id)) : undefined;
    if (!message || !pending) {
      this.record({
        method: "socket_message",
        args: message ?? { raw: rawText(data) },
        at: Date.now(),
        token: undefined,
        status: 400,
        error: message ? "unknown_envelope" : "invalid_json",
      });
      return;
    }
    this.pendingAcks.delete(str(message.envelope_id));
    const payload = asObject(message.payload);
    pending.resolve({ ...(payload === undefined ? {} : { payload }), at });
  }

  /** The next open connection, round robin; waits for one until `timeoutMs`. */
  private async openSocket(timeoutMs: number): Promise<WebSocket> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const open = this.sockets.filter((s) => s.readyState === s.OPEN);
      if (open.length > 0) {
        this.nextSocket = (this.nextSocket + 1) % open.length;
        return open[this.nextSocket]!;
      }
      const left = deadline - Date.now();
      if (!this.server.http || left <= 0) {
        throw new Error(
          `FakeSlack: no Socket Mode connection is open${this.server.http ? ` after ${timeoutMs} ms` : " (stopped)"}: has the app called apps.connections.open and connected?`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const socketWaiters = this.socketWaiters;
        function done() {
          clearTimeout(timer);
          const i = socketWaiters.indexOf(done);
          if (i >= 0) socketWaiters.splice(i, 1);
          resolve();
        }
        socketWaiters.push(done);
      });
    }
  }

  // ---- helpers ---------------------------------------------------------------------------

  private record(call: RecordedCall): void {
    this.callRecord.push(call);
    this.emit("call", cloneCall(call));
  }

  private takeFault(method: string): Fault | undefined {
    return this.faults.take(method);
  }

  private nextTs(): string {
    this.seq += 1;
    if (this.opts.firstTs !== undefined) {
      const micros = this.seq * 100;
      const seconds = this.opts.firstTs + Math.floor(micros / 1_000_000);
      return `${seconds}.${String(micros % 1_000_000).padStart(6, "0")}`;
    }
    // wall-clock microseconds, strictly increasing
    this.lastMicros = Math.max(this.lastMicros + 100, Date.now() * 1000);
    const seconds = Math.floor(this.lastMicros / 1_000_000);
    return `${seconds}.${String(this.lastMicros % 1_000_000).padStart(6, "0")}`;
  }

  private nextId(): string {
    this.idSeq += 1;
    return String(this.idSeq).padStart(8, "0");
  }
}

/** What Slack would refuse in a Socket Mode ack's payload: a message reply, or a modal to show. */
function ackRefusal(payload: Record<string, unknown> | undefined): SlackRefusal | undefined {
  if (!payload) return undefined;
  const view = asObject(payload.view);
  if (view) return checkView(view);
  if (payload.text !== undefined || payload.blocks !== undefined) return checkMessage(payload);
  return undefined;
}

function describeCalls(calls: readonly RecordedCall[]): string {
  if (calls.length === 0) return "No calls were made.";
  const lines = calls.map((c, i) => {
    const args = JSON.stringify(c.args);
    const short = args.length > 160 ? `${args.slice(0, 157)}...` : args;
    return `  ${i + 1}. ${c.method}${c.error ? ` -> ${c.error}` : ""} ${short}`;
  });
  return `Calls seen (${calls.length}):\n${lines.join("\n")}`;
}

function cloneCall(call: RecordedCall): RecordedCall {
  return structuredClone(call);
}

function fail(error: string, messages: string[] = []): Reply {
  return {
    status: 200,
    body: { ok: false, error, ...(messages.length ? { response_metadata: { messages } } : {}) },
  };
}

function faultReply(fault: Fault): Reply {
  if (fault.status === 429) {
    return {
      status: 429,
      body: { ok: false, error: fault.error === "internal_error" ? "ratelimited" : fault.error },
      headers: { "retry-after": String(fault.retryAfterSeconds) },
    };
  }
  return { status: fault.status, body: { ok: false, error: fault.error } };
}

function messageContent(a: Record<string, unknown>): {
  text: string | undefined;
  blocks: unknown[] | undefined;
  attachments: unknown[] | undefined;
} {
  return {
    text: typeof a.text === "string" ? a.text : undefined,
    blocks: Array.isArray(a.blocks) ? a.blocks : undefined,
    attachments: Array.isArray(a.attachments) ? a.attachments : undefined,
  };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data as ArrayBuffer).toString("utf8");
}

function str(v: unknown): string {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : "";
}

function optStr(v: unknown): string | undefined {
  const s = str(v);
  return s === "" ? undefined : s;
}

function truthy(v: unknown): boolean {
  return v === true || v === "true";
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function parseBody(req: IncomingMessage, raw: Buffer): Promise<Record<string, unknown>> {
  const type = (req.headers["content-type"] ?? "").toLowerCase();
  if (raw.length === 0) return {};
  if (type.startsWith("application/json")) {
    const parsed: unknown = JSON.parse(raw.toString("utf8"));
    return asObject(parsed) ?? {};
  }
  if (type.startsWith("multipart/form-data")) {
    // the boundary is case-sensitive: hand over the header as sent
    const form = await new Response(new Uint8Array(raw), {
      headers: { "content-type": req.headers["content-type"] ?? type },
    }).formData();
    const out: Record<string, unknown> = {};
    for (const [key, value] of form) {
      out[key] = typeof value === "string" ? value : Buffer.from(await value.arrayBuffer());
    }
    return out;
  }
  return Object.fromEntries(new URLSearchParams(raw.toString("utf8")));
}

/** The bytes of an upload: the first file part of a multipart body, or the raw body. */
async function uploadedBytes(req: IncomingMessage, raw: Buffer): Promise<Buffer> {
  const type = (req.headers["content-type"] ?? "").toLowerCase();
  if (!type.startsWith("multipart/form-data")) return raw;
  const form = await new Response(new Uint8Array(raw), {
    headers: { "content-type": req.headers["content-type"] ?? type },
  }).formData();
  for (const [, value] of form) {
    if (typeof value !== "string") return Buffer.from(await value.arrayBuffer());
  }
  const first = [...form.values()][0];
  return Buffer.from(typeof first === "string" ? first : "");
}
