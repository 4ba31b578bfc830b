import type pg from "pg";
import { z } from "zod";
import {
  applySequences,
  changedTables,
  createSlot,
  createSubscription,
  dropPublication,
  dropSlot,
  dropSubscription,
  enableSubscription,
  ensurePublication,
  type FreezeRecord,
  freezeWrites,
  getSubscription,
  type Lag,
  listSlots,
  publishableTables,
  readChangeCounters,
  readLag,
  readSequences,
  recordStartCounters,
  replicationNames,
  schemaDifferences,
  schemaShape,
  startCounters,
  stopApplyWorker,
  unfreezeWrites,
  waitForSlot,
} from "../../cloud/replication.js";
import { type ReplicationConfig, requireSection } from "../../config/schema.js";
import { CutoverError, describeError, ErrorCode } from "../../errors.js";
import { audit, lastAuditEvent, lastFreezeEvent } from "../../store/audit.js";
import type { Db } from "../../store/client.js";
import type { Progress, TypedCheckpoints } from "../define-step.js";
import { type StepDeps, stepNow } from "../define-step.js";
import {
  describeLag,
  sourceConnInfo,
  targetConnInfo,
  waitCaughtUp,
  withBoth,
} from "../steps/db/replicate.js";
import { runDatabaseVerify, summarise } from "../steps/db/verify.js";
import type { PreCheck } from "./types.js";

/*
 * The database half of a live cutover and of a lossless rollback. Both are one sequence of
 * sub-steps, each recorded before the next begins, so that a crash at any point either resumes
 * where it stopped or unwinds to a consistent state with the old side writable again:
 *
 *   cutover:  freeze the source's app role → drain forward replication to the source's WAL
 *             position → sequences → refresh materialized views → verify while frozen (every table, db.verify) → end forward
 *             replication → start reverse replication (target → source) → open the target
 *   rollback: freeze the target's app role → drain reverse replication → sequences back →
 *             end reverse replication → start forward replication again (no copy: both sides are
 *             frozen and equal) → open the source
 *
 * The freeze takes the app role's write privileges (see freezeWrites): every session at once,
 * reads go on, and exactly what was taken is recorded in the audit trail before it is taken.
 */

export type Side = "source" | "target";

/** What the live sequences need: the step deps (database URLs, the file) and the state store. */
export interface LiveDeps {
  step: StepDeps;
  db: Db;
  now: () => Date;
}

/** The database half of a live cutover and rollback, when the file has a `replication` section and there is a state store. */
export function liveDeps(deps: StepDeps): LiveDeps | undefined {
  if (!deps.file.replication || !deps.db) return undefined;
  return { step: deps, db: deps.db, now: stepNow(deps) };
}

/** The part of a cutover the approval binds besides DNS and Pages: which roles freeze, which way data flows. */
export interface LivePlan {
  freeze: { source: string; target: string };
  forward: string;
  reverse: string | null;
  maxLagSeconds: number;
}

export function livePlan(file: StepDeps["file"]): LivePlan | null {
  const cfg = file.replication;
  if (!cfg) return null;
  return {
    freeze: { source: cfg.appRoles.source, target: cfg.appRoles.target },
    forward: replicationNames(file.environment, "fwd").subscription,
    reverse: cfg.reverse ? replicationNames(file.environment, "rev").subscription : null,
    maxLagSeconds: cfg.maxLagSeconds,
  };
}

const cfgOf = (deps: LiveDeps): ReplicationConfig => requireSection(deps.step.file, "replication");
const timeout = { timeoutSeconds: 10, appName: "cutover-live" };

// ───────────────────────────── freezes, durable ─────────────────────────────

/**
 * The freeze in force on a side: the newest `db.freeze` in the audit trail with no `db.unfreeze`
 * after it. Kept there, not in a step's checkpoints, because the freeze of a rollback is undone by
 * the next cutover, another run.
 */
export async function activeFreeze(db: Db, env: string, side: Side): Promise<FreezeRecord | null> {
  const last = await lastFreezeEvent(db, env, side);
  if (last?.action !== "db.freeze") return null;
  return (last.details as { record?: FreezeRecord }).record ?? null;
}

