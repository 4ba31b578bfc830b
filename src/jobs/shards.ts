import { createHash } from "node:crypto";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import type { ObjectStore } from "../cloud/object-store.js";
import type { MigrationFile } from "../config/schema.js";
import { CutoverError, describeError, ErrorCode } from "../errors.js";
import type { Db } from "../store/client.js";
import { checkpointStore, checkpointsUnder, deleteCheckpoint, loadExecution } from "../store/steps.js";
import type { Progress, ShardPool, StepContext, StepDefinition, StepRegistry } from "./define-step.js";
import { findStep } from "./runbook.js";
import { type KeySplit, type ListingOptions, splitKeySpace } from "./steps/storage/listing.js";
import { StepWatchdog } from "./watchdog.js";

/**
 * Parts of one step execution as pg-boss jobs: a step that splits its work (storage.sync into key
 * ranges) hands each part to the `cutover-shard` queue, any worker on any replica takes one, and
 * the step waits for them all, summing their progress into its own. pg-boss is the scheduler: its
 * heartbeat fails the job of a worker that died, and its retry hands the part to another, which
 * resumes from the part's own checkpoint. Everything a part keeps lives in the execution's
 * checkpoints under `shard/<i>/` (its resume point, its last progress, its result); a second set of
 * parts of the same execution (storage.sync's check after its copy) is named: `shard/<name>/<i>/`.
 */
export const SHARD_QUEUE = "cutover-shard";

interface ShardJob {
  executionId: string;
  /** "" for the step's first set of parts */
  name?: string;
  index: number;
  part: unknown;
  /** the migration file the run started with (its sides and runbook), as a digest */
  file: string;
}

/** What a part depends on in the migration file: a replica with another file must not work it. */
function fileDigest(file: MigrationFile): string {
  const { source, target, runbook } = file;
  return createHash("sha256").update(JSON.stringify({ source, target, runbook })).digest("hex").slice(0, 16);
}

export interface ShardDeps {
  db: Db;
  boss: PgBoss;
  registry: StepRegistry;
  file: MigrationFile;
  log: Logger;
}

const prefix = (index: number, name = "") => `shard/${name ? `${name}/` : ""}${index}/`;

/** Creates the queue parts travel on. */
export async function prepareShardQueue(boss: PgBoss): Promise<void> {
  // A worker that stops beating for 10 s (pg-boss beats every 5 s while the handler runs) is taken
  // for dead: its part is retried elsewhere at the supervisor's next pass.
  await boss.createQueue(SHARD_QUEUE, {
    retryLimit: 5,
    retryDelay: 1,
    heartbeatSeconds: 10,
    expireInSeconds: 24 * 3600,
  });
}

/**
 * Takes parts from the queue, `concurrency` at once in this process, and runs each with its
 * step's `shard()`: its own checkpoint, its own progress (stored for the waiting step to sum), and
 * its own stall watchdog, so a stuck part is retried alone.
 */
export async function workShards(
  deps: ShardDeps,
  opts: { concurrency: number; signal: AbortSignal },
): Promise<void> {
  await deps.boss.work<ShardJob>(
    SHARD_QUEUE,
    { localConcurrency: opts.concurrency, pollingIntervalSeconds: 0.5 },
    async ([job]) => {
      if (!job) return;
      return runShard(deps, job.data, AbortSignal.any([job.signal, opts.signal]));
    },
  );
}

async function runShard(deps: ShardDeps, job: ShardJob, signal: AbortSignal): Promise<unknown> {
  const { db, registry, file, log } = deps;
  const own = checkpointStore(db, job.executionId, prefix(job.index, job.name));
  if (job.file !== fileDigest(file)) {
    // pg-boss retries it, and another replica (one with the run's file) takes it
    throw new Error("this replica's migration file differs from the one the run started with");
  }
  const done = await own.get<{ result: unknown }>("result");
  if (done) return done.result; // finished before, its completion lost: nothing to do again
  const execution = await loadExecution(db, job.executionId);
  if (!execution) throw new Error(`no step execution ${job.executionId}`);
  const found = findStep(file, execution.step);
  const definition = found
    ? (registry.get(found.step.uses) as StepDefinition<unknown> | undefined)
    : undefined;
  if (!found || !definition?.shard) throw new Error(`step \`${execution.step}\` cannot run parts here`);
  const input = definition.parse(found.step.with);
  const watchdog = new StepWatchdog({
    limitSeconds: undefined,
    stallSeconds: definition.stallWatch ? file.engine.stallSeconds : undefined,
  });
  const partSignal = watchdog.beginAttempt(signal);
  const shardLog = log.child({ runId: execution.runId, step: execution.step, shard: job.index });
  let last = 0;
  let writing = Promise.resolve();
  const ctx: StepContext = {
    log: shardLog,
    run: {
      id: execution.runId,
      env: execution.run.env,
      requestedBy: execution.run.requestedBy,
      dryRun: execution.run.dryRun,
      options: (execution.run.options ?? {}) as Record<string, unknown>,
    },
    signal: partSignal,
    attempt: 1,
    progress: (p) => {
      watchdog.progress(p);
      if (Date.now() - last < 1_000) return;
      last = Date.now();
      writing = writing
        .then(() => own.set("progress", { ...p, worker: process.pid }))
        .catch((err) => shardLog.warn({ err }, "could not store a part's progress"));
    },
    checkpoint: own,
  };
  try {
    shardLog.info({ worker: process.pid }, "working a part of the step");
    const result = await watchdog.guard(definition.shard(input, job.part, ctx));
    await writing;
    // with the part it answers: a step that sends a range again changed (storage.sync's next
    // round after its check found it short) does not take this result for the new one
    await own.set("result", { result, worker: process.pid, part: job.part });
    return result;
  } catch (err) {
    await writing;
    const message = watchdog.tripped
      ? watchdog.describe(`${execution.step} part ${job.index + 1}`, undefined)
      : describeError(err);
    await own.set("error", { message, worker: process.pid }).catch(() => undefined);
    throw new Error(message);
  } finally {
    watchdog.stop();
  }
}

