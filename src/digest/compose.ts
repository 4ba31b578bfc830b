import type { KnownBlock } from "@slack/types";
import { context, divider, esc, header, type Reply, section, slackDate } from "../views/blocks.js";
import {
  type CostDigest,
  type CostDigestPart,
  type DigestInputs,
  isUnavailable,
  type KpiDigest,
  type KpiDigestPart,
  type ProgressDigest,
  type Stabilisation,
} from "./types.js";

/**
 * The daily digest as Block Kit (pure): progress, stabilisation, yesterday's KPIs against the
 * targets, and cost against the target and budget. The charts travel with it as files.
 */

const PHASE_ICON: Record<string, string> = {
  done: "✅",
  active: "🔄",
  failed: "❌",
  "not started": "▫️",
};

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** "$42.10" for USD, "42.10 EUR" otherwise. */
export function money(currency: string, n: number): string {
  return currency === "USD" ? `$${fmt(n, 2)}` : `${fmt(n, 2)} ${currency}`;
}

/** "Tue 18 Nov" for a "YYYY-MM-DD" day. */
function dayLabel(day: string): string {
  const d = new Date(`${day}T12:00:00Z`);
  return d.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
}

function progressBlocks(p: ProgressDigest): KnownBlock[] {
  const lines = p.phases.map(
    (ph, i) => `${PHASE_ICON[ph.state] ?? "•"} Phase ${i + 1} · ${esc(ph.title)} — ${ph.done}/${ph.total}`,
  );
  const blocks: KnownBlock[] = [
    section(`*Migration progress* — ${p.stepsDone}/${p.stepsTotal} steps done\n${lines.join("\n")}`),
  ];
  const rest: string[] = [];
  if (p.next) {
    rest.push(
      `*Next:* \`${esc(p.next.stepId)}\` ${esc(p.next.title)} (${esc(p.next.phase)}) — ${esc(p.next.status)}`,
    );
  } else {
    rest.push("*Next:* nothing — every step of the runbook is done 🎉");
  }
  if (p.waiting.length) {
    rest.push(`*Waiting:*\n${p.waiting.map((w) => `• ${w.what} — waits for ${w.who}`).join("\n")}`);
  }
  blocks.push(section(rest.join("\n")));
  return blocks;
}

function stabilisationLine(s: Stabilisation | null): string {
  if (!s) return "🕓 *Stabilisation:* not started — the window begins when DNS is switched.";
  if (s.over)
    return `🏁 *Stabilisation:* the ${s.days}-day window since the cutover (${slackDate(s.cutoverAt)}) is over. The old services can be retired with the \`decommission\` step (needs a second person's approval).`;
  return `🩺 *Stabilisation:* day ${s.day} of ${s.days} since the cutover (${slackDate(s.cutoverAt)}); the window ends ${slackDate(s.endsAt)}.`;
}

/** ✅ within, ❌ breached, ▫️ not measured. */
function check(value: number | null, ok: (v: number) => boolean): string {
  if (value === null || !Number.isFinite(value)) return "▫️";
  return ok(value) ? "✅" : "❌";
}

/** Whether every measured KPI is within its target (unmeasured ones do not count against). */
export function kpisGreen(k: KpiDigest): boolean {
  const f = k.figures;
  const t = k.targets;
  return (
    f.samples > 0 &&
    (f.availabilityPct === null || f.availabilityPct >= t.availabilityPct) &&
    (f.avgMs === null || f.avgMs <= t.avgMs) &&
    (f.errorRatePct === null || f.errorRatePct <= t.errorRatePct) &&
    (f.dbMs === null || f.dbMs <= t.dbMs)
  );
}

/** The KPI section: also what `/migrate kpi` can show on demand. */
export function kpiBlocks(kpi: KpiDigestPart): KnownBlock[] {
  if (isUnavailable(kpi)) return [section(`📈 *KPIs* — unavailable: ${esc(kpi.unavailable)}`)];
  const f = kpi.figures;
  const t = kpi.targets;
  if (f.samples === 0)
    return [
      section(`📈 *KPIs ${esc(kpi.window.label)}* — no samples yet (is the \`kpi.monitor\` step running?)`),
    ];
  const v = (n: number | null, unit: string, digits = 0) =>
    n === null || !Number.isFinite(n) ? "not measured" : `${fmt(n, digits)} ${unit}`;
  const lines = [
    `${check(f.availabilityPct, (x) => x >= t.availabilityPct)} availability ${v(f.availabilityPct, "%", 2)} (target ≥ ${t.availabilityPct} %)`,
    `${check(f.avgMs, (x) => x <= t.avgMs)} average response ${v(f.avgMs, "ms")}${f.p95Ms !== null ? `, p95 ${v(f.p95Ms, "ms")}` : ""} (target ≤ ${t.avgMs} ms)`,
    `${check(f.errorRatePct, (x) => x <= t.errorRatePct)} error rate ${v(f.errorRatePct, "%", 2)} (target ≤ ${t.errorRatePct} %)`,
    `${check(f.dbMs, (x) => x <= t.dbMs)} database query ${v(f.dbMs, "ms", 1)} (target ≤ ${t.dbMs} ms)`,
  ];
  return [
    section(
      `📈 *KPIs ${esc(kpi.window.label)}* — ${kpisGreen(kpi) ? "all within target" : "⚠️ outside target"}\n${lines.join("\n")}`,
    ),
    context(`${fmt(f.samples)} samples from ${slackDate(kpi.window.from)} to ${slackDate(kpi.window.to)}`),
  ];
}