/** Freezes a side's app role, recording what it takes first; a side already frozen keeps its record. */
async function freezeSide(
  deps: LiveDeps,
  client: pg.Client,
  side: Side,
  actor: string,
  runId: string | null,
): Promise<FreezeRecord> {
  const cfg = cfgOf(deps);
  const env = deps.step.file.environment;
  const role = cfg.appRoles[side];
  const earlier = await activeFreeze(deps.db, env, side);
  const record = await freezeWrites(client, role, {
    inflightMs: cfg.inflightMs,
    now: deps.now(),
    beforeRevoke: async (planned) => {
      // a side frozen before (by a rollback) keeps what that freeze took, plus anything granted since
      const grants = [...(earlier?.grants ?? [])];
      for (const g of planned.grants) if (!grants.some((x) => x.table === g.table)) grants.push(g);
      planned.grants = grants;
      await audit(deps.db, {
        actor,
        action: "db.freeze",
        target: env,
        outcome: "ok",
        runId,
        details: { side, record: planned } as unknown as Record<string, unknown>,
      });
    },
  });
  return record;
}

async function unfreezeSide(
  deps: LiveDeps,
  client: pg.Client,
  side: Side,
  actor: string,
  runId: string | null,
) {
  const env = deps.step.file.environment;
  const record = await activeFreeze(deps.db, env, side);
  if (!record) return false;
  await unfreezeWrites(client, record);
  await audit(deps.db, {
    actor,
    action: "db.unfreeze",
    target: env,
    outcome: "ok",
    runId,
    details: { side, role: record.role, tables: record.grants.length },
  });
  return true;
}

// ───────────────────────────── pre-checks ─────────────────────────────

/** What must hold before anyone may approve a live cutover (and again before it freezes anything). */
export async function livePreChecks(deps: LiveDeps): Promise<PreCheck[]> {
  const cfg = cfgOf(deps);
  const n = replicationNames(deps.step.file.environment, "fwd");
  const checks: PreCheck[] = [];
  // a database that cannot be reached is a failed check in words; a failure after both opened is not
  let opened = false;
  try {
    await withBoth(deps.step, timeout, async (both) => {
      opened = true;
      const sub = await getSubscription(both.target, n.subscription);
      const lag = await readLag(both.source, n.slot);
      const running = Boolean(sub?.enabled && lag?.connected);
      checks.push({
        name: "replication running",
        ok: running,
        detail: !sub
          ? "no forward replication: run db.replicate (after db.dump and db.restore) first"
          : !lag
            ? `the slot ${n.slot} is gone from the source (Neon drops slots unused for about 40 hours): copy again`
            : !lag.connected
              ? "the target's subscription is not connected: read the target's log for an apply error, fix it, then run db.replicate"
              : `subscription ${n.subscription} streaming`,
      });
      if (lag)
        checks.push({
          name: `replication lag ≤ ${cfg.maxLagSeconds} s`,
          ok: lag.seconds <= cfg.maxLagSeconds,
          detail: describeLag(lag),
        });
      const diff = schemaDifferences(await schemaShape(both.source), await schemaShape(both.target));
      checks.push({
        name: "schemas match (DDL is not replicated)",
        ok: diff.length === 0,
        detail: diff.length
          ? `${diff.slice(0, 3).join("; ")}${diff.length > 3 ? `; and ${diff.length - 3} more` : ""}: make the same change on the other side`
          : "every replicated table has the same columns on both sides",
      });
      const held = await activeFreeze(deps.db, deps.step.file.environment, "source");
      checks.push({
        name: "source writable now",
        ok: held === null,
        detail: held
          ? `the source's app role ${held.role} is frozen since ${held.at}: a cutover or rollback stopped half-way; run it again to finish`
          : `${cfg.appRoles.source} writes; the switch freezes it for the seconds the drain takes`,
      });
    });
  } catch (err) {
    if (opened) throw err;
    return [{ name: "replication running", ok: false, detail: describeError(err) }];
  }
  return checks;
}

