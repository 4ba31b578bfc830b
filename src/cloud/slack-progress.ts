import type { KnownBlock } from "@slack/types";
import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { StepReport } from "../jobs/define-step.js";
import type { RunAlert, RunObserver } from "../jobs/Runner.js";
import type { Db } from "../store/client.js";
import { claimRunMessage, loadRun, runChannel, runMessageTs } from "../store/runs.js";
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
  /** by run: the message as this process last sent it, so an edit that changes nothing is not sent */
  private readonly shown = new Map<string, string>();
  /** runs whose first post failed without an answer: it may have landed, so look before posting again */
  private readonly uncertain = new Map<string, number>();

  /**
   * `poster` posts each run's first message: give it a client that does not retry by itself
   * (`retryConfig: { retries: 0 }`), so a post whose answer was lost is never sent twice; this
   * class looks for it by its metadata instead. Defaults to `client`.
   */
  constructor(
    private readonly client: WebClient,
    private readonly db: Db,
    private readonly log: Logger,
    private readonly defaultChannel: string,
    editsPerSecond = 1,
    private readonly poster: WebClient = client,
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
      const channel = (await runChannel(this.db, runId)) ?? this.defaultChannel;
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
    const shown = JSON.stringify(view);
    // a message just posted already shows this state; an edit to what it already says is noise
    // (DESIGN.md: never an edit that changes nothing), and it spends the channel's edit budget
    if (ts && before && this.shown.get(runId) !== shown) {
      await this.client.chat.update({ channel, ts, text: view.text, blocks: view.blocks });
    }
    if (ts) {
      this.shown.delete(runId); // re-inserted last: the oldest run is the first forgotten
      this.shown.set(runId, shown);
      if (this.shown.size > 1_000) this.shown.delete(this.shown.keys().next().value!);
    }
  }

  /** Posts the run's message once; returns its ts. */
  private async ensureMessage(
    runId: string,
    view = undefined as ReturnType<typeof runMessageView> | undefined,
  ) {
    const run = await loadRun(this.db, runId);
    if (!run) return undefined;
    const channel = run.channel ?? this.defaultChannel;
    // known before the early return: a process that resumes a run finds its message already
    // posted, and its first thread note must not depend on another lookup having finished
    this.channelOf.set(runId, channel);
    if (run.messageTs) return run.messageTs;
    const body = view ?? runMessageView(run);
    let ts: string | undefined;
    const since = this.uncertain.get(runId);
    if (since !== undefined) {
      // an earlier post may have landed with its answer lost: adopt it rather than post again
      try {
        ts = await this.findPosted(channel, runId, since);
      } catch (err) {
        if (!(err as { data?: unknown }).data) {
          setTimeout(() => this.runChanged(runId), 2_000).unref();
          throw err;
        }
        // Slack refused the lookup (e.g. the channels:history scope is missing): post again
        this.log.warn(
          { err: { message: (err as Error).message }, runId },
          "could not look for the run's message",
        );
      }
      this.uncertain.delete(runId);
    }
    if (!ts) {
      const sentAt = Date.now();
      try {
        const posted = await this.poster.chat.postMessage({
          channel,
          text: body.text,
          blocks: body.blocks,
          metadata: { event_type: RUN_MESSAGE_EVENT, event_payload: { run_id: runId } },
        });
        ts = posted.ts as string;
      } catch (err) {
        // Slack said no (an error code): nothing was posted. Anything else (a lost connection,
        // a timeout, a 5xx): it may have been; look for it first next time, and try again soon.
        if (!(err as { data?: { ok?: boolean } }).data) {
          this.uncertain.set(runId, this.uncertain.get(runId) ?? sentAt);
          setTimeout(() => this.runChanged(runId), 2_000).unref();
        }
        throw err;
      }
    }
    if (await claimRunMessage(this.db, runId, ts)) return ts;
    await this.client.chat.delete({ channel, ts }).catch(() => undefined);
    return (await runMessageTs(this.db, runId)) ?? undefined;
  }

  /** The run's message if it is in the channel already (posted since `since`), by its metadata. */
  private async findPosted(channel: string, runId: string, since: number): Promise<string | undefined> {
    const res = await this.client.conversations.history({
      channel,
      oldest: ((since - 60_000) / 1000).toFixed(6),
      limit: 100,
      include_all_metadata: true,
    });
    const found = (res.messages ?? []).find(
      (m) =>
        (m as { metadata?: { event_type?: string; event_payload?: { run_id?: string } } }).metadata
          ?.event_payload?.run_id === runId,
    );
    if (found?.ts)
      this.log.info({ runId, ts: found.ts }, "found the run's message posted by an answer that was lost");
    return found?.ts;
  }
}

/** The metadata event type on each run's progress message (it carries the run id). */
export const RUN_MESSAGE_EVENT = "cutover_run_progress";
