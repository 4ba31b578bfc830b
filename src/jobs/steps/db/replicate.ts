import path from "node:path";
import type pg from "pg";
import { z } from "zod";
import { connect, describeUrl, type Endpoint } from "../../../cloud/postgres.js";
import {
  createSubscription,
  type Direction,
  dropPublication,
  dropSlot,
  dropSubscription,
  getSubscription,
  type Lag,
  listSlots,
  readChangeCounters,
  readLag,
  recordStartCounters,
  replicationNames,
  schemaDifferences,
  schemaShape,
} from "../../../cloud/replication.js";
import { requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode, notSet } from "../../../errors.js";
import { audit } from "../../../store/audit.js";
import type { StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { readManifest, readMarker } from "./dump-files.js";
import { sourceEndpoint, targetEndpoint } from "./endpoints.js";
import { CommonOptions, dumpRoot } from "./options.js";

const Input = CommonOptions.extend({
  /** how long to wait for the subscription to catch up with the source after it starts */
  catchUpSeconds: z.number().int().min(1).max(86_400).default(600),
});
export type ReplicateInput = z.infer<typeof Input>;

export const dbReplicate = defineStep({
  type: "db.replicate",
  description:
    "start logical replication from the source to the target on the slot of the dump's snapshot, and wait until it has caught up",
  input: Input,
  configSections: ["source.database", "target.rds", "replication"],
  mutating: true,
});

/** The source's URL as the target server reaches it (its subscription connects there). */
export function sourceConnInfo(deps: StepDeps): { url: string; from: string } {
  const cfg = requireSection(deps.file, "replication");
  const name = cfg.sourceConnectionEnv ?? requireSection(deps.file, "source.database").urlEnv;
  const url = deps.env[name];
  if (!url)
    throw notSet(name, {
      hint: `Set ${name} to the source database's URL as the target server reaches it, then run it again.`,
    });
  return { url, from: name };
}

/** The target's URL as the source server reaches it (the reverse subscription connects there). */
export async function targetConnInfo(deps: StepDeps): Promise<{ url: string; from: string }> {
  const cfg = requireSection(deps.file, "replication");
  if (cfg.targetConnectionEnv) {
    const url = deps.env[cfg.targetConnectionEnv];
    if (!url)
      throw notSet(cfg.targetConnectionEnv, {
        hint: `Set ${cfg.targetConnectionEnv} to the target database's URL as the source server reaches it.`,
      });
    return { url, from: cfg.targetConnectionEnv };
  }
  const ep = await targetEndpoint(deps);
  return { url: ep.url, from: ep.from };
}

/** Opens both sides (writable: replication objects are created and dropped), closing both on failure. */
export async function openBoth(
  deps: StepDeps,
  opts: { timeoutSeconds: number; appName: string },
): Promise<{
  source: pg.Client;
  target: pg.Client;
  sourceEp: Endpoint;
  targetEp: Endpoint;
  close(): Promise<void>;
}> {
  const sourceEp = sourceEndpoint(deps);
  const targetEp = await targetEndpoint(deps);
  const source = await connect(sourceEp, opts);
  let target: pg.Client;
  try {
    target = await connect(targetEp, opts);
  } catch (err) {
    await source.end().catch(() => undefined);
    throw err;
  }
  return {
    source,
    target,
    sourceEp,
    targetEp,
    async close() {
      await Promise.all([source.end().catch(() => undefined), target.end().catch(() => undefined)]);
    },
  };
}

/** How a step connects to both sides: its own timeout, and a name that shows in pg_stat_activity. */
export function connectOptions(
  input: { connectTimeoutSeconds: number },
  appName: string,
): { timeoutSeconds: number; appName: string } {
  return { timeoutSeconds: input.connectTimeoutSeconds, appName };
}

/** Runs `fn` with both sides open, and always closes both. */
export async function withBoth<T>(
  deps: StepDeps,
  opts: { timeoutSeconds: number; appName: string },
  fn: (both: Awaited<ReturnType<typeof openBoth>>) => Promise<T>,
): Promise<T> {
  const both = await openBoth(deps, opts);
  try {
    return await fn(both);
  } finally {
    await both.close();
  }
}

/** Words for a lag: "0.4 s (12 kB)". */
export function describeLag(lag: Lag): string {
  const kb = lag.bytes / 1024;
  const size = kb < 1024 ? `${kb.toFixed(kb < 10 ? 1 : 0)} kB` : `${(kb / 1024).toFixed(1)} MB`;
  return `${lag.seconds.toFixed(1)} s (${size} of WAL)`;
}

/**
 * Waits until a subscription has caught up: its publisher's slot connected and the lag within
 * `maxSeconds`. Fails in words when the subscriber stays away (an apply error: a conflict, a
 * missing table) or the slot was lost.
 */
export async function waitCaughtUp(
  publisher: pg.Client,
  slot: string,
  opts: {
    maxSeconds: number;
    timeoutMs: number;
    signal: AbortSignal;
    onLag?: (lag: Lag) => void;
    subscriberSide: string;
  },
): Promise<Lag> {
  const started = performance.now();
  let last: Lag | null = null;
  for (;;) {
    last = await readLag(publisher, slot);
    if (!last)
      throw new CutoverError(
        ErrorCode.StepFailed,
        `The replication slot ${slot} is gone from the publisher.`,
        {
          hint: "Neon removes slots unused for about 40 hours, and an operator may have dropped it: copy again (db.dump, db.restore, db.replicate) after the teardown step.",
        },
      );
    if (last.walStatus === "lost")
      throw new CutoverError(
        ErrorCode.StepFailed,
        `The replication slot ${slot} is lost: the publisher removed WAL it still needed.`,
        {
          hint: "Replication cannot resume from it: run the teardown step, then copy again.",
        },
      );
    opts.onLag?.(last);
    if (last.connected && last.seconds <= opts.maxSeconds && last.bytes < 16 * 1024 * 1024) return last;
    if (performance.now() - started > opts.timeoutMs) {
      throw new CutoverError(
        ErrorCode.TimedOut,
        last.connected
          ? `Replication is still ${describeLag(last)} behind after ${Math.round(opts.timeoutMs / 1000)} s.`
          : `The ${opts.subscriberSide}'s subscription is not connected to slot ${slot} (it stops on an apply error: a conflicting row, a missing table or column).`,
        {
          hint: last.connected
            ? "The source writes faster than the target applies: wait, or raise the target's resources, then run the step again."
            : `Read the ${opts.subscriberSide} server's log for "logical replication" errors, fix the row or table it names, then run the step again.`,
        },
      );
    }
    if (opts.signal.aborted)
      throw new CutoverError(ErrorCode.Cancelled, "cancelled while waiting for replication");
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * `db.replicate`: starts logical replication from the source to the target on the slot whose
 * snapshot db.dump took (so the target, restored from that dump, receives exactly the changes
 * made since), then waits until it has caught up. Idempotent: a running subscription is checked,
 * not created again. Verify proves it is streaming, within the lag limit, and that the two
 * schemas still match (DDL is not replicated).
 */
export function createDbReplicateStep(deps: StepDeps): StepDefinition<ReplicateInput> {
  const names = () => replicationNames(deps.file.environment, "fwd");
  const cfg = () => requireSection(deps.file, "replication");

  /** The finished restore of a dump taken for replication, or why there is none. */
  async function restoredSlot(
    input: ReplicateInput,
  ): Promise<{ slot: string; publication: string; dump: string }> {
    const root = dumpRoot(deps, input);
    const marker = await readMarker(root);
    const dumpName = marker?.phase === "done" ? marker.dump : undefined;
    if (!dumpName) {
      throw new CutoverError(ErrorCode.BadArgument, "No finished restore to replicate onto.", {
        hint: "Run db.dump and db.restore first (the data phase): replication starts from the dump's snapshot.",
      });
    }
    const manifest = await readManifest(path.join(root, dumpName));
    if (!manifest?.replication) {
      throw new CutoverError(
        ErrorCode.BadArgument,
        `The restored dump ${dumpName} was not taken for replication (the migration file had no \`replication\` section then).`,
        {
          hint: "Run db.dump and db.restore again now that `replication` is set: the new dump creates the slot replication starts from.",
        },
      );
    }
    return { ...manifest.replication, dump: dumpName };
  }

  return dbReplicate.implement({
    async plan(input) {
      const n = names();
      return withBoth(deps, connectOptions(input, "cutover-replicate"), async (both) => {
        const sub = await getSubscription(both.target, n.subscription);
        if (sub) {
          const lag = await readLag(both.source, n.slot);
          return {
            summary: `replication already runs (${sub.enabled ? "enabled" : "DISABLED"}${lag ? `, lag ${describeLag(lag)}` : ", its slot is missing"})`,
            changes: [{ action: "none", target: `subscription ${n.subscription}` }],
          };
        }
        const r = await restoredSlot(input).catch((err: Error) => ({ error: err.message }));
        return {
          summary:
            "error" in r
              ? `cannot start yet: ${r.error}`
              : `would subscribe the target (${describeUrl(both.targetEp.url)}) to the source's publication ${r.publication} on slot ${r.slot} (the snapshot of dump ${r.dump}), without copying data again`,
          changes: [
            {
              action: "create",
              target: `subscription ${n.subscription} on the target`,
              detail: `connects to the source as ${sourceConnInfo(deps).from} names it; copy_data = false`,
            },
          ],
        };
      });
    },

    async run(input, ctx) {
      const n = names();
      const replication = cfg();
      return withBoth(deps, connectOptions(input, "cutover-replicate"), async (both) => {
        let sub = await getSubscription(both.target, n.subscription);
        if (!sub) {
          const r = await restoredSlot(input);
          const slots = await listSlots(both.source);
          if (!slots.some((s) => s.name === r.slot)) {
            throw new CutoverError(
              ErrorCode.BadArgument,
              `The slot ${r.slot} that dump ${r.dump} was taken with is gone from the source: the changes since that dump cannot be streamed.`,
              { hint: "Run db.dump and db.restore again (they make a new slot), then this step." },
            );
          }
          const conn = sourceConnInfo(deps);
          // before the first change arrives: the switch's fast verify reads what changed since
          const counters = await readChangeCounters(both.target);
          try {
            await createSubscription(both.target, {
              name: n.subscription,
              conninfo: conn.url,
              publication: r.publication,
              slot: r.slot,
            });
            await recordStartCounters(both.target, n.subscription, counters);
          } catch (err) {
            throw new CutoverError(
              ErrorCode.StepFailed,
              `The target could not subscribe to the source: ${(err as Error).message.replace(conn.url, conn.from)}`,
              {
                hint: `The target server itself connects to the source with ${conn.from}: it must reach that host and port (on RDS, from the VPC: the source must accept connections from the internet or a peered network) and the role must be allowed to replicate. Set replication.sourceConnectionEnv to another URL if the target reaches the source differently.`,
              },
            );
          }
          if (deps.db)
            await audit(deps.db, {
              actor: ctx.run.requestedBy,
              action: "replication.start",
              target: deps.file.environment,
              outcome: "ok",
              runId: ctx.run.id,
              details: {
                direction: "fwd",
                subscription: n.subscription,
                slot: r.slot,
                dump: r.dump,
              },
            });
          sub = await getSubscription(both.target, n.subscription);
        }
        const started = performance.now();
        const lag = await waitCaughtUp(both.source, n.slot, {
          maxSeconds: replication.maxLagSeconds,
          timeoutMs: input.catchUpSeconds * 1000,
          signal: ctx.signal,
          subscriberSide: "target",
          onLag: (l) =>
            ctx.progress({
              done: Math.round((performance.now() - started) / 1000),
              unit: "s",
              message: `replicating: ${describeLag(l)} behind`,
              activity: Number.MAX_SAFE_INTEGER - l.bytes,
            }),
        });
        return {
          summary: `replicating source → target on slot ${n.slot}: ${describeLag(lag)} behind${sub?.enabled === false ? " (the subscription was disabled: enable it)" : ""}`,
          figures: { lagSeconds: Number(lag.seconds.toFixed(3)), lagBytes: lag.bytes },
        };
      });
    },

    async verify(input) {
      const n = names();
      return withBoth(deps, connectOptions(input, "cutover-replicate"), async (both) => {
        const sub = await getSubscription(both.target, n.subscription);
        const lag = await readLag(both.source, n.slot);
        const shapes = schemaDifferences(await schemaShape(both.source), await schemaShape(both.target));
        const problems = [
          !sub ? `no subscription ${n.subscription} on the target` : "",
          sub && !sub.enabled ? "the subscription is disabled" : "",
          !lag ? `the slot ${n.slot} is missing on the source` : "",
          lag && !lag.connected
            ? "the subscriber is not connected to its slot (an apply error? see the target's log)"
            : "",
          lag && lag.seconds > cfg().maxLagSeconds
            ? `lag ${describeLag(lag)} over ${cfg().maxLagSeconds} s`
            : "",
          shapes.length ? `schemas differ (DDL is not replicated): ${shapes.slice(0, 3).join("; ")}` : "",
        ].filter(Boolean);
        return {
          ok: problems.length === 0,
          summary: problems.length
            ? problems.join("; ")
            : `streaming, ${describeLag(lag!)} behind; schemas match`,
          ...(lag ? { figures: { lagSeconds: Number(lag.seconds.toFixed(3)), lagBytes: lag.bytes } } : {}),
        };
      });
    },

    async undo(input, ctx) {
      await teardown(deps, input, ctx, ["fwd"]);
    },
  });
}

/** What a teardown dropped, by side. */
export interface TeardownReport {
  dropped: string[];
  problems: string[];
}

/**
 * Drops the subscriptions, slots and publications of the given directions on both sides, in
 * that order (a subscription first, so its slot is free). Runs every part even when one fails,
 * and says what it could not drop: a forgotten slot keeps WAL on its server until the disk fills.
 */
export async function teardown(
  deps: StepDeps,
  input: { connectTimeoutSeconds: number },
  ctx: Pick<StepContext, "run" | "log">,
  directions: Direction[],
): Promise<TeardownReport> {
  const report: TeardownReport = { dropped: [], problems: [] };
  await withBoth(deps, connectOptions(input, "cutover-teardown"), async (both) => {
    for (const d of directions) {
      const n = replicationNames(deps.file.environment, d);
      // forward: publisher = source, subscriber = target; reverse: the other way round
      const [publisher, subscriber, pubSide, subSide] =
        d === "fwd"
          ? [both.source, both.target, "source", "target"]
          : [both.target, both.source, "target", "source"];
      const attempt = async (what: string, fn: () => Promise<boolean>) => {
        try {
          if (await fn()) report.dropped.push(what);
        } catch (err) {
          report.problems.push(`${what}: ${(err as Error).message}`);
        }
      };
      await attempt(`subscription ${n.subscription} on the ${subSide}`, () =>
        dropSubscription(subscriber, n.subscription),
      );
      await attempt(`slot ${n.slot} on the ${pubSide}`, () => dropSlot(publisher, n.slot));
      await attempt(`publication ${n.publication} on the ${pubSide}`, () =>
        dropPublication(publisher, n.publication),
      );
    }
  });
  if (deps.db)
    await audit(deps.db, {
      actor: ctx.run.requestedBy,
      action: "replication.teardown",
      target: deps.file.environment,
      outcome: report.problems.length ? "failed" : "ok",
      runId: ctx.run.id,
      details: { directions, ...report },
    });
  return report;
}

const TeardownInput = CommonOptions.extend({
  /** which replication to end: both (default), or only forward / reverse */
  direction: z.enum(["both", "fwd", "rev"]).default("both"),
});
export type TeardownInput = z.infer<typeof TeardownInput>;

export const dbReplicationTeardown = defineStep({
  type: "db.replication-teardown",
  description: "drop every subscription, publication and replication slot Cutover created on either database",
  input: TeardownInput,
  configSections: ["source.database", "target.rds"],
  timeLimit: 300,
  mutating: true,
});

/**
 * `db.replication-teardown`: drops every subscription, replication slot and publication Cutover
 * created for this environment, on both databases. Ending reverse replication gives up the
 * lossless rollback: the plan says so before it runs.
 */
export function createDbReplicationTeardownStep(deps: StepDeps): StepDefinition<TeardownInput> {
  const directions = (input: TeardownInput): Direction[] =>
    input.direction === "both" ? ["fwd", "rev"] : [input.direction];
  return dbReplicationTeardown.implement({
    async plan(input) {
      const found = await inventory(deps, input);
      const mine = found.filter((f) => directions(input).some((d) => f.name.endsWith(`_${d}`)));
      return {
        summary: mine.length
          ? `would drop ${mine.length} replication object${mine.length === 1 ? "" : "s"}${directions(input).includes("rev") && mine.some((m) => m.name.endsWith("_rev")) ? " — this ends reverse replication: a rollback after it leaves the writes made on the new stack behind" : ""}`
          : "nothing to drop: no replication objects of this environment",
        changes: mine.map((m) => ({
          action: "delete" as const,
          target: `${m.kind} ${m.name} on the ${m.side}`,
        })),
      };
    },
    async run(input, ctx) {
      const report = await teardown(deps, input, ctx, directions(input));
      if (report.problems.length)
        throw new CutoverError(ErrorCode.StepFailed, `Could not drop: ${report.problems.join("; ")}`, {
          hint: "Run the step again; a slot still in use is freed when its subscription is gone.",
        });
      return {
        summary: report.dropped.length ? `dropped ${report.dropped.join(", ")}` : "nothing was left to drop",
        figures: { dropped: report.dropped.length },
      };
    },
    async verify(input) {
      const left = (await inventory(deps, input)).filter((f) =>
        directions(input).some((d) => f.name.endsWith(`_${d}`)),
      );
      return {
        ok: left.length === 0,
        summary: left.length
          ? `still there: ${left.map((l) => `${l.kind} ${l.name} on the ${l.side}`).join(", ")}`
          : "no subscription, slot or publication of this environment is left on either side",
      };
    },
  });
}

/** Every replication object of this environment on both sides. */
export async function inventory(
  deps: StepDeps,
  input: { connectTimeoutSeconds: number },
): Promise<
  Array<{ kind: "subscription" | "slot" | "publication"; name: string; side: "source" | "target" }>
> {
  const out: Array<{
    kind: "subscription" | "slot" | "publication";
    name: string;
    side: "source" | "target";
  }> = [];
  await withBoth(deps, connectOptions(input, "cutover-teardown"), async (both) => {
    for (const d of ["fwd", "rev"] as const) {
      const n = replicationNames(deps.file.environment, d);
      for (const [side, client] of [
        ["source", both.source],
        ["target", both.target],
      ] as const) {
        if (await getSubscription(client, n.subscription))
          out.push({ kind: "subscription", name: n.subscription, side });
        if ((await listSlots(client, n.slot)).some((s) => s.name === n.slot))
          out.push({ kind: "slot", name: n.slot, side });
        const pub = await client.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [n.publication]);
        if (pub.rowCount) out.push({ kind: "publication", name: n.publication, side });
      }
    }
  });
  return out;
}