// ───────────────────────────── the forward switch ─────────────────────────────

/** Where a live switch has got to: each stage done is never done again. */
export interface LiveState {
  stages: string[];
  /** epoch ms of the freeze: the write outage starts here */
  frozenAt?: number;
  /** the source's WAL position after the freeze */
  lsn?: string;
  figures: Record<string, number | string | boolean>;
}

export interface LiveContext {
  checkpoint: TypedCheckpoints<typeof LIVE_CHECKPOINTS>;
  signal: AbortSignal;
  progress(p: Progress): void;
  actor: string;
  runId: string | null;
}

const KEY = "live";

/** What the switch keeps, for the step that runs it to declare: the stages done and their figures. */
export const LIVE_CHECKPOINTS = { [KEY]: z.custom<LiveState>() };
/** pre-checks, note, freeze, drain, sequences, views, verify, end forward, start reverse, open */
const SWITCH_STAGES = 10;

async function stage(
  ctx: LiveContext,
  state: LiveState,
  name: string,
  fn: () => Promise<void>,
): Promise<void> {
  if (state.stages.includes(name)) return;
  if (ctx.signal.aborted) throw new CutoverError(ErrorCode.Cancelled, `cancelled before ${name}`);
  ctx.progress({ done: state.stages.length, total: SWITCH_STAGES, unit: "stages", message: name });
  await fn();
  state.stages.push(name);
  await ctx.checkpoint.set(KEY, state);
}

/**
 * The database half of a live cutover, up to and including opening the target for the new app.
 * Run right before DNS switches; on a failure before the target is open, {@link unwindSwitch}
 * gives the source back. Returns the figures (the write outage at the database among them).
 */
