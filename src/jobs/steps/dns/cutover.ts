import { z } from "zod";
import { sameRecordContent } from "../../../cloud/cloudflare.js";
import { baseline, watch } from "../../../cloud/probe.js";
import { requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode, isCutoverError } from "../../../errors.js";
import { readyApproval } from "../../../store/approvals.js";
import { audit } from "../../../store/audit.js";
import { APPLY_CHECKPOINTS, applyChange, findRollbackTargets, rollback } from "../../cutover/apply.js";
import { LIVE_CHECKPOINTS, type LiveState, switchDatabase, unwindSwitch } from "../../cutover/live.js";
import {
  computeChange,
  cutoverDepsOf,
  healthTargets,
  latestSnapshot,
  readLive,
} from "../../cutover/service.js";
import type { CutoverChange } from "../../cutover/types.js";
import type { StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { useApprovalOrFail } from "./approval-use.js";

/**
 * What DNS propagation means for the records switched: a proxied record's answers are
 * Cloudflare's own addresses, so the switch takes effect at the edge within seconds whatever the
 * TTL; a DNS-only record is cached by resolvers for up to its TTL.
 */
export function propagationNote(change: CutoverChange): string {
  const proxied = change.records.filter((r) => r.proxied).map((r) => r.name);
  const plain = change.records.filter((r) => !r.proxied);
  const maxTtl = Math.max(0, ...plain.map((r) => (r.fromTtl === 1 ? 300 : r.fromTtl)));
  return [
    proxied.length ? `${proxied.join(", ")} proxied: switched at Cloudflare's edge within seconds` : "",
    plain.length
      ? `${plain.map((r) => r.name).join(", ")} DNS-only: resolvers may keep the old address up to ${maxTtl} s (DNS propagation, not counted in the write outage)`
      : "",
  ]
    .filter(Boolean)
    .join("; ");
}

/** the smallest slowdown (ms) that counts against the plan's "no more than 10 % slower" */
const MIN_SLOWDOWN_MS = 20;

/** Takes no options: what it switches comes from the file's \`dns\` and \`pages\` sections. */
const NoInput = z.any().transform((): Record<string, never> => ({}));

export const dnsCutover = defineStep({
  type: "dns.cutover",
  description: "switch DNS and the front end's settings after a second person's approval",
  input: NoInput,
  configSections: ["dns"],
  mutating: true,
  checkpoints: {
    change: z.custom<CutoverChange>(),
    baselineAvgMs: z.number().nullable(),
    ...APPLY_CHECKPOINTS,
    ...LIVE_CHECKPOINTS,
  },
});

/**
 * `dns.cutover`: carries out an approved cutover (it refuses without one): the DNS records,
 * the Pages variables and a new deployment, then watches the new and the old endpoint for
 * the configured window, measuring downtime and error rate against the plan's thresholds.
 */
export function createDnsCutoverStep(stepDeps: StepDeps): StepDefinition<Record<string, never>> {
  const deps = cutoverDepsOf(stepDeps, dnsCutover.type);
  return dnsCutover.implement({
    async plan(_input, ctx) {
      const snapshot = await latestSnapshot(deps.db, deps.file);
      if (!snapshot)
        return { summary: "the TTL has not been lowered yet: run the dns.lower-ttl step first", changes: [] };
      const change = await computeChange(deps, snapshot, ctx.signal);
      return {
        summary: "would switch, after a second person's approval (`/migrate cutover`)",
        changes: [
          ...change.records.map((r) => ({
            action: "update" as const,
            target: `${r.type} ${r.name}`,
            detail: `${r.from} → ${r.to}, TTL ${r.ttl} s`,
          })),
          ...(change.pages?.vars ?? []).map((v) => ({
            action: "update" as const,
            target: `Pages ${change.pages!.project} ${v.name}`,
            detail: `${v.from} → ${v.to}`,
          })),
          ...(change.pages?.redeploy
            ? [{ action: "create" as const, target: `Pages ${change.pages.project} deployment` }]
            : []),
        ],
      };
    },
    async run(_input, ctx) {
      // From the approval's button, or (run by hand later, e.g. after waiting for the lock) the approved, unused request.
      let approvalId = ctx.run.options.approvalId;
      if (typeof approvalId !== "string") {
        const ready = await readyApproval(deps.db, "dns.cutover", deps.now(), deps.file.environment);
        approvalId = ready?.id;
      }
      if (typeof approvalId !== "string") {
        throw new CutoverError(
          ErrorCode.ApprovalInvalid,
          "The DNS switch runs only from an approved cutover request.",
          {
            hint: "Type `/migrate cutover` to ask a second person to approve it.",
          },
        );
      }
      const cutover = deps.file.cutover;
      const kpis = deps.file.kpis.migration;
      const urls = await healthTargets(deps);
      let change = (await ctx.checkpoint.get("change")) ?? null;
      if (!change) {
        const snapshot = await latestSnapshot(deps.db, deps.file);
        if (!snapshot)
          throw new CutoverError(ErrorCode.CutoverNotReady, "No DNS snapshot: lower the TTL first.");
        // The pre-cutover latency, to judge the new stack against (plan: < 10 % worse).
        const before = urls.old
          ? await baseline(urls.old, 5, { timeoutMs: 5_000, signal: ctx.signal })
          : undefined;
        const live = await computeChange(deps, snapshot, ctx.signal);
        await useApprovalOrFail(deps.db, ctx, {
          approvalId,
          change: live,
          now: deps.now(),
          action: "cutover.execute",
          changed:
            "the change is no longer the one that was approved: a record or variable differs from what the approver saw",
          nothingDone: "Nothing was changed. Ask again with `/migrate cutover`.",
        });
        change = live;
        await ctx.checkpoint.set("baselineAvgMs", before?.avgMs ?? null);
        await ctx.checkpoint.set("change", change);
        // The rollback targets go to the audit trail before anything changes.
        await audit(deps.db, {
          actor: ctx.run.requestedBy,
          action: "cutover.execute",
          target: deps.file.environment,
          outcome: "started",
          runId: ctx.run.id,
          details: { approvalId, change } as unknown as Record<string, unknown>,
        });
      }
      // A live cutover: the database moves first (freeze → drain → sequences → verify → replication
      // turned around → the target opens), each sub-step a checkpoint; a failure before the target
      // opens gives the source back and switches nothing.
      let live: LiveState | undefined;
      if (deps.live) {
        const liveCtx = {
          checkpoint: ctx.checkpoint,
          signal: ctx.signal,
          progress: ctx.progress,
          actor: ctx.run.requestedBy,
          runId: ctx.run.id,
        };
        try {
          live = await switchDatabase(deps.live, liveCtx);
        } catch (err) {
          const undone = await unwindSwitch(deps.live, liveCtx).catch((e: unknown) => [
            `could NOT give the source back: ${(e as Error).message} — run /rollback`,
          ]);
          throw new CutoverError(
            isCutoverError(err) ? err.code : ErrorCode.StepFailed,
            `The live switch stopped before DNS moved: ${(err as Error).message}${undone.length ? ` Undone: ${undone.join("; ")}.` : ""}`,
            {
              hint: "Nothing points at the new stack. Fix what the message names, then ask again with `/migrate cutover`.",
            },
          );
        }
      }
      const started = Date.now();
      await applyChange(deps, change, {
        signal: ctx.signal,
        checkpoint: ctx.checkpoint,
        progress: ctx.progress,
      });
      const switchedMs = Date.now() - started;
      const dnsSwitchedAfterFreezeMs = live?.frozenAt ? Date.now() - live.frozenAt : undefined;
      await audit(deps.db, {
        actor: ctx.run.requestedBy,
        action: "cutover.switched",
        target: deps.file.environment,
        outcome: "ok",
        runId: ctx.run.id,
        details: {
          ms: switchedMs,
          ...(live ? { ...live.figures, dnsSwitchedAfterFreezeMs } : {}),
        },
      });

      // Watch the new and the old endpoint for the configured window.
      const targets: Record<string, string> = {};
      if (urls.new) targets.new = urls.new;
      if (urls.old) targets.old = urls.old;
      const windowMs = cutover.watchWindowSeconds * 1000;
      const report = Object.keys(targets).length
        ? await watch({
            targets,
            windowMs,
            intervalMs: cutover.probeIntervalSeconds * 1000,
            signal: ctx.signal,
            onSample: () =>
              ctx.progress({
                done: Math.min(windowMs, Date.now() - started),
                total: windowMs,
                unit: "ms watched",
                message: "watching the new and the old endpoint",
              }),
          })
        : undefined;
      const fresh = report?.targets.new;
      const baselineAvg = (await ctx.checkpoint.get("baselineAvgMs")) ?? undefined;
      const errorRatePercent = fresh ? fresh.errorRate * 100 : 0;
      const degradation =
        fresh?.avgMs !== undefined && baselineAvg
          ? ((fresh.avgMs - baselineAvg) / baselineAvg) * 100
          : undefined;
      const breaches = [
        fresh && errorRatePercent > kpis.maxErrorRatePercent
          ? `error rate ${errorRatePercent.toFixed(2)} % > ${kpis.maxErrorRatePercent} %`
          : "",
        // a relative limit on a few milliseconds is noise: a slowdown must also be at least 20 ms to count
        degradation !== undefined &&
        degradation > kpis.maxPerformanceDegradationPercent &&
        (fresh?.avgMs ?? 0) - (baselineAvg ?? 0) >= MIN_SLOWDOWN_MS
          ? `latency ${degradation.toFixed(0)} % worse than before (${fresh?.avgMs?.toFixed(0)} ms vs ${baselineAvg?.toFixed(0)} ms; limit ${kpis.maxPerformanceDegradationPercent} %)`
          : "",
        fresh && fresh.downtimeMs > kpis.maxDowntimeMinutes * 60_000
          ? `downtime ${(fresh.downtimeMs / 60_000).toFixed(1)} min`
          : "",
      ].filter(Boolean);
      if (breaches.length) {
        ctx.alert?.({
          text: `🚨 After the cutover: ${breaches.join("; ")}. Roll back with the button or /rollback.`,
          rollback: true,
        });
      }
      const downtimeMs = fresh?.downtimeMs ?? 0;
      const liveLine = live
        ? `write outage ${live.figures.writeOutageMs} ms at the database (freeze ${live.figures.freezeMs} ms, drain ${live.figures.drainMs} ms, verify ${live.figures.verifyMs} ms of ${live.figures.verifiedTables} tables), DNS switched ${dnsSwitchedAfterFreezeMs} ms after the freeze; ${propagationNote(change)}; `
        : "";
      return {
        summary: `${liveLine}switched in ${(switchedMs / 1000).toFixed(1)} s; watched ${Math.round(windowMs / 1000)} s: downtime ${(downtimeMs / 1000).toFixed(1)} s, error rate ${errorRatePercent.toFixed(2)} %${fresh?.avgMs !== undefined ? `, avg ${fresh.avgMs.toFixed(0)} ms` : ""}${breaches.length ? ` — THRESHOLDS BREACHED: ${breaches.join("; ")}` : " — within the plan's thresholds"}`,
        figures: {
          switchedMs,
          downtimeMs,
          errorRatePercent: Number(errorRatePercent.toFixed(3)),
          ...(fresh?.avgMs !== undefined ? { avgMs: Math.round(fresh.avgMs) } : {}),
          ...(fresh?.p95Ms !== undefined ? { p95Ms: Math.round(fresh.p95Ms) } : {}),
          ...(baselineAvg !== undefined ? { baselineAvgMs: Math.round(baselineAvg) } : {}),
          ...(degradation !== undefined ? { degradationPercent: Number(degradation.toFixed(1)) } : {}),
          samples: fresh?.samples ?? 0,
          breached: breaches.length > 0,
          ...(live
            ? {
                ...live.figures,
                ...(dnsSwitchedAfterFreezeMs !== undefined ? { dnsSwitchedAfterFreezeMs } : {}),
              }
            : {}),
        },
      };
    },
    async verify(_input, ctx) {
      const change = await ctx.checkpoint.get("change");
      if (!change) return { ok: false, summary: "no change was carried out" };
      const live = await readLive(deps, ctx.signal);
      const wrong = change.records.filter(
        (r) =>
          !sameRecordContent(
            r.type,
            live.records.find((l) => l.name === r.name && l.type === r.type)?.content ?? null,
            r.to,
          ),
      );
      const wrongVars = (change.pages?.vars ?? []).filter((v) => live.pages?.vars[v.name] !== v.to);
      const ok = wrong.length === 0 && wrongVars.length === 0;
      return {
        ok,
        summary: ok
          ? `${change.records.map((r) => `${r.name} → ${r.to}`).join(", ")}${change.pages ? `; Pages ${change.pages.vars.map((v) => v.name).join(", ")} set` : ""}`
          : `not as approved: ${[...wrong.map((r) => r.name), ...wrongVars.map((v) => v.name)].join(", ")}`,
      };
    },
    async undo(_input, ctx) {
      requireSection(deps.file, "dns");
      const targets = await findRollbackTargets(deps);
      if (!targets) throw new CutoverError(ErrorCode.BadArgument, "No rollback targets recorded.");
      const report = await rollback(deps, targets, ctx.signal);
      if (!report.complete)
        throw new CutoverError(
          ErrorCode.CloudflareFailed,
          report.items
            .filter((i) => !i.ok)
            .map((i) => `${i.what}: ${i.detail}`)
            .join("; "),
        );
    },
  });
}
