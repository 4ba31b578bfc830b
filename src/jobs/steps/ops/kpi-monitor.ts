import { z } from "zod";
import { CutoverError, ErrorCode } from "../../../errors.js";
import { hasProbes, monitoringState, setMonitoring } from "../../../kpi/KpiMonitor.js";
import { createDatabaseTimer, sampleRound, storeSamples } from "../../../kpi/sampler.js";
import { DB_TARGET, kpiSummary } from "../../../kpi/summary.js";
import { countSamplesSince } from "../../../store/kpi.js";
import { figure } from "../../../views/kpi.js";
import type { StepDefinition } from "../../define-step.js";
import { defineStep, type StepDeps, stateStore, stepNow } from "../../define-step.js";
import { targetEndpoint } from "../db/endpoints.js";

const Input = z.strictObject({
  /** the watch this step stands for (e.g. the stabilisation window): its summary reports the KPIs since sampling began, up to this many days */
  days: z.number().int().min(1).max(365).optional(),
});
type Input = z.infer<typeof Input>;

export const kpiMonitor = defineStep({
  type: "kpi.monitor",
  description: "sample the configured endpoints and track the KPIs",
  input: Input,
  configSections: [],
  mutating: false,
});

/**
 * `kpi.monitor`: switches the KPI probe job on for this environment (every replica's monitor
 * starts sampling at its next tick, and again after a restart) and takes a first round at once,
 * so the figures start now. Undo switches it off. It changes only Cutover's own state.
 */
export function createKpiMonitorStep(deps: StepDeps): StepDefinition<Input> {
  const { file } = deps;
  const db = stateStore(deps, kpiMonitor.type);
  const now = stepNow(deps);
  const probes = file.kpis.probes;
  const timesDatabase = probes.database.enabled && file.target?.rds !== undefined;
  const what = () =>
    [
      ...probes.endpoints.map((e) => `\`${e.id}\` (${e.url})`),
      ...(timesDatabase ? [`the target database (\`${probes.database.query}\`)`] : []),
    ].join(", ");
  const nothing = () =>
    new CutoverError(ErrorCode.ConfigInvalid, "kpi.monitor: there is nothing to probe.", {
      hint: "List the endpoints under `kpis.probes.endpoints` in the migration file (id and url), or add `target.rds` to time the database, then run it again.",
    });

  /** "; day 3 of 14: availability 99.98 %, avg 120 ms, error rate 0.02 %, DB 3 ms" */
  const watchLine = async (days: number) => {
    const state = await monitoringState(db, file.environment);
    const to = now();
    const since = state?.changedAt ?? to;
    const from = new Date(Math.max(since.getTime(), to.getTime() - days * 24 * 3600_000));
    const day = Math.min(days, Math.floor((to.getTime() - since.getTime()) / (24 * 3600_000)) + 1);
    const s = await kpiSummary(db, { from, to: new Date(to.getTime() + 1) });
    return `; day ${day} of ${days}: availability ${figure(s.endpoints.availabilityPercent, "%")}, avg ${figure(s.endpoints.avgMs, "ms")}, error rate ${figure(s.endpoints.errorRatePercent, "%")}, DB ${figure(s.database.avgMs, "ms")}`;
  };

  return kpiMonitor.implement({
    async plan() {
      if (!hasProbes(file)) throw nothing();
      const state = await monitoringState(db, file.environment);
      const every = `every ${probes.intervalSeconds} s (timeout ${probes.timeoutMs} ms), keeping ${file.kpis.retentionDays} days`;
      return state?.enabled
        ? {
            summary: `already sampling ${what()} ${every}`,
            changes: [
              {
                action: "none",
                target: "KPI monitor",
                detail: `on since ${state.changedAt?.toISOString() ?? "?"}`,
              },
            ],
          }
        : {
            summary: `would sample ${what()} ${every}, and post to the channel when a long-term target is missed and when it recovers`,
            changes: [{ action: "update", target: "KPI monitor", detail: "switch sampling on" }],
          };
    },
    async run(input, ctx) {
      if (!hasProbes(file)) throw nothing();
      await setMonitoring(db, file.environment, true, ctx.run.requestedBy, now());
      // a first round now: proves the probes work and gives the figures a start
      const timer = timesDatabase
        ? createDatabaseTimer(() => targetEndpoint(deps), probes.database.query)
        : undefined;
      try {
        const samples = await sampleRound({ at: now(), probes, database: timer, signal: ctx.signal });
        await storeSamples(db, samples);
        const watch = input.days ? await watchLine(input.days) : "";
        const lines = samples.map((s) =>
          s.ok
            ? `${s.target === DB_TARGET ? "database" : s.target} ${s.latencyMs} ms`
            : `${s.target === DB_TARGET ? "database" : s.target} failed (${s.error})`,
        );
        return {
          summary: `sampling ${what()} every ${probes.intervalSeconds} s; this round: ${lines.join(", ")}${watch}`,
          figures: { probes: samples.length, failed: samples.filter((s) => !s.ok).length },
        };
      } finally {
        await timer?.close();
      }
    },
    async verify() {
      const state = await monitoringState(db, file.environment);
      const since = new Date(now().getTime() - 2 * probes.intervalSeconds * 1000);
      const recent = await countSamplesSince(db, since);
      const ok = state?.enabled === true && recent > 0;
      return {
        ok,
        summary: ok
          ? `sampling is on; ${recent} samples in the last ${2 * probes.intervalSeconds} s`
          : state?.enabled
            ? "sampling is on but no sample was stored recently"
            : "sampling is off",
        figures: { recentSamples: recent },
      };
    },
    async undo(_input, ctx) {
      await setMonitoring(db, file.environment, false, ctx.run.requestedBy, now());
    },
  });
}