export async function switchDatabase(deps: LiveDeps, ctx: LiveContext): Promise<LiveState> {
  const cfg = cfgOf(deps);
  const env = deps.step.file.environment;
  const fwd = replicationNames(env, "fwd");
  const rev = replicationNames(env, "rev");
  const state: LiveState = (await ctx.checkpoint.get(KEY)) ?? { stages: [], figures: {} };
  await withBoth(deps.step, timeout, async (both) => {
    await stage(ctx, state, "pre-checks", async () => {
      // a subscription started moments ago (a rollback restarts forward replication) connects within seconds
      await waitCaughtUp(both.source, fwd.slot, {
        maxSeconds: cfg.maxLagSeconds,
        timeoutMs: 30_000,
        signal: ctx.signal,
        subscriberSide: "target",
      }).catch(() => undefined); // the checks below say what is wrong, in words
      const bad = (await livePreChecks(deps)).filter((c) => !c.ok && c.name !== "source writable now");
      if (bad.length)
        throw new CutoverError(
          ErrorCode.CutoverNotReady,
          `Not switching: ${bad.map((c) => `${c.name}: ${c.detail}`).join("; ")}. Nothing was frozen.`,
        );
    });
    await stage(ctx, state, "note how the target is", async () => {
      // an unwind puts the target back as the switch found it (frozen after a rollback, open before the first switch)
      state.figures.targetFrozenBefore = (await activeFreeze(deps.db, env, "target")) !== null;
    });
    await stage(ctx, state, "freeze the source", async () => {
      // the target is frozen too until the switch: nothing may write there before reverse replication starts
      await freezeSide(deps, both.target, "target", ctx.actor, ctx.runId);
      const t0 = Date.now();
      const record = await freezeSide(deps, both.source, "source", ctx.actor, ctx.runId);
      state.frozenAt = t0;
      state.lsn = record.lsn!;
      state.figures.freezeMs = Date.now() - t0;
    });
    await stage(ctx, state, "drain forward replication", async () => {
      const ms = await waitForSlot(both.source, fwd.slot, state.lsn!, {
        timeoutMs: cfg.drainTimeoutSeconds * 1000,
        signal: ctx.signal,
      });
      state.figures.drainMs = Math.round(ms);
    });
    await stage(ctx, state, "sequences", async () => {
      const values = await readSequences(both.source);
      const missing = await applySequences(both.target, values);
      state.figures.sequences = values.length - missing.length;
      if (missing.length)
        throw new CutoverError(
          ErrorCode.VerificationDiffered,
          `Sequences missing on the target: ${missing.join(", ")}.`,
        );
    });
    await stage(ctx, state, "materialized views", async () => {
      const { rows } = await both.target.query<{ name: string }>(
        `SELECT format('%I.%I', schemaname, matviewname) AS name FROM pg_matviews WHERE ispopulated ORDER BY 1`,
      );
      for (const r of rows) await both.target.query(`REFRESH MATERIALIZED VIEW ${r.name}`);
      state.figures.materializedViews = rows.length;
    });
    await stage(ctx, state, "verify while frozen", async () => {
      const started = performance.now();
      const scope = await verifyScope(deps, both.target);
      const report = await runDatabaseVerify(deps.step, {
        jobs: 4,
        signal: ctx.signal,
        ...(scope.tables ? { tables: scope.tables } : {}),
      });
      state.figures.verifyMs = Math.round(performance.now() - started);
      state.figures.verifiedTables = report.tablesCompared;
      state.figures.verifyScope = scope.why;
      if (!report.identical)
        throw new CutoverError(
          ErrorCode.VerificationDiffered,
          `The frozen source and the target differ after the drain: ${summarise(report)}`,
          { hint: "Nothing was switched and the source is writable again. Run db.verify for the details." },
        );
    });
    await stage(ctx, state, "end forward replication", async () => {
      await endReplication(deps, both, "fwd", ctx);
    });
    if (cfg.reverse) {
      await stage(ctx, state, "start reverse replication", async () => {
        // both sides frozen and equal: the reverse slot starts exactly where the target is
        await ensurePublication(both.target, rev.publication, await publishableTables(both.target));
        if (!(await listSlots(both.target, rev.slot)).some((s) => s.name === rev.slot))
          await createSlot(both.target, rev.slot);
        if (!(await getSubscription(both.source, rev.subscription))) {
          const conn = await targetConnInfo(deps.step);
          await createSubscription(both.source, {
            name: rev.subscription,
            conninfo: conn.url,
            publication: rev.publication,
            slot: rev.slot,
          });
        }
        await audit(deps.db, {
          actor: ctx.actor,
          action: "replication.start",
          target: env,
          outcome: "ok",
          runId: ctx.runId,
          details: { direction: "rev", subscription: rev.subscription, slot: rev.slot },
        });
      });
    }
    await stage(ctx, state, "open the target", async () => {
      // the target's change counters now: what a rollback without reverse replication would leave behind is counted from here
      state.figures.targetChangesAtSwitch = await changeCount(both.target);
      await unfreezeSide(deps, both.target, "target", ctx.actor, ctx.runId);
      state.figures.writeOutageMs = Date.now() - (state.frozenAt ?? Date.now());
    });
  });
  return state;
}

/**
 * Undoes a live switch that stopped before the target opened: forward replication back (a new
 * slot, no copy: both sides are frozen and equal), reverse replication gone, the source writable.
 * The DNS was not switched. Safe to run at any stage, and twice.
 */
export async function unwindSwitch(deps: LiveDeps, ctx: LiveContext): Promise<string[]> {
  const done: string[] = [];
  const state = (await ctx.checkpoint.get(KEY)) ?? { stages: [], figures: {} };
  await withBoth(deps.step, timeout, async (both) => {
    if (state.stages.includes("end forward replication")) {
      await endReplication(deps, both, "rev", ctx);
      await startReplicationFromFrozen(deps, both, "fwd", ctx);
      done.push("forward replication restarted from the frozen source (no copy)");
    }
    // a switch stopped after its verify began has stopped the apply worker: start it again
    const sub = await getSubscription(
      both.target,
      replicationNames(deps.step.file.environment, "fwd").subscription,
    );
    if (sub && !sub.enabled) {
      await enableSubscription(both.target, sub.name);
      done.push("forward replication enabled again");
    }
    // the target goes back to how the switch found it
    if (state.figures.targetFrozenBefore === false)
      await unfreezeSide(deps, both.target, "target", ctx.actor, ctx.runId);
    if (await unfreezeSide(deps, both.source, "source", ctx.actor, ctx.runId))
      done.push("the source is writable again");
  });
  await ctx.checkpoint.set(KEY, { stages: [], figures: {} });
  return done;
}