/** 🚨 over budget, ⚠️ over target, ✅ on track — judged on the forecast when there is one. */
export function costVerdict(c: CostDigest): string {
  const projected = c.forecast ?? c.monthToDate;
  const word = c.forecast !== undefined ? "forecast" : "month to date";
  if (projected > c.budget) return `🚨 ${word} above the budget alert`;
  if (projected > c.target) return `⚠️ ${word} above the monthly target`;
  return "✅ on track";
}

export function costBlocks(cost: CostDigestPart, now: Date): KnownBlock[] {
  if (isUnavailable(cost)) return [section(`💰 *Cost* — unavailable: ${esc(cost.unavailable)}`)];
  const c = cost;
  const parts = [
    `month to date *${money(c.currency, c.monthToDate)}*`,
    c.forecast !== undefined ? `forecast *${money(c.currency, c.forecast)}* by month end` : "no forecast yet",
    `target ${money(c.currency, c.target)}`,
    `budget ${money(c.currency, c.budget)}`,
  ];
  const top = (c.topServices ?? [])
    .slice(0, 3)
    .map((s) => `${esc(s.service)} ${money(c.currency, s.amount)}`)
    .join(" · ");
  const ageH = (now.getTime() - c.asOf.getTime()) / 3_600_000;
  const savings = (c.savings ?? [])
    .filter((s) => s.max > 0)
    .map(
      (s) =>
        `${esc(s.title)} ~${s.min === s.max ? money(c.currency, s.max) : `${money(c.currency, s.min)}–${money(c.currency, s.max)}`}/month`,
    )
    .join(" · ");
  const blocks: KnownBlock[] = [
    section(
      `💰 *Cost ${esc(c.month)}* — ${costVerdict(c)}\n${parts.join(" · ")}${top ? `\nBiggest: ${top}` : ""}${savings ? `\nSavings available: ${savings}` : ""}`,
    ),
    context(
      `Cost Explorer figures as of ${slackDate(c.asOf)}${ageH >= 1 ? ` (${Math.floor(ageH)} h old: cached for the day, each request is charged)` : ""}`,
    ),
  ];
  return blocks;
}

/**
 * The digest message. `text` is the notification's one-line summary.
 *
 * @example const reply = composeDigest({ project: "gogojap", day: "2026-11-19", progress, kpi, cost, … });
 */
export function composeDigest(inputs: DigestInputs): Reply {
  const { progress, stabilisation: stab, kpi, cost } = inputs;
  const blocks: KnownBlock[] = [
    header(`Daily digest — ${inputs.project} (${inputs.environment}) · ${dayLabel(inputs.day)}`),
    ...progressBlocks(progress),
    section(stabilisationLine(stab)),
    ...(inputs.replication?.length
      ? [section(esc(`🔁 Replication: ${inputs.replication.join(" · ")}`))]
      : []),
    divider(),
    ...kpiBlocks(kpi),
    ...costBlocks(cost, inputs.now),
  ];
  if (inputs.chartsNote) blocks.push(context(`⚠️ ${esc(inputs.chartsNote)}`));
  const summary = [
    `${progress.stepsDone}/${progress.stepsTotal} steps done`,
    stab ? (stab.over ? "stabilisation over" : `stabilisation day ${stab.day}/${stab.days}`) : undefined,
    isUnavailable(kpi)
      ? "KPIs unavailable"
      : kpi.figures.samples
        ? kpisGreen(kpi)
          ? "KPIs green"
          : "KPIs outside target"
        : "no KPI samples yet",
    isUnavailable(cost) ? "cost unavailable" : `cost ${money(cost.currency, cost.monthToDate)} month to date`,
  ].filter(Boolean);
  return { text: `Daily digest ${inputs.day}: ${summary.join(", ")}`, blocks };
}
