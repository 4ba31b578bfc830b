import type { Logger } from "pino";
import type { z } from "zod";
import { type Clock, systemClock } from "../clock.js";
import type { CloudflareClients } from "../cloud/cloudflare.js";
import type { MigrationFile, SectionPath } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import type { Ports } from "../ports.js";
import type { Db } from "../store/client.js";

// The step kit: what a step is (its definition, the context it runs with, what it reports, the
// deps its factory takes) and `defineStep`, with which each step type declares itself once: its
// type, description, `with:` schema, config sections, time limit, stall watch and typed checkpoints.

/**
 * The checkpoint keys of a step and the shape of each value. A key ending in `*` names a family
 * (`"record:*"` covers `record:A:www.example.com`). Values are read back through the schema, so a
 * step never works on a value of another shape than it wrote; `z.custom<T>()` declares a shape the
 * step alone writes without checking it again on the way back.
 *
 * @example const checkpoints = { done: z.number(), report: z.custom<Report>() };
 */
export type CheckpointSchemas = Record<string, z.ZodType>;

/** The keys a checkpoint map allows: each plain key, and `prefix${string}` for each `prefix*`. */
export type CheckpointKey<C extends CheckpointSchemas> = {
  [P in keyof C & string]: P extends `${infer Prefix}*` ? `${Prefix}${string}` : P;
}[keyof C & string];

/** What a key of a checkpoint map holds. */
export type CheckpointValue<C extends CheckpointSchemas, K extends string> = {
  [P in keyof C & string]: K extends (P extends `${infer Prefix}*` ? `${Prefix}${string}` : P)
    ? z.infer<C[P]>
    : never;
}[keyof C & string];

/**
 * A step's resume points, by the keys it declared. A plain {@link CheckpointStore} (the runner's,
 * a test's) fits wherever one of these is asked for.
 *
 * @example const done = (await ctx.checkpoint.get("done")) ?? 0;
 */
export interface TypedCheckpoints<C extends CheckpointSchemas> {
  get<K extends CheckpointKey<C>>(key: K): Promise<CheckpointValue<C, K> | undefined>;
  set<K extends CheckpointKey<C>>(key: K, value: CheckpointValue<C, K>): Promise<void>;
}

/**
 * A step's context with its checkpoints typed by its declaration. It is still a
 * {@link StepContext}, so helpers shared between steps take it as one; a key they use must be
 * declared by each step that calls them (an undeclared key throws when used).
 */
export type StepContextOf<C extends CheckpointSchemas> = Omit<StepContext, "checkpoint"> & {
  checkpoint: TypedCheckpoints<C> & CheckpointStore;
};

/** The context of a declared step's behaviour: `ContextOf<typeof dbDump>`, for helpers that read its checkpoints. */
export type ContextOf<K extends { checkpoints: CheckpointSchemas }> = StepContextOf<K["checkpoints"]>;

/** What a step type is, apart from what it does: everything the catalogue, the config check and the runner read. */
export interface StepDeclaration<S extends z.ZodType, C extends CheckpointSchemas> {
  /** the name used in the migration file's `uses:` */
  type: string;
  /** one line, shown in the catalogue and `/migrate plan` */
  description: string;
  /** the step's `with:` block */
  input: S;
  /** the migration file sections a runbook using this type must have */
  configSections: readonly SectionPath[];
  /**
   * how long the step may take by default, all attempts together, in seconds; a step's
   * `timeout:` in the migration file overrides it. Leave unset where the time grows with the data
   * or the step waits by design: the stall watchdog stops those when their progress stops.
   */
  timeLimit?: number;
  /**
   * its progress changes steadily while it works (bytes, rows, objects), so progress that stops
   * changing for `engine.stallSeconds` means a stalled connection. Leave unset where one quiet
   * operation may legitimately take long (an index build, a cloud resource coming up).
   */
  stallWatch?: boolean;
  /** a mutating step takes the environment lock; a read-only one does not */
  mutating: boolean;
  /**
   * a new run starts afresh instead of from where the last failed or cancelled run stopped: a
   * comparison is true only when it is made, so what an earlier run found (its parts' results
   * included) must not stand for a rerun after the differences were mended
   */
  freshEachRun?: boolean;
  /** the step's resume points and what each holds */
  checkpoints?: C;
}

/** What a step does, given its parsed input and its typed context (see {@link StepDefinition}). */
export interface StepBehaviour<I, C extends CheckpointSchemas> {
  /**
   * checks a parsed input against what the step was given (the migration file): runs right after
   * parsing, throwing a BadArgument that says what to change
   */
  check?(input: I): void;
  plan(input: I, ctx: StepContextOf<C>): Promise<StepPlan>;
  run(input: I, ctx: StepContextOf<C>): Promise<StepOutcome>;
  verify(input: I, ctx: StepContextOf<C>): Promise<VerifyOutcome>;
  shard?(input: I, part: unknown, ctx: StepContextOf<C>): Promise<unknown>;
  /** tears down what `run` created; `/migrate undo <phase>` calls it, newest step first */
  undo?(input: I, ctx: StepContextOf<C>): Promise<void>;
}

/** A declared step type: its declaration, its parser, and `implement` to give it behaviour. */
export interface StepKind<S extends z.ZodType, C extends CheckpointSchemas>
  extends Readonly<StepDeclaration<S, C>> {
  readonly checkpoints: C;
  /** validates a `with:` block; throws a BadArgument naming the type and every problem */
  parse(raw: unknown): z.infer<S>;
  /** the step the runner runs: this declaration with `behaviour`, checkpoints typed and checked */
  implement(behaviour: StepBehaviour<z.infer<S>, C>): StepDefinition<z.infer<S>>;
}