async function endReplication(
  deps: LiveDeps,
  both: { source: pg.Client; target: pg.Client },
  d: "fwd" | "rev",
  ctx: { actor: string; runId: string | null },
) {
  const n = replicationNames(deps.step.file.environment, d);
  const [publisher, subscriber] = d === "fwd" ? [both.source, both.target] : [both.target, both.source];
  await dropSubscription(subscriber, n.subscription);
  await dropSlot(publisher, n.slot);
  await dropPublication(publisher, n.publication);
  await audit(deps.db, {
    actor: ctx.actor,
    action: "replication.end",
    target: deps.step.file.environment,
    outcome: "ok",
    runId: ctx.runId,
    details: { direction: d, subscription: n.subscription },
  });
}

/** Starts replication in a direction while both sides are frozen and equal: a plain slot, no snapshot, no copy. */
async function startReplicationFromFrozen(
  deps: LiveDeps,
  both: { source: pg.Client; target: pg.Client },
  d: "fwd" | "rev",
  ctx: { actor: string; runId: string | null },
): Promise<void> {
  const n = replicationNames(deps.step.file.environment, d);
  const [publisher, subscriber] = d === "fwd" ? [both.source, both.target] : [both.target, both.source];
  await ensurePublication(publisher, n.publication, await publishableTables(publisher));
  if (!(await listSlots(publisher, n.slot)).some((s) => s.name === n.slot))
    await createSlot(publisher, n.slot);
  // both sides equal now: the next switch's fast verify reads what changed on the target from here
  const counters = d === "fwd" ? await readChangeCounters(both.target) : undefined;
  if (!(await getSubscription(subscriber, n.subscription))) {
    const conn = d === "fwd" ? sourceConnInfo(deps.step) : await targetConnInfo(deps.step);
    await createSubscription(subscriber, {
      name: n.subscription,
      conninfo: conn.url,
      publication: n.publication,
      slot: n.slot,
    });
    if (counters) await recordStartCounters(subscriber, n.subscription, counters);
  }
  await audit(deps.db, {
    actor: ctx.actor,
    action: "replication.start",
    target: deps.step.file.environment,
    outcome: "ok",
    runId: ctx.runId,
    details: {
      direction: d,
      subscription: n.subscription,
      slot: n.slot,
      copy: false,
    },
  });
}

// ───────────────────────────── the way back ─────────────────────────────

/** What the database half of a rollback did, in lines for its report. */
export interface LiveRollbackReport {
  /** every write made on the new stack since the switch is back on the source */
  lossless: boolean;
  items: Array<{ what: string; ok: boolean; detail: string }>;
  /** freeze of the target to the source writable again */
  writeOutageMs?: number;
  drainMs?: number;
}

/**
 * The database half of /rollback, when reverse replication runs: freeze the target's app role,
 * drain reverse replication to the target's WAL position, set the source's sequences, end reverse
 * replication, start forward replication again from the equal, frozen sides (so a second cutover
 * needs no copy), then open the source. Without reverse replication it changes nothing and says
 * what is not back, with the figures.
 */
