import { setTimeout as sleep } from "node:timers/promises";
import type { RunningCutover } from "../app.js";
import type { FakeSlack } from "../sandbox/FakeSlack.js";
import {
  newTriggerId,
  type SendResult,
  sendBlockAction,
  sendSlashCommand,
  sendViewSubmission,
  type ViewStateValue,
} from "../sandbox/slack-sender.js";
import { renderBlocksAsText } from "../views/text.js";
import { CHANNEL } from "./config.js";
import type { ChannelPrinter } from "./terminal.js";

/** One simulated person of the team. */
export interface Person {
  id: string;
  name: string;
}

/** What a rehearsal records about one step of a run. */
export interface StepRecord {
  id: string;
  status: string;
  attempts: number;
  ms: number | null;
  summary?: string;
  figures?: Record<string, unknown>;
  verified?: boolean;
  verifySummary?: string;
  verifyFigures?: Record<string, unknown>;
  error?: string;
}

export interface RunRecord {
  runId: string;
  target: string;
  kind: string;
  dryRun: boolean;
  status: string;
  requestedBy: string;
  ms: number | null;
  error?: string;
  steps: StepRecord[];
  /** the bot's notes in the run's thread (retries, resumes) */
  thread: string[];
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/**
 * The two people of the rehearsal talking to the real bot through its real Slack endpoint:
 * every command, click and modal submission is a signed HTTP request, exactly as Slack sends it.
 */
export class Team {
  private n = 0;

  constructor(
    private readonly bot: RunningCutover,
    private readonly slack: FakeSlack,
    private readonly signingSecret: string,
    private readonly printer: ChannelPrinter,
  ) {}

  get eventsUrl(): string {
    return `http://127.0.0.1:${this.bot.port}/slack/events`;
  }

  /** Types a slash command in the channel; resolves with the reply the person saw. */
  async command(
    who: Person,
    text: string,
    command = "/migrate",
  ): Promise<{ res: SendResult; reply: string }> {
    const id = `cmd-${++this.n}`;
    const responseUrl = this.slack.responseUrl(id, { channel: CHANNEL, user: who.id });
    this.printer.person(who.name, `${command}${text ? ` ${text}` : ""}`);
    const res = await sendSlashCommand({
      url: this.eventsUrl,
      signingSecret: this.signingSecret,
      command,
      text,
      userId: who.id,
      userName: who.name,
      channelId: CHANNEL,
      channelName: "gogojap-migration",
      responseUrl,
      triggerId: newTriggerId(),
    });
    if (res.status !== 200)
      throw new Error(`${command} ${text}: the bot answered HTTP ${res.status}: ${res.body}`);
    return { res, reply: await this.replyOf(res, id) };
  }

  /** Clicks a button in a channel message. */
  async click(who: Person, actionId: string, value: string, label: string): Promise<SendResult> {
    const id = `act-${++this.n}`;
    this.printer.person(who.name, `clicks [ ${label} ]`);
    return sendBlockAction({
      url: this.eventsUrl,
      signingSecret: this.signingSecret,
      actionId,
      value,
      buttonText: label,
      userId: who.id,
      userName: who.name,
      channelId: CHANNEL,
      responseUrl: this.slack.responseUrl(id, { channel: CHANNEL, user: who.id }),
    });
  }

  /** Submits a modal with typed values. */
  async submit(
    who: Person,
    callbackId: string,
    privateMetadata: string,
    typed: Record<string, Record<string, string>>,
    shown: string,
  ): Promise<SendResult> {
    this.printer.person(who.name, shown);
    const values: Record<string, Record<string, ViewStateValue>> = {};
    for (const [block, actions] of Object.entries(typed)) {
      values[block] = {};
      for (const [action, value] of Object.entries(actions))
        values[block][action] = { type: "plain_text_input", value };
    }
    // the modal the bot opened (the click or command before this): Slack sends its id and hash back
    const view = this.slack.latestView(callbackId, privateMetadata || undefined);
    if (view) await this.recorded(view.id);
    return sendViewSubmission({
      url: this.eventsUrl,
      signingSecret: this.signingSecret,
      callbackId,
      privateMetadata,
      userId: who.id,
      userName: who.name,
      values,
      ...(view ? { viewId: view.id, viewHash: view.hash } : {}),
    });
  }