/** What the catalogue, the migration file's checks and the runner read of a step type. */
export type StepInfo = Readonly<
  Pick<
    StepDeclaration<z.ZodType, CheckpointSchemas>,
    "type" | "description" | "configSections" | "timeLimit" | "stallWatch" | "mutating"
  >
>;

/**
 * Validates a step's `with:` block (an absent block counts as empty), throwing a BadArgument
 * that names the step type and each problem with its field.
 */
export function parseWith<S extends z.ZodType>(type: string, schema: S, raw: unknown): z.infer<S> {
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `${type}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "with"}: ${i.message}`).join("; ")}`,
    );
  }
  return parsed.data;
}

/**
 * Declares a step type once: its name, description, input, config sections, limits and
 * checkpoints. The declaration is static, so the catalogue and the migration file's checks read
 * it without building a client; the step's factory gives it behaviour with `implement`, closing
 * over the ports it was given.
 *
 * @example
 * export const httpCheck = defineStep({ type: "http.check", description: "…", input: Input,
 *   configSections: [], timeLimit: 300, mutating: false });
 * export const createHttpCheckStep = () => httpCheck.implement({ plan, run, verify });
 */
export function defineStep<S extends z.ZodType, C extends CheckpointSchemas = Record<never, z.ZodType>>(
  declaration: StepDeclaration<S, C>,
): StepKind<S, C> {
  const checkpoints = declaration.checkpoints ?? ({} as C);
  const parse = (raw: unknown): z.infer<S> => parseWith(declaration.type, declaration.input, raw);
  const kind: StepKind<S, C> = {
    ...declaration,
    checkpoints,
    parse,
    implement(behaviour) {
      const typed = (ctx: StepContext): StepContextOf<C> => ({
        ...ctx,
        checkpoint: typedCheckpoints(declaration.type, checkpoints, ctx.checkpoint),
      });
      const { undo, shard, check } = behaviour;
      return {
        type: declaration.type,
        description: declaration.description,
        mutating: declaration.mutating,
        ...(declaration.stallWatch === undefined ? {} : { stallWatch: declaration.stallWatch }),
        ...(declaration.freshEachRun ? { freshEachRun: true } : {}),
        parse: check
          ? (raw) => {
              const input = parse(raw);
              check(input);
              return input;
            }
          : parse,
        plan: (input, ctx) => behaviour.plan(input, typed(ctx)),
        run: (input, ctx) => behaviour.run(input, typed(ctx)),
        verify: (input, ctx) => behaviour.verify(input, typed(ctx)),
        ...(shard ? { shard: (input, part, ctx) => shard(input, part, typed(ctx)) } : {}),
        ...(undo ? { undo: (input, ctx) => undo(input, typed(ctx)) } : {}),
      };
    },
  };
  return kind;
}

/** The schema a checkpoint key is declared with: its own, else the longest family it belongs to. */
function schemaFor(checkpoints: CheckpointSchemas, key: string): z.ZodType | undefined {
  const own = checkpoints[key];
  if (own) return own;
  let best: [string, z.ZodType] | undefined;
  for (const [name, schema] of Object.entries(checkpoints)) {
    if (!name.endsWith("*")) continue;
    const prefix = name.slice(0, -1);
    if (key.startsWith(prefix) && (!best || prefix.length > best[0].length)) best = [prefix, schema];
  }
  return best?.[1];
}

/**
 * The store typed by the declaration. A value read back is checked against its schema: one of
 * another shape (written by an older Cutover, or by hand) stops the step with a sentence saying so
 * rather than letting it resume from something it does not understand.
 */
function typedCheckpoints<C extends CheckpointSchemas>(
  type: string,
  checkpoints: C,
  store: CheckpointStore,
): TypedCheckpoints<C> & CheckpointStore {
  const schemaOf = (key: string): z.ZodType => {
    const schema = schemaFor(checkpoints, key);
    // A key not declared is a mistake in the step's code, not in anyone's input.
    if (!schema) throw new Error(`step type ${type} uses checkpoint "${key}" without declaring it`);
    return schema;
  };
  async function get(key: string): Promise<unknown> {
    const schema = schemaOf(key);
    const value = await store.get<unknown>(key);
    if (value === undefined) return undefined;
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new CutoverError(
        ErrorCode.StepFailed,
        `${type}: the saved resume point "${key}" is not in the shape this version of Cutover writes (${parsed.error.issues.map((i) => `${i.path.join(".") || "value"}: ${i.message}`).join("; ")}).`,
        {
          hint: "It was written by another version of Cutover: finish this step with the version that started it, then upgrade.",
        },
      );
    }
    // the value as stored: a schema checks its shape, it does not reshape it
    return value;
  }
  return {
    // the schema of the key has just vouched for the value's type
    get: get as TypedCheckpoints<C>["get"] & CheckpointStore["get"],
    async set(key: string, value: unknown) {
      schemaOf(key);
      await store.set(key, value);
    },
  };
}

/**
 * Builds the registry from implemented steps, keyed by the type each declares.
 * Two implementations of one type are a mistake in the build, not in a file: it throws.
 */
export function stepRegistry(steps: ReadonlyArray<StepDefinition<unknown>>): StepRegistry {
  const map = new Map<string, StepDefinition<unknown>>();
  for (const s of steps) {
    if (map.has(s.type)) throw new Error(`step type ${s.type} is implemented twice`);
    map.set(s.type, s);
  }
  return map;
}

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