export async function rollbackDatabase(
  deps: LiveDeps,
  opts: {
    actor: string;
    signal: AbortSignal;
    beforeOpen?: () => Promise<void>;
    /** told before each sub-step starts, by name (progress; the kill campaign stops the process here) */
    onStep?: (name: string) => void;
  },
): Promise<LiveRollbackReport> {
  const step = (name: string) => opts.onStep?.(name);
  const cfg = cfgOf(deps);
  const env = deps.step.file.environment;
  const rev = replicationNames(env, "rev");
  const fwd = replicationNames(env, "fwd");
  const items: LiveRollbackReport["items"] = [];
  return withBoth(deps.step, timeout, async (both): Promise<LiveRollbackReport> => {
    const sub = await getSubscription(both.source, rev.subscription);
    const lag = sub ? await readLag(both.target, rev.slot) : null;
    const targetFrozen = await activeFreeze(deps.db, env, "target");
    const sourceFrozen = await activeFreeze(deps.db, env, "source");
    const t0 = Date.now();
    let drainMs: number | undefined;
    if (sub && lag) {
      // the way back: everything written on the target since the switch goes home first
      step("freeze the target");
      const record = await freezeSide(deps, both.target, "target", opts.actor, null);
      items.push({
        what: "freeze the target",
        ok: true,
        detail: `${record.role}'s writes refused (reads go on)`,
      });
      step("drain reverse replication");
      try {
        drainMs = await waitForSlot(both.target, rev.slot, record.lsn!, {
          timeoutMs: cfg.drainTimeoutSeconds * 1000,
          signal: opts.signal,
        });
      } catch (err) {
        items.push({
          what: "drain reverse replication",
          ok: false,
          detail: `${describeError(err)} The target stays frozen and the source stays as it was: run /rollback again.`,
        });
        return { lossless: false, items };
      }
      items.push({
        what: "drain reverse replication",
        ok: true,
        detail: `every write made on the target is on the source (${Math.round(drainMs)} ms)`,
      });
      step("sequences");
      const values = await readSequences(both.target);
      const missing = await applySequences(both.source, values);
      items.push({
        what: "sequences",
        ok: missing.length === 0,
        detail: missing.length
          ? `missing on the source: ${missing.join(", ")}`
          : `${values.length} set on the source from the target`,
      });
      step("end reverse replication");
      await endReplication(deps, both, "rev", { actor: opts.actor, runId: null });
    } else if (!(targetFrozen && sourceFrozen)) {
      // no way back for the data: DNS goes back all the same (the caller did it first); say what is left behind
      items.push({ what: "database", ok: false, detail: await notBackDetail(deps, both, sub !== null) });
      return { lossless: false, items };
    } else {
      // both sides frozen and no reverse replication: an earlier rollback or a switch stopped after its drain
      items.push({
        what: "drain",
        ok: true,
        detail: "both sides were frozen and drained already: nothing to carry",
      });
    }
    if (!(await getSubscription(both.target, fwd.subscription))) {
      step("restart forward replication");
      await startReplicationFromFrozen(deps, both, "fwd", { actor: opts.actor, runId: null });
      items.push({
        what: "replication",
        ok: true,
        detail: "forward replication restarted without a copy, ready for the next cutover",
      });
    }
    step("switch back");
    await opts.beforeOpen?.();
    step("open the source");
    await unfreezeSide(deps, both.source, "source", opts.actor, null);
    const writeOutageMs = Date.now() - t0;
    items.push({
      what: "open the source",
      ok: true,
      detail: `${cfg.appRoles.source} writes again (write outage ${writeOutageMs} ms, the target stays frozen for its app)`,
    });
    return {
      lossless: true,
      items,
      writeOutageMs,
      ...(drainMs !== undefined ? { drainMs: Math.round(drainMs) } : {}),
    };
  });
}

/**
 * Which tables the verify while frozen compares row by row. By default the ones forward
 * replication changed: the target's change counters now against those read just before its
 * subscription was created (db.replicate, or a rollback restarting it from equal sides) and kept
 * as the subscription's comment. The apply
 * worker is stopped first (the drain is done, so it has nothing left to apply): a backend sends
 * its counters at most once a second while it works and always as it exits, so after it has
 * exited they hold every change it applied. Writes by anyone else, or counters sent late from
 * before the start, only add tables. Materialized views, just refreshed, are always compared.
 * Every table when the file says `switchVerify: all`, when no starting counters were recorded, or
 * when the statistics were reset in between (a restart, pg_stat_reset()).
 */
