import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * One request the fake received. `method` is the Web API method (`chat.postMessage`), or
 * `response_url` for a POST to a {@link FakeSlack.responseUrl}, or `file_upload` for the bytes
 * sent to an upload URL. `args` are parsed (JSON-string fields such as `blocks` and `view`
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
  /** the HTTP status the fake answered with */
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
  teamId?: string;
  teamName?: string;
  botUserId?: string;
  botId?: string;
  /** seconds part of the first `ts` handed out; default 1700000000 */
  firstTs?: number;
}

export interface FailOptions {
  /** HTTP status; 200 (the default) answers `{ok:false, error}` like Slack does */
  status?: number;
  /** for 429: the Retry-After header, in seconds (default 1) */
  retryAfterSeconds?: number;
}

interface StoredMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks?: unknown[];
  attachments?: unknown[];
  files?: FakeFileRef[];
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
  constructor(readonly code: string) {
    super(code);
  }
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
  private readonly opts: Required<Omit<FakeSlackOptions, "expectedToken">> & { expectedToken?: string };
  private server: Server | undefined;
  private port = 0;
  private seq = 0;
  private idSeq = 0;
  private recorded: RecordedCall[] = [];
  private stored: StoredMessage[] = [];
  private ephemeralList: FakeEphemeral[] = [];
  private fileMap = new Map<string, FakeFile>();
  private viewMap = new Map<string, FakeView>();
  private faults = new Map<string, Fault[]>();
  private readonly responseContexts = new Map<string, ResponseUrlContext>();
  private readonly usergroups = new Map<string, string[]>();
  private readonly users = new Map<string, Record<string, unknown>>();
  private readonly channels = new Map<string, Record<string, unknown>>();

  constructor(options: FakeSlackOptions = {}) {
    super();
    this.opts = {
      port: options.port ?? 0,
      teamId: options.teamId ?? "T0CUTOVER",
      teamName: options.teamName ?? "Cutover Sandbox",
      botUserId: options.botUserId ?? "U0CUTOVER",
      botId: options.botId ?? "B0CUTOVER",
      firstTs: options.firstTs ?? 1_700_000_000,
      ...(options.expectedToken === undefined ? {} : { expectedToken: options.expectedToken }),
    };
  }

  /** Listen on 127.0.0.1 (the port given in the options, or a free one). */
  async start(): Promise<void> {
    if (this.server) throw new Error("FakeSlack is already started");
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`fake slack failed: ${err instanceof Error ? err.message : String(err)}`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Close the server and every connection still open (clients keep them alive). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  }

  /** `http://127.0.0.1:PORT/api/`: what WebClient and Bolt take as `slackApiUrl`. */
  get apiUrl(): string {
    return `${this.baseUrl}/api/`;
  }

  private get baseUrl(): string {
    if (!this.server) throw new Error("FakeSlack is not started: call start() first");
    return `http://127.0.0.1:${this.port}`;
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
    const queue = this.faults.get(method) ?? [];
    queue.push({
      error,
      status: options.status ?? 200,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
    });
    this.faults.set(method, queue);
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

  // ---- what happened ---------------------------------------------------------------------

  /** Every call so far, oldest first; only those of one method when given. */
  calls(method?: string): RecordedCall[] {
    const list = method === undefined ? this.recorded : this.recorded.filter((c) => c.method === method);
    return list.map(cloneCall);
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
    const timeoutMs = options.timeoutMs ?? 2000;
    const past = this.recorded.find(predicate);
    if (past) return Promise.resolve(cloneCall(past));
    return new Promise((resolve, reject) => {
      const onCall = (call: RecordedCall) => {
        if (!predicate(call)) return;
        clearTimeout(timer);
        this.off("call", onCall);
        resolve(cloneCall(call));
      };
      const timer = setTimeout(() => {
        this.off("call", onCall);
        const what = typeof match === "string" ? `a ${match} call` : "a matching call";
        reject(
          new Error(`FakeSlack: waited ${timeoutMs} ms for ${what}, none came. ${this.describeCalls()}`),
        );
      }, timeoutMs);
      this.on("call", onCall);
    });
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
   * Forget every call, message, file, modal and pending fault; keep users, groups and channels.
   * `ts` and ids keep counting up, so nothing handed out before a reset is handed out again.
   */
  reset(): void {
    this.recorded = [];
    this.stored = [];
    this.ephemeralList = [];
    this.fileMap = new Map();
    this.viewMap = new Map();
    this.faults = new Map();
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
      const body = reply.body as { ok?: boolean; error?: string };
      if (body && typeof body === "object" && body.ok === false) call.error = body.error;
      this.record(call);
      return reply;
    };

    const fault = this.takeFault(method);
    if (fault) return finish(faultReply(fault));
    if (parseError) return finish(fail(parseError));
    if (this.opts.expectedToken !== undefined && token !== this.opts.expectedToken) {
      return finish(fail(token === undefined ? "not_authed" : "invalid_auth"));
    }
    try {
      return finish({ status: 200, body: { ok: true, ...this.dispatch(method, args) } });
    } catch (err) {
      if (err instanceof SlackError) return finish(fail(err.code));
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
    const threadTs = optStr(a.thread_ts);
    if (threadTs !== undefined && !this.find(channel, threadTs)) throw new SlackError("thread_not_found");
    const msg = this.store({ channel, thread_ts: threadTs, ...content, text: content.text ?? "" });
    return { channel, ts: msg.ts, message: this.wire(msg) };
  }

  private updateMessage(a: Record<string, unknown>): Record<string, unknown> {
    const channel = str(a.channel);
    const msg = this.find(channel, str(a.ts));
    if (!msg) throw new SlackError("message_not_found");
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
    const id = `V${this.nextId()}`;
    this.viewMap.set(id, { id, view, via: method, trigger_id: triggerId, updates: 0 });
    return { view: this.wireView(id, view) };
  }

  private updateView(a: Record<string, unknown>): Record<string, unknown> {
    const view = asObject(a.view);
    if (!view) throw new SlackError("invalid_arguments");
    const externalId = optStr(a.external_id);
    const stored =
      this.viewMap.get(str(a.view_id)) ??
      [...this.viewMap.values()].find((v) => externalId !== undefined && v.view.external_id === externalId);
    if (!stored) throw new SlackError("not_found");
    stored.view = view;
    stored.via = "views.update";
    stored.updates += 1;
    return { view: this.wireView(stored.id, view) };
  }

  private wireView(id: string, view: Record<string, unknown>): Record<string, unknown> {
    return {
      id,
      team_id: this.opts.teamId,
      type: "modal",
      private_metadata: "",
      callback_id: "",
      external_id: "",
      ...view,
      state: { values: {} },
      hash: `${id}.${this.seq}`,
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

  // ---- helpers ---------------------------------------------------------------------------

  private record(call: RecordedCall): void {
    this.recorded.push(call);
    this.emit("call", cloneCall(call));
  }

  private takeFault(method: string): Fault | undefined {
    const queue = this.faults.get(method);
    const fault = queue?.shift();
    if (queue && queue.length === 0) this.faults.delete(method);
    return fault;
  }

  private nextTs(): string {
    this.seq += 1;
    const micros = this.seq * 100;
    const seconds = this.opts.firstTs + Math.floor(micros / 1_000_000);
    return `${seconds}.${String(micros % 1_000_000).padStart(6, "0")}`;
  }

  private nextId(): string {
    this.idSeq += 1;
    return String(this.idSeq).padStart(8, "0");
  }

  private describeCalls(): string {
    if (this.recorded.length === 0) return "No calls were made.";
    const lines = this.recorded.map((c, i) => {
      const args = JSON.stringify(c.args);
      const short = args.length > 160 ? `${args.slice(0, 157)}...` : args;
      return `  ${i + 1}. ${c.method}${c.error ? ` -> ${c.error}` : ""} ${short}`;
    });
    return `Calls seen (${this.recorded.length}):\n${lines.join("\n")}`;
  }
}

function cloneCall(call: RecordedCall): RecordedCall {
  return structuredClone(call);
}

function fail(error: string): Reply {
  return { status: 200, body: { ok: false, error } };
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
