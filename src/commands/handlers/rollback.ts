import type { RateLimitWait } from "../../cloud/cloudflare.js";
import { CutoverError, describeError, ErrorCode } from "../../errors.js";
import {
  findRollbackTargets,
  type RollbackReport,
  type RollbackTargets,
  rollback,
} from "../../jobs/cutover/apply.js";
import { type LiveRollbackReport, rollbackDatabase } from "../../jobs/cutover/live.js";
import { copyUploadsBack } from "../../jobs/cutover/objects-back.js";
import { rollbackLockKey } from "../../jobs/locks.js";
import { hashChange, voidOtherApprovals } from "../../store/approvals.js";
import { audit, auditEventAfter, lastAuditEvent } from "../../store/audit.js";
import { unfinishedRunsOf } from "../../store/runs.js";
import { formatDuration } from "../../views/blocks.js";
import type { CommandDeps } from "../context.js";
import { cutoverDeps } from "./cutover.js";

/** The hash a /rollback modal is bound to: the values it showed, so a submission restores exactly those. */
export function targetsHash(targets: RollbackTargets): string {
  return hashChange(targets);
}

export function reportText(
  by: string,
  report: RollbackReport,
  targets: RollbackTargets,
  viaSlack: boolean,
): string {
  const who = viaSlack ? `<@${by}>` : by;
  const head =
    report.complete && report.healthy !== false
      ? `✅ Rollback by ${who} done in ${formatDuration(report.ms)}: production is back on the old services.`
      : `⚠️ Rollback by ${who} is INCOMPLETE after ${formatDuration(report.ms)}: run /rollback again to finish the rest.`;
  const lines = report.items.map(
    (i) => `${i.ok ? "✅" : "❌"} ${i.what}: ${i.detail}${i.from ? ` (value from the ${i.from})` : ""}`,
  );
  lines.push(
    `${report.healthy === null ? "❔" : report.healthy ? "✅" : "❌"} old app health: ${report.healthDetail}`,
  );
  return `${head}\n${lines.join("\n")}\n(values from the ${targets.source})`;
}

/**
 * The emergency way back. It does not wait for the environment lock (it is the way out of
 * whatever holds it) and cancels a cutover run still watching. Every part is tried; the report
 * says what is restored and what is not.
 */
export async function performRollback(
  deps: CommandDeps,
  by: string,
  opts: {
    reason?: string | null;
    viaSlack: boolean;
    /** the values the person confirmed (the modal's): refused when the values to restore differ now */
    expectHash?: string;
    /** called once the rollback holds its lock, before anything changes: "Rollback started" */
    onStarted?: () => Promise<void>;
  },
): Promise<{ report: RollbackReport; targets: RollbackTargets; text: string }> {
  const cd = cutoverDeps(deps);
  const targets = await findRollbackTargets(cd);
  if (!targets) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      "This migration switches no DNS: there is nothing to roll back.",
    );
  }
  const cutoverSteps = deps.file.runbook.phases
    .flatMap((p) => p.steps)
    .filter((s) => s.uses === "dns.cutover")
    .map((s) => s.id);
  let result: { report: RollbackReport; targets: RollbackTargets; text: string } | undefined;
  // One rollback at a time across replicas: a second press while one is under way would race it
  // (two redeploys, interleaved writes); the lock dies with its session, so a crash frees it.
  const ran = await deps.runner.locks.rollback(deps.file.environment, async () => {
    // read again under the lock: a rollback that finished meanwhile may have changed the record
    const now = (await findRollbackTargets(cd)) ?? targets;
    if (opts.expectHash !== undefined && targetsHash(now) !== opts.expectHash) {
      throw new CutoverError(
        ErrorCode.BadArgument,
        "The values to restore changed since the rollback form was opened, so nothing was changed.",
        { hint: "Run /rollback again: the form shows the values it would restore now." },
      );
    }
    await opts.onStarted?.();
    result = await rollbackLocked(deps, cd, by, opts, now, cutoverSteps);
  });
  if (!ran || !result) {
    const last = await lastAuditEvent(deps.db, "rollback.start", deps.file.environment);
    const who = last ? (opts.viaSlack ? `<@${last.actor}>` : last.actor) : "someone";
    throw new CutoverError(
      ErrorCode.BadArgument,
      `A rollback by ${who} is already under way${last ? ` (started ${last.at.toISOString().slice(11, 19)} UTC)` : ""}.`,
      {
        hint: "Its report comes into the channel within 2 minutes; run /rollback again after it if anything is left.",
      },
    );
  }
  return result;
}

/** The advisory lock a rollback holds while it works (see src/jobs/locks.ts). */
export { rollbackLockKey };

