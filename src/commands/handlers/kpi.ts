import { breachedAlerts } from "../../kpi/alerts.js";
import { hasProbes, monitoringEnabled, monitoringState, runbookHasKpiMonitor } from "../../kpi/KpiMonitor.js";
import { kpiSummary } from "../../kpi/summary.js";
import { DURATION_UNIT_MS, parseDurationTerms } from "../../text/units.js";
import { invalidUsageView } from "../../views/help.js";
import { kpiView, type MonitorInfo } from "../../views/kpi.js";
import type { CommandDeps } from "../context.js";
import { type Answer, invalid, ok } from "../context.js";

const UNIT_WORD = { m: "min", h: "h", d: "days" } as const;

/** "24h" → 24 hours; undefined with a message when it is not a window. */
export function parseKpiWindow(
  arg: string | undefined,
  retentionDays: number,
): { ms: number; label: string } | { error: string } {
  if (arg === undefined) return { ms: DURATION_UNIT_MS.d, label: "the last 24 h" };
  const terms = parseDurationTerms(arg);
  const term = terms?.length === 1 ? terms[0]! : undefined;
  if (!term || !Number.isInteger(term.value) || term.value > 9999 || term.unit === "ms" || term.unit === "s")
    return {
      error: `\`${arg}\` is not a window — write a number and m, h or d, e.g. \`24h\`, \`7d\` or \`30m\`.`,
    };
  const unit = term.unit === "min" ? "m" : term.unit;
  const n = term.value;
  const ms = n * DURATION_UNIT_MS[unit];
  if (n < 1) return { error: "The window must be at least `1m`." };
  if (ms > retentionDays * DURATION_UNIT_MS.d)
    return {
      error: `Samples are kept ${retentionDays} days (\`kpis.retentionDays\`), so \`${arg}\` is too long — ask for at most \`${retentionDays}d\`.`,
    };
  return { ms, label: `the last ${n} ${n === 1 && unit === "d" ? "day" : UNIT_WORD[unit]}` };
}

/** `/migrate kpi [window]`: availability, latency, error rate and database time against the targets. */
export async function kpiHandler(args: string[], deps: CommandDeps): Promise<Answer> {
  const { db, file } = deps;
  if (args.length > 1)
    return invalid(invalidUsageView("kpi", "`kpi` takes at most one window, e.g. `/migrate kpi 7d`."));
  const window = parseKpiWindow(args[0], file.kpis.retentionDays);
  if ("error" in window) return invalid(invalidUsageView("kpi", window.error));
  const now = deps.now();
  const [summary, breached, enabled, state] = await Promise.all([
    kpiSummary(db, { from: new Date(now.getTime() - window.ms), to: now }),
    breachedAlerts(db),
    monitoringEnabled(db, file),
    monitoringState(db, file.environment),
  ]);
  const stepId = file.runbook.phases.flatMap((p) => p.steps).find((s) => s.uses === "kpi.monitor")?.id;
  let reason: string | undefined;
  if (!hasProbes(file))
    reason =
      "nothing to probe — list endpoints under `kpis.probes.endpoints` in the migration file (or add `target.rds` to time the database)";
  else if (!enabled && runbookHasKpiMonitor(file))
    reason = `sampling starts when the \`${stepId}\` step runs — \`/migrate run ${stepId}\``;
  const monitor: MonitorInfo = {
    enabled,
    ...(reason ? { reason } : {}),
    intervalSeconds: file.kpis.probes.intervalSeconds,
    lastRoundAt: state?.lastRoundAt ?? null,
    endpoints: file.kpis.probes.endpoints.length,
    database: file.kpis.probes.database.enabled && file.target?.rds !== undefined,
  };
  return ok(
    kpiView({
      summary,
      windowLabel: window.label,
      longTerm: file.kpis.longTerm,
      breached: breached.map((b) => ({ key: b.key, since: b.since, message: b.message })),
      monitor,
      now,
    }),
  );
}
