import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { CloudflareClients } from "../cloud/cloudflare.js";
import type { MigrationFile } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import type { Ports } from "../ports.js";
import type { Db } from "../store/client.js";

/** What a step reports while it runs: shown in the run's Slack message and stored on the execution. */
export interface Progress {
  done: number;
  total?: number;
  /** what `done` counts: "rows", "objects", "bytes", "tables" */
  unit?: string;
  /** one short line: what it is doing now */
  message?: string;
  /**
   * a counter that grows whenever the step gets anything done (bytes moved, entries listed);
   * the stall watchdog watches it, or `done` when absent
   */
  activity?: number;
}

/**
 * Resume points of one step execution. A value written here survives a crash and is read
 * back by the next attempt (and by a rerun after a failure) of the same step.
 *
 * @example const done = (await ctx.checkpoint.get<number>("rows")) ?? 0;
 */
export interface CheckpointStore {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

/** Facts about the run a step is part of. */
export interface RunInfo {
  id: string;
  env: string;
  requestedBy: string;
  dryRun: boolean;
  options: Record<string, unknown>;
}

/** Everything a step gets besides its input (graphile-worker's JobHelpers, smaller). */
export interface StepContext {
  log: Logger;
  run: RunInfo;
  /** aborted when the run is cancelled or the process is stopping */
  signal: AbortSignal;
  /** 1 on the first try, 2 on the first retry, … */
  attempt: number;
  progress(p: Progress): void;
  checkpoint: CheckpointStore;
  /**
   * hands parts of this step to the job queue, for any worker on any replica (the step's
   * `shard()` does each); absent where no queue is (a step called directly)
   */
  shards?: ShardPool;
  /** tell the whole channel at once (a breached threshold), optionally with a rollback button */
  alert?(a: { text: string; rollback: boolean }): void;
  /**
   * Post a report (Block Kit, with `text` as its fallback) or an output excerpt into the run's
   * thread: a verify step's table of differences, the last lines of a remote script.
   */
  report?(r: StepReport): void;
}

/**
 * Parts of one step as pg-boss jobs (src/jobs/shards.ts).
 *
 * @example const results = await ctx.shards.run<Figures>(ranges, (each) => sumProgress(each));
 */
export interface ShardPool {
  /**
   * Queues the parts not finished by an earlier attempt and waits for all of them, reporting
   * `summarize(each part's last progress, parts finished)` as the step's progress; resolves with
   * each part's result, in order. Throws once the others have ended if a part failed for good.
   */
  run<R>(
    parts: unknown[],
    summarize: (each: Array<Progress | undefined>, finished: number) => Progress,
    /** names a second set of parts of the same step (kept apart from the first) */
    name?: string,
  ): Promise<R[]>;
}

/** A message for the run's thread: `text` always (notifications, terminals), `blocks` when richer. */
export interface StepReport {
  text: string;
  blocks?: readonly unknown[];
}

/** One line of a dry run: what would change, read from live state. */
export interface PlannedChange {
  action: "create" | "update" | "delete" | "copy" | "none" | "check";
  target: string;
  detail?: string;
}

export interface StepPlan {
  summary: string;
  changes: PlannedChange[];
}

export interface StepOutcome {
  summary: string;
  /** figures worth keeping (counts, timings); shown in the report and stored on the execution */
  figures?: Record<string, number | string | boolean>;
}

export interface VerifyOutcome {
  ok: boolean;
  summary: string;
  /**
   * true when a failed check is a finding rather than an error (a comparison that found
   * differences): the runner reports it once and does not try the step again.
   */
  final?: boolean;
  figures?: Record<string, number | string | boolean>;
}

/**
 * A runbook step type. Steps are idempotent: `run` may be called again after a crash or a
 * failed attempt and must end in the same state, using its checkpoints to skip work done.
 */
export interface StepDefinition<I = unknown> {
  /** the name used in the migration file's `uses:` */
  type: string;
  description: string;
  /** a mutating step takes the environment lock; a read-only one does not */
  mutating: boolean;
  /**
   * its progress changes steadily while it works (bytes, rows, objects), so progress that stops
   * changing for `engine.stallSeconds` means a stalled connection: the runner stops the attempt
   * and tries again from the checkpoint. Leave unset where one quiet operation may legitimately
   * take long (an index build, a cloud resource coming up).
   */
  stallWatch?: boolean;
  /**
   * a new run does not take over the checkpoints of the last failed or cancelled one: a
   * comparison starts afresh (a resumed attempt of the same run still keeps its own)
   */
  freshEachRun?: boolean;
  /** validates the step's `with:` block; throws a CutoverError saying what is wrong */
  parse(input: unknown): I;
  plan(input: I, ctx: StepContext): Promise<StepPlan>;
  run(input: I, ctx: StepContext): Promise<StepOutcome>;
  verify(input: I, ctx: StepContext): Promise<VerifyOutcome>;
  /**
   * does one part handed out through `ctx.shards`, in whichever worker took it, with a context of
   * the part's own (checkpoint, progress, signal); returns what the step sums up
   */
  shard?(input: I, part: unknown, ctx: StepContext): Promise<unknown>;
  /**
   * tears down what `run` created and puts back what it changed, reading what `run` recorded in
   * its checkpoints; `/migrate undo <phase>` calls it, newest step first (src/jobs/undo.ts).
   * Absent where nothing changed the world.
   */
  undo?(input: I, ctx: StepContext): Promise<void>;
}

/** The step types this build can run, by `uses:` name. */
export type StepRegistry = ReadonlyMap<string, StepDefinition<unknown>>;

/**
 * What every step factory takes, and all it takes: clients come from `ports`, none is built in a
 * step; what a step needs beyond these (its calendar, the state store, the live database half,
 * the KPI verdict) it derives from them inside its factory.
 *
 * @example const step = createDbDumpStep({ env, ports, file, dataDir, log });
 */
export interface StepDeps {
  /**
   * the variables the migration file names (database URLs, the SSH key path, passwords);
   * endpoints and AWS credentials are read by the ports alone
   */
  env: NodeJS.ProcessEnv;
  /** every outside client (src/ports.ts); a test may hand in its own, in memory */
  ports: Ports;
  file: MigrationFile;
  /** CUTOVER_DATA_DIR, absolute: dumps, reports and caches live under it */
  dataDir: string;
  log: Logger;
  /** the state store, for steps that read what earlier steps recorded (approvals, snapshots); tests of other steps may leave it out */
  db?: Db;
  /** DNS and Pages; undefined when the file has no `dns` section */
  cloudflare?: CloudflareClients | undefined;
  /** the calendar steps read (approval expiry, the TTL wait, cost and KPI windows); default the machine's */
  clock?: Clock;
}

/** The calendar a step reads: `deps.clock`, else the machine's. */
export function stepNow(deps: Pick<StepDeps, "clock">): () => Date {
  return () => (deps.clock ?? systemClock).now();
}

/**
 * The state store of a step that needs one (`type` names it). Step factories only keep their
 * dependencies, so a registry built without a store (a test, the list of step types) still holds
 * the step; using it then fails with this message instead of a TypeError.
 */
export function stateStore(deps: Pick<StepDeps, "db">, type: string): Db {
  if (deps.db) return deps.db;
  const missing = () => {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `${type} needs Cutover's state store, and was built without one.`,
      {
        hint: "Build the step registry with the state store (`db` in the step deps), as the bot and `npx cutover` do.",
      },
    );
  };
  return new Proxy({}, { get: missing }) as Db;
}
