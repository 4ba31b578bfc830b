import type { Logger } from "pino";
import { describeError } from "../errors.js";
import { describeReplication, type LiveDeps, replicationStatus } from "../jobs/cutover/live.js";
import { describeLag } from "../jobs/steps/db/replicate.js";
import type { Db } from "../store/client.js";
import { replicationEvents } from "../store/kpi.js";
import type { Reply } from "../views/blocks.js";
import { esc } from "../views/blocks.js";
import { type AlertTransition, applyAlertStates, type KpiCheck, revertAlertState } from "./alerts.js";

/*
 * Watches a live migration's replication from the moment it runs until it is torn down: lag over
 * `replication.alertLagSeconds`, a subscriber that stopped (an apply error: a conflict, a missing
 * table), and a slot that vanished (Neon removes slots unused for about 40 hours, which silently
 * ends replication). Each is posted once when it starts and once when it clears, through the same
 * alert states as the KPIs, so replicas sharing one state database post it once between them.
 */

const DIRECTION = { fwd: "source → target", rev: "target → source (the way back)" } as const;

/** The checks of one look at the servers. */
export async function replicationChecks(live: LiveDeps, db: Db): Promise<KpiCheck[]> {
  const cfg = live.step.file.replication;
  if (!cfg) return [];
  const found = await replicationStatus(live.step);
  const checks: KpiCheck[] = [];
  // a direction whose replication was started (audited) must have its slot: one that vanished is a breach
  const started = await replicationEvents(db, live.step.file.environment);
  for (const d of ["fwd", "rev"] as const) {
    const s = found.find((f) => f.direction === d);
    const last = started.find(
      (e) =>
        e.action === "replication.teardown" || (e.details as { direction?: string } | null)?.direction === d,
    );
    const expected = last?.action === "replication.start";
    const title = `Replication ${DIRECTION[d]}`;
    checks.push({
      key: `replication:${d}:down`,
      title,
      breached: expected && !s?.connected,
      value: undefined,
      threshold: 0,
      bound: "max",
      unit: "probes",
      window: "the latest reading",
      detail: !s
        ? "its replication slot is gone (dropped by hand, or removed by the provider after long inactivity — Neon does after about 40 hours): replication has ended; run the teardown step, then copy again"
        : !s.connected
          ? "the subscriber is not connected to its slot: it stops on an apply error (a conflicting row, a missing table or column); read the subscriber's log, fix the row or table, and it resumes by itself"
          : describeReplication(s),
    });
    if (s?.lag)
      checks.push({
        key: `replication:${d}:lag`,
        title: `${title} lag`,
        breached: s.lag.seconds > cfg.alertLagSeconds,
        value: Number(s.lag.seconds.toFixed(1)),
        threshold: cfg.alertLagSeconds,
        bound: "max",
        unit: "ms",
        window: "the latest reading",
        detail: `${describeLag(s.lag)} behind; the switch waits for it to be under ${cfg.maxLagSeconds} s`,
      });
  }
  return checks;
}

/** One line for the channel, posted once per change of state. */
export function replicationAlertView(t: AlertTransition): Reply {
  const c = t.check;
  const text = c.breached ? `🔴 ${c.title}: ${c.detail}.` : `🟢 ${c.title}: back to normal (${c.detail}).`;
  return { text: esc(text), blocks: [{ type: "section", text: { type: "mrkdwn", text: esc(text) } }] };
}

/** Looks once: posts what changed. Returns the transitions. */
export async function watchReplicationOnce(deps: {
  live: LiveDeps;
  db: Db;
  log: Logger;
  now: () => Date;
  notify(reply: Reply): Promise<void>;
}): Promise<AlertTransition[]> {
  const checks = await replicationChecks(deps.live, deps.db);
  const transitions = await applyAlertStates(deps.db, checks, deps.now());
  for (const t of transitions) {
    try {
      await deps.notify(replicationAlertView(t));
    } catch (err) {
      deps.log.warn(
        { err: describeError(err), alert: t.check.key },
        "could not post a replication alert; will retry",
      );
      await revertAlertState(deps.db, t);
    }
  }
  return transitions;
}

/** Starts the watch every `everyMs`; returns its stop. */
export function startReplicationWatch(
  deps: Parameters<typeof watchReplicationOnce>[0],
  everyMs = 30_000,
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      watchReplicationOnce(deps)
        .catch((err) => deps.log.warn({ err: describeError(err) }, "replication watch failed"))
        .finally(loop);
    }, everyMs);
    timer.unref();
  };
  loop();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