  /** Waits until the bot has stored the view it opened (a person reads it before submitting). */
  private async recorded(viewId: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!(await this.bot.deps.db.slackView.findUnique({ where: { viewId } }))) {
      if (Date.now() > deadline) throw new Error(`the bot never recorded the modal ${viewId} it opened`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The reply to a command: in the ack's body, or posted to its response URL. */
  private async replyOf(res: SendResult, id: string): Promise<string> {
    if (res.body.trim().startsWith("{")) {
      const parsed = JSON.parse(res.body) as { text?: string; blocks?: unknown[] };
      if (parsed.text || parsed.blocks) return renderBlocksAsText(parsed.blocks, parsed.text ?? "");
    }
    const call = await this.slack
      .waitFor(
        (c) => c.method === "response_url" && (c.args as { response_url_id?: string }).response_url_id === id,
        { timeoutMs: 15_000 },
      )
      .catch(() => undefined);
    const args = (call?.args ?? {}) as { text?: string; blocks?: unknown };
    const blocks = typeof args.blocks === "string" ? (JSON.parse(args.blocks) as unknown[]) : args.blocks;
    return renderBlocksAsText(Array.isArray(blocks) ? blocks : undefined, String(args.text ?? ""));
  }

  /**
   * Sends a command that starts a run of `target` and waits for that run to end.
   * Throws with the bot's reply when no run started.
   */
  async runAndWait(
    who: Person,
    text: string,
    target: string,
    opts: { timeoutMs?: number; onTimeout?: "cancel" | "throw" } = {},
  ): Promise<RunRecord> {
    const since = new Date(Date.now() - 5);
    const { reply } = await this.command(who, text);
    const run = await this.findRun(target, since, 10_000);
    if (!run) throw new Error(`\`${text}\` started no run: ${reply || "(no reply)"}`);
    return this.waitForRun(run.id, opts.timeoutMs ?? 180_000, who, opts.onTimeout ?? "throw");
  }

  /** The newest run of `target` created after `since`, waiting up to `timeoutMs` for it to appear. */
  async findRun(target: string, since: Date, timeoutMs: number): Promise<{ id: string } | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.bot.deps.db.run.findFirst({
        where: { target, createdAt: { gte: since } },
        orderBy: { createdAt: "desc" },
        select: { id: true },
      });
      if (run) return run;
      if (Date.now() > deadline) return undefined;
      await sleep(100);
    }
  }

  /** Waits for a run to end; past the timeout it is cancelled (by the person) or an error. */
  async waitForRun(
    runId: string,
    timeoutMs: number,
    who: Person,
    onTimeout: "cancel" | "throw",
  ): Promise<RunRecord> {
    const deadline = Date.now() + timeoutMs;
    let cancelled = false;
    for (;;) {
      const run = await this.bot.deps.db.run.findUniqueOrThrow({ where: { id: runId } });
      if (TERMINAL.has(run.status)) break;
      if (Date.now() > deadline && !cancelled) {
        if (onTimeout === "throw")
          throw new Error(
            `run ${run.target} did not finish within ${Math.round(timeoutMs / 1000)} s (status ${run.status})`,
          );
        await this.command(who, `cancel ${runId.slice(0, 8)}`);
        cancelled = true;
      }
      if (Date.now() > deadline + 60_000)
        throw new Error(`run ${run.target} did not stop after it was cancelled`);
      await sleep(150);
    }
    await this.settle(runId);
    return this.record(runId);
  }

  /** Gives the progress publisher a moment to post the run's final message. */
  private async settle(runId: string): Promise<void> {
    const run = await this.bot.deps.db.run.findUniqueOrThrow({ where: { id: runId } });
    const final = `: ${run.status}`;
    const target = run.target;
    await this.slack
      .waitFor(
        (c) =>
          (c.method === "chat.update" || c.method === "chat.postMessage") &&
          String((c.args as { text?: string }).text ?? "").includes(`${target}${final}`) &&
          c.at >= (run.finishedAt?.getTime() ?? 0) - 50,
        { timeoutMs: 4_000 },
      )
      .catch(() => undefined);
  }

  /** What the state store holds about a run. */
  async record(runId: string): Promise<RunRecord> {
    const run = await this.bot.deps.db.run.findUniqueOrThrow({
      where: { id: runId },
      include: { steps: { orderBy: { position: "asc" } } },
    });
    const ms = (a: Date | null, b: Date | null) => (a && b ? b.getTime() - a.getTime() : null);
    const thread = run.messageTs
      ? (this.slack.messages(CHANNEL).find((m) => m.ts === run.messageTs)?.replies ?? []).map((r) => r.text)
      : [];
    return {
      runId: run.id,
      target: run.target,
      kind: run.kind,
      dryRun: run.dryRun,
      status: run.status,
      requestedBy: run.requestedBy,
      ms: ms(run.startedAt, run.finishedAt),
      ...(run.error ? { error: run.error } : {}),
      thread,
      steps: run.steps.map((s) => {
        const result = (s.result ?? {}) as {
          summary?: string;
          figures?: Record<string, unknown>;
          verify?: { ok?: boolean; summary?: string; figures?: Record<string, unknown> };
        };
        const plan = (s.plan ?? undefined) as { summary?: string } | undefined;
        return {
          id: s.step,
          status: s.status,
          attempts: s.attempts,
          ms: ms(s.startedAt, s.finishedAt),
          ...(result.summary ? { summary: result.summary } : plan?.summary ? { summary: plan.summary } : {}),
          ...(result.figures ? { figures: result.figures } : {}),
          ...(result.verify
            ? {
                verified: result.verify.ok === true,
                ...(result.verify.summary ? { verifySummary: result.verify.summary } : {}),
                ...(result.verify.figures ? { verifyFigures: result.verify.figures } : {}),
              }
            : {}),
          ...(s.error ? { error: s.error } : {}),
        };
      }),
    };
  }
}