async function verifyScope(
  deps: LiveDeps,
  target: pg.Client,
): Promise<{ tables?: Set<string>; why: string }> {
  const cfg = cfgOf(deps);
  const env = deps.step.file.environment;
  const fwd = replicationNames(env, "fwd");
  if (cfg.switchVerify === "all") return { why: "every table (switchVerify: all)" };
  const before = await startCounters(target, fwd.subscription);
  if (!before) return { why: "every table (no change counters were recorded when replication started)" };
  await stopApplyWorker(target, fwd.subscription, 30_000);
  const changed = changedTables(before, await readChangeCounters(target));
  if (!changed) return { why: "every table (the target's statistics were reset since replication started)" };
  const { rows } = await target.query<{ name: string }>(
    "SELECT format('%I.%I', schemaname, matviewname) AS name FROM pg_matviews",
  );
  return {
    tables: new Set([...changed, ...rows.map((r) => r.name)]),
    why: `the ${changed.length} table${changed.length === 1 ? "" : "s"} replication changed`,
  };
}

/** Row changes counted by the server's statistics, all user tables together. */
async function changeCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint AS n FROM pg_stat_user_tables",
  );
  return Number(rows[0]!.n);
}

/** In words: what data is not back, where it is, and the step that brings it back. */
async function notBackDetail(
  deps: LiveDeps,
  both: { source: pg.Client; target: pg.Client },
  hasSubscription: boolean,
): Promise<string> {
  const switched = await lastAuditEvent(deps.db, "cutover.switched", deps.step.file.environment);
  const atSwitch = (switched?.details as { targetChangesAtSwitch?: number } | null)?.targetChangesAtSwitch;
  let rows = "";
  try {
    const now = await changeCount(both.target);
    rows =
      atSwitch !== undefined
        ? ` ${Math.max(0, now - atSwitch).toLocaleString("en-US")} row changes (inserts, updates, deletes) were made on the target since then.`
        : "";
  } catch {
    rows = " The target database did not answer, so the rows written there could not be counted.";
  }
  return `reverse replication is ${hasSubscription ? "broken (its slot on the target is gone)" : "not running"}, so nothing was carried back: every order written on the new stack${switched ? ` since the switch at ${switched.at.toISOString()}` : ""} is still only on the target database.${rows} The source was left as it is. To bring the rows home: freeze the new app, copy them with db.verify's list of differing keys as the guide, then run /rollback again; for uploads, run storage.sync with source and target swapped.`;
}

// ───────────────────────────── status ─────────────────────────────

/** Replication as `/migrate status`, `/metrics` and the digest show it. */
export interface ReplicationStatus {
  direction: "fwd" | "rev";
  subscription: string;
  lag: Lag | null;
  connected: boolean;
  retainedBytes: number;
}

export async function replicationStatus(step: StepDeps): Promise<ReplicationStatus[]> {
  if (!step.file.replication) return [];
  const out: ReplicationStatus[] = [];
  await withBoth(step, { timeoutSeconds: 5, appName: "cutover-status" }, async (both) => {
    for (const d of ["fwd", "rev"] as const) {
      const n = replicationNames(step.file.environment, d);
      const publisher = d === "fwd" ? both.source : both.target;
      const slot = (await listSlots(publisher, n.slot)).find((s) => s.name === n.slot);
      if (!slot) continue;
      const lag = await readLag(publisher, n.slot);
      out.push({
        direction: d,
        subscription: n.subscription,
        lag,
        connected: lag?.connected ?? false,
        retainedBytes: slot.retainedBytes,
      });
    }
  });
  return out;
}

/** One line per replication direction, for status views and the digest. */
export function describeReplication(s: ReplicationStatus): string {
  const dir = s.direction === "fwd" ? "source → target" : "target → source (the way back)";
  if (!s.lag) return `${dir}: slot present, lag unknown`;
  return `${dir}: ${s.connected ? "streaming" : "NOT CONNECTED"}, ${describeLag(s.lag)} behind${s.lag.lastReplyAt ? `, last reply ${s.lag.lastReplyAt.toISOString().slice(11, 19)} UTC` : ""}`;
}