async function rollbackLocked(
  deps: CommandDeps,
  cd: ReturnType<typeof cutoverDeps>,
  by: string,
  opts: { reason?: string | null; viaSlack: boolean },
  targets: RollbackTargets,
  cutoverSteps: string[],
): Promise<{ report: RollbackReport; targets: RollbackTargets; text: string }> {
  const running = await unfinishedRunsOf(deps.db, cutoverSteps);
  for (const r of running) await deps.runner.cancel(r.id, by).catch(() => undefined);
  await audit(deps.db, {
    actor: by,
    action: "rollback.start",
    target: deps.file.environment,
    outcome: "started",
    details: { reason: opts.reason ?? null, source: targets.source, targets } as unknown as Record<
      string,
      unknown
    >,
  });
  // A rate-limit wait is said in the channel: what the rollback waits for, and until when.
  const onWait = (w: RateLimitWait) => {
    if (!opts.viaSlack || !deps.slack) return;
    deps.slack
      .post(deps.file.slack.channel, {
        text: `⏳ Rollback waiting for Cloudflare's rate limit: ${Math.ceil(w.waitMs / 1000)} s, until ${w.until.toISOString().slice(11, 19)} UTC, before ${w.what}.`,
        blocks: [],
      })
      .catch((err: unknown) =>
        deps.log.warn({ err: (err as Error).message }, "could not post the rate-limit wait"),
      );
  };
  const began = performance.now();
  const signal = AbortSignal.timeout(120_000);
  let report: RollbackReport | undefined;
  const switchBack = async () => {
    report = await rollback(cd, targets, signal, onWait);
  };
  // A live migration: with reverse replication the data comes home first (target frozen, drained,
  // sequences), then DNS and Pages switch back, then the source opens. Without it DNS goes back all
  // the same and the report says what data is not back.
  let data: LiveRollbackReport | undefined;
  if (deps.live) {
    try {
      data = await rollbackDatabase(deps.live, { actor: by, signal, beforeOpen: switchBack });
    } catch (err) {
      data = { lossless: false, items: [{ what: "database", ok: false, detail: describeError(err) }] };
    }
  }
  if (!report) await switchBack();
  if (!report) throw new CutoverError(ErrorCode.StepFailed, "the rollback produced no report");
  // The uploads customers made on AWS since the switch go back to the old bucket (after DNS: the
  // old stack is serving again; the listing of the new bucket is not part of the write outage).
  if (deps.live && deps.file.source?.storage && deps.file.target?.s3) {
    const switched = await lastAuditEvent(deps.db, "cutover.switched", deps.file.environment);
    if (switched) {
      const item = { what: "objects uploaded since the switch", ok: false, detail: "" };
      try {
        const back = await copyUploadsBack(deps.live.step, switched.at, signal);
        item.ok = back.failed.length === 0;
        item.detail = `${back.copied} copied back to the old bucket, ${back.present} already there, of ${back.examined} written to the new bucket since ${switched.at.toISOString()} (${back.ms} ms)${
          back.failed.length
            ? `; NOT copied: ${back.failed
                .slice(0, 5)
                .map((f) => `${f.key} (${f.error})`)
                .join(", ")} — run /rollback again`
            : ""
        }`;
      } catch (err) {
        item.detail = `not copied back: ${describeError(err)} — run /rollback again, or storage.sync with the buckets swapped`;
      }
      data ??= { lossless: true, items: [] };
      data.items.push(item);
      if (!item.ok) data.lossless = false;
    }
  }
  if (data) {
    report.items.push(
      ...data.items.map((i) => ({
        ...i,
        what: i.what.startsWith("objects") ? i.what : `database: ${i.what}`,
      })),
    );
    report.complete = report.complete && data.lossless;
    // the bot-side time of the whole way back, the data's included
    report.ms = performance.now() - began;
  }
  // An approval is good for the one switch it was given for: after a rollback no request still
  // pending or approved may switch production again; a new cutover needs a new approval.
  const voided = await voidOtherApprovals(deps.db, "dns.cutover", deps.file.environment);
  if (voided)
    await audit(deps.db, {
      actor: by,
      action: "cutover.void",
      target: deps.file.environment,
      outcome: "info",
      details: { voided, reason: "rolled back" },
    });
  await audit(deps.db, {
    actor: by,
    action: "rollback.finish",
    target: deps.file.environment,
    outcome: report.complete ? "ok" : "failed",
    details: {
      ms: Math.round(report.ms),
      items: report.items,
      healthy: report.healthy,
      ...(data ? { lossless: data.lossless, writeOutageMs: data.writeOutageMs, drainMs: data.drainMs } : {}),
    } as unknown as Record<string, unknown>,
  });
  return { report, targets, text: reportText(by, report, targets, opts.viaSlack) };
}

/**
 * At start-up: a rollback whose start is in the audit trail without its finish, and whose lock
 * nobody holds, was cut off by a crash or a restart. Says so in the channel once (audited as
 * `rollback.interrupted`), so nobody takes a half-done rollback for a finished one.
 */
export async function announceInterruptedRollback(
  deps: Pick<CommandDeps, "db" | "runner" | "file">,
  post: (text: string) => Promise<void>,
): Promise<boolean> {
  const env = deps.file.environment;
  let announced = false;
  await deps.runner.locks.rollback(env, async () => {
    const start = await lastAuditEvent(deps.db, "rollback.start", env);
    if (!start) return;
    const after = await auditEventAfter(deps.db, start.id, env, ["rollback.finish", "rollback.interrupted"]);
    if (after) return;
    await audit(deps.db, {
      actor: "cutover",
      action: "rollback.interrupted",
      target: env,
      outcome: "info",
      details: { startedBy: start.actor, startedAt: start.at.toISOString() },
    });
    await post(
      `⚠️ The rollback <@${start.actor}> started at ${start.at.toISOString().slice(11, 19)} UTC did not finish: Cutover stopped while carrying it out, so production may be only partly switched back. Run \`/rollback\` again: it is safe to repeat and restores whatever is not yet back.`,
    );
    announced = true;
  });
  return announced;
}
