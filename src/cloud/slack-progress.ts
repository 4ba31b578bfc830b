import type { KnownBlock } from "@slack/types";
import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { RunAlert, RunObserver } from "../jobs/Runner.js";
import type { StepReport } from "../jobs/types.js";
import type { Db } from "../store/client.js";
import { loadRun } from "../store/runs.js";
import { alertView } from "../views/cutover.js";
import { runMessageView } from "../views/run.js";

/**
 * Keeps each run's single progress message in Slack up to date. Edits are coalesced and
 * throttled per channel (at most `editsPerSecond`), the latest state always wins, and the
 * message is created once per run even with several replicas: the first to store its `ts`
 * keeps it, any other deletes its own copy. Step notes go to the message's thread.
 */
export class SlackProgress implements RunObserver {
  private readonly dirty = new Map<string, Set<string>>(); // channel → run ids
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastEdit = new Map<string, number>();
  private readonly channelOf = new Map<string, string | null>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly minIntervalMs: number;

  constructor(
    private readonly client: WebClient,
    private readonly db: Db,
    private readonly log: Logger,
    private readonly defaultChannel: string,
    editsPerSecond = 1,
  ) {
    this.minIntervalMs = 1000 / editsPerSecond;
  }

  runChanged(runId: string): void {
    this.withChannel(runId, (channel) => {
      let set = this.dirty.get(channel);
      if (!set) {
        set = new Set();
        this.dirty.set(channel, set);
      }
      set.add(runId);
      this.schedule(channel);
    });
  }

  runNote(runId: string, text: string): void {
    this.serial(runId, async () => {
      const ts = await this.ensureMessage(runId);
      const channel = this.channelOf.get(runId);
      if (!ts || !channel) return;
      await this.client.chat.postMessage({ channel, thread_ts: ts, text });
    });
  }

  /** A step's report (a verify table, a script's last lines) in the run's thread. */
  runReport(runId: string, report: StepReport): void {
    this.serial(runId, async () => {
      const ts = await this.ensureMessage(runId);
      const channel = this.channelOf.get(runId);
      if (!ts || !channel) return;
      await this.client.chat.postMessage({
        channel,
        thread_ts: ts,
        text: report.text,
        ...(report.blocks?.length ? { blocks: report.blocks as KnownBlock[] } : {}),
      });
    });
  }

  /** A top-level message the whole channel sees at once, with a prominent rollback button. */
  runAlert(runId: string, alert: RunAlert): void {
    this.serial(runId, async () => {
      const run = await this.db.run.findUnique({ where: { id: runId }, select: { channel: true } });
      const channel = run?.channel ?? this.defaultChannel;
      const view = alertView(alert.text, alert.rollback);
      await this.client.chat.postMessage({ channel, text: view.text, blocks: view.blocks });
    });
  }

  /** Sends every pending edit now (used at shutdown and by tests). */
  async flush(): Promise<void> {
    for (const [channel, timer] of this.timers) {
      clearTimeout(timer);
      this.timers.delete(channel);
      this.flushChannel(channel);
    }
    await Promise.all([...this.chains.values()]);
  }

  private withChannel(runId: string, fn: (channel: string) => void): void {
    const known = this.channelOf.get(runId);
    if (known !== undefined) {
      if (known) fn(known);
      return;
    }
    this.db.run
      .findUnique({ where: { id: runId }, select: { channel: true } })
      .then((row) => {
        const channel = row ? (row.channel ?? this.defaultChannel) : null;
        this.channelOf.set(runId, channel);
        if (channel) fn(channel);
      })
      .catch((err) => this.log.warn({ err, runId }, "could not look up a run's channel"));
  }

  private schedule(channel: string): void {
    if (this.timers.has(channel)) return;
    const wait = Math.max(0, (this.lastEdit.get(channel) ?? 0) + this.minIntervalMs - Date.now());
    const timer = setTimeout(() => {
      this.timers.delete(channel);
      this.flushChannel(channel);
    }, wait);
    timer.unref();
    this.timers.set(channel, timer);
  }

  private flushChannel(channel: string): void {
    const runs = this.dirty.get(channel);
    if (!runs || runs.size === 0) return;
    // One edit per interval per channel: take the oldest dirty run, leave the rest for later.
    const [runId] = runs;
    runs.delete(runId!);
    this.lastEdit.set(channel, Date.now());
    this.serial(runId!, () => this.render(runId!));
    if (runs.size > 0) this.schedule(channel);
  }

  /** Runs fn after whatever this run's previous Slack call was, so edits never overtake. */
  private serial(runId: string, fn: () => Promise<void>): void {
    const previous = this.chains.get(runId) ?? Promise.resolve();
    const next = previous
      .then(fn)
      .catch((err) =>
        this.log.warn({ err: { message: (err as Error).message }, runId }, "could not update Slack"),
      );
    this.chains.set(runId, next);
    void next.finally(() => {
      if (this.chains.get(runId) === next) this.chains.delete(runId);
    });
  }

  private async render(runId: string): Promise<void> {
    const run = await loadRun(this.db, runId);
    if (!run) return;
    const channel = run.channel ?? this.defaultChannel;
    const view = runMessageView(run);
    const before = run.messageTs;
    const ts = before ?? (await this.ensureMessage(runId, view));
    // a message just posted already shows this state
    if (ts && before) await this.client.chat.update({ channel, ts, text: view.text, blocks: view.blocks });
  }

  /** Posts the run's message once; returns its ts. */
  private async ensureMessage(
    runId: string,
    view = undefined as ReturnType<typeof runMessageView> | undefined,
  ) {
    const run = await loadRun(this.db, runId);
    if (!run) return undefined;
    if (run.messageTs) return run.messageTs;
    const channel = run.channel ?? this.defaultChannel;
    this.channelOf.set(runId, channel);
    const body = view ?? runMessageView(run);
    const posted = await this.client.chat.postMessage({ channel, text: body.text, blocks: body.blocks });
    const ts = posted.ts as string;
    const claimed = await this.db.run.updateMany({
      where: { id: runId, messageTs: null },
      data: { messageTs: ts },
    });
    if (claimed.count === 1) return ts;
    await this.client.chat.delete({ channel, ts }).catch(() => undefined);
    const winner = await this.db.run.findUnique({ where: { id: runId }, select: { messageTs: true } });
    return winner?.messageTs ?? undefined;
  }
}