/**
 * Whether two parts are the same, as the queue and the checkpoint table pass them: JSON read back
 * from jsonb has its keys in jsonb's order, not the order they were written in.
 */
function samePart(a: unknown, b: unknown): boolean {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/**
 * The pool a step gets as `ctx.shards`: sends the parts not finished yet (by an earlier attempt),
 * then waits for every part, reporting their summed progress, and returns their results in order.
 * A part that failed for good (pg-boss retried it and gave up) fails the step once the others
 * have ended; a cancel or the watchdog cancels the parts still queued or at work.
 */
export function shardPool(
  deps: ShardDeps,
  executionId: string,
  stepSignal: AbortSignal,
  progress: (p: Progress) => void,
): ShardPool {
  return {
    async run<R>(
      parts: unknown[],
      summarize: (each: Array<Progress | undefined>, finished: number) => Progress,
      name = "",
    ) {
      const { db, boss } = deps;
      const jobIds: Array<string | undefined> = [];
      for (const [index, part] of parts.entries()) {
        const own = checkpointStore(db, executionId, prefix(index, name));
        const kept = await own.get<{ part?: unknown }>("result");
        // (a result stored before results named their part answers the part as it was then)
        if (kept && (kept.part === undefined || samePart(kept.part, part))) continue;
        // a part still queued or at work from an earlier attempt is waited for, not sent twice
        const sent = await own.get<{ id: string }>("job");
        const existing = sent ? await boss.getJobById<ShardJob>(SHARD_QUEUE, sent.id) : null;
        if (
          existing &&
          ["created", "retry", "active"].includes(existing.state) &&
          samePart(existing.data.part, part)
        ) {
          jobIds[index] = existing.id;
          continue;
        }
        if (kept) await deleteCheckpoint(db, executionId, `${prefix(index, name)}result`);
        await deleteCheckpoint(db, executionId, `${prefix(index, name)}error`);
        const id = await boss.send(SHARD_QUEUE, {
          executionId,
          name,
          index,
          part,
          file: fileDigest(deps.file),
        } satisfies ShardJob);
        if (!id) throw new CutoverError(ErrorCode.StepFailed, `could not queue part ${index + 1}`);
        await own.set("job", { id });
        jobIds[index] = id;
      }
      for (;;) {
        const rows = await checkpointsUnder(db, executionId, name ? `shard/${name}/` : "shard/");
        const each: Array<Progress | undefined> = parts.map(() => undefined);
        const results = new Map<number, R>();
        const errors = new Map<number, string>();
        for (const row of rows) {
          const m = (
            name
              ? /^shard\/[a-z-]+\/(\d+)\/(progress|result|error)$/
              : /^shard\/(\d+)\/(progress|result|error)$/
          ).exec(row.key);
          if (!m) continue;
          const i = Number(m[1]);
          if (m[2] === "progress") each[i] = row.value as unknown as Progress;
          else if (m[2] === "result") results.set(i, (row.value as { result: R }).result);
          else errors.set(i, (row.value as { message: string }).message);
        }
        progress(summarize(each, results.size));
        if (results.size === parts.length) return parts.map((_, i) => results.get(i) as R);
        // parts pg-boss has given up on
        let open = 0;
        const failed: string[] = [];
        for (const [i, id] of jobIds.entries()) {
          if (!id || results.has(i)) continue;
          const job = await boss.getJobById(SHARD_QUEUE, id);
          if (job && ["failed", "cancelled"].includes(job.state))
            failed.push(`part ${i + 1}: ${errors.get(i) ?? job.state}`);
          else open++;
        }
        if (open === 0 && failed.length > 0) {
          throw new CutoverError(
            ErrorCode.StepFailed,
            `${failed.length} of ${parts.length} parts failed (${failed.slice(0, 3).join("; ")})`,
            {
              hint: "Run the step again: the finished parts are kept, the others resume from their checkpoints.",
            },
          );
        }
        if (stepSignal.aborted) {
          const shutdown = (stepSignal.reason as { kind?: string } | undefined)?.kind === "shutdown";
          // at shutdown the parts go on in other workers; the resumed step waits for them again
          if (!shutdown) {
            const live = jobIds.filter((id, i): id is string => id !== undefined && !results.has(i));
            if (live.length) await boss.cancel(SHARD_QUEUE, live).catch(() => undefined);
          }
          stepSignal.throwIfAborted();
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    },
  };
}

/**
 * A step's key ranges, split once per execution: the first call samples the source listing
 * (reporting how far it got) and keeps the split in the checkpoint, so a retry, a resumed step and
 * a second pass over the same ranges (storage.sync's check) reuse it and finished ranges stay
 * finished.
 */
export async function splitOnce(
  source: ObjectStore,
  parts: number,
  opts: Omit<ListingOptions, "signal" | "onPage">,
  ctx: Pick<StepContext, "checkpoint" | "progress" | "signal">,
): Promise<KeySplit> {
  const kept = await ctx.checkpoint.get<KeySplit>("split");
  if (kept) return kept;
  const split = await splitKeySpace(source, parts, {
    ...opts,
    signal: ctx.signal,
    onListed: (n) =>
      ctx.progress({
        done: 0,
        activity: n,
        unit: "objects",
        message: `splitting the key space into ${parts} ranges: ${n.toLocaleString("en-US")} listed`,
      }),
  });
  await ctx.checkpoint.set("split", split);
  return split;
}
