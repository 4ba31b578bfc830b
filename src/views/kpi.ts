import type { KnownBlock } from "@slack/types";
import type { KpiConfig } from "../config/schema.js";
import type { AlertTransition, KpiCheck } from "../kpi/alerts.js";
import type { KpiSummary } from "../kpi/summary.js";
import { context, esc, formatDuration, header, type Reply, section } from "./blocks.js";

/** "99.95 %", "120 ms", "–" for no data. */
export function figure(value: number | undefined, unit: "%" | "ms" | "probes"): string {
  if (value === undefined) return "–";
  // near 100 % two decimals, cut rather than rounded, so 99.86 never reads as 99.9
  if (unit === "%")
    return `${value >= 90 ? (Math.floor(value * 100) / 100).toFixed(2) : value.toFixed(value >= 10 ? 1 : 2)} %`;
  if (unit === "ms") return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ms`;
  return `${value}`;
}

function targetText(bound: "min" | "max", threshold: number, unit: "%" | "ms" | "probes"): string {
  // ≥ and ≤, as the checks compare; a bare < or > is markup to Slack (it must be &lt; &gt;)
  return `${bound === "min" ? "≥" : "≤"} ${threshold}${unit === "%" ? " %" : ` ${unit}`}`;
}

/** ✅ met, ❌ missed, ▫️ no data. */
function mark(value: number | undefined, bound: "min" | "max", threshold: number): string {
  if (value === undefined) return "▫️";
  const met = bound === "min" ? value >= threshold : value <= threshold;
  return met ? "✅" : "❌";
}

/** A breach (or its clearing) for the channel: posted once per change of state. */
export function kpiAlertView(t: AlertTransition, now: Date): Reply {
  const c = t.check;
  const lasted = formatDuration(Math.max(0, now.getTime() - t.previousSince.getTime()));
  let text: string;
  if (c.key.startsWith("down:")) {
    text = c.breached
      ? `🔴 ${c.title} is down: ${c.window} failed (${c.detail}).`
      : `🟢 ${c.title} is answering again, after ${lasted} down.`;
  } else {
    const want = targetText(c.bound, c.threshold, c.unit);
    text = c.breached
      ? `🔴 KPI breach — ${c.title} over ${c.window} is ${figure(c.value, c.unit)} (target ${want}). ${c.detail}.`
      : `🟢 KPI back on target — ${c.title} over ${c.window} is ${figure(c.value, c.unit)} (target ${want}), after ${lasted} in breach.`;
  }
  const blocks: KnownBlock[] = [section(esc(text))];
  if (c.breached)
    blocks.push(
      context("Posted once; another message follows when it clears. `/migrate kpi` shows the figures."),
    );
  // the fallback text is parsed too: the detail carries the last error, as the endpoint said it
  return { text: esc(text), blocks };
}

/** What the KPI view shows about the monitor itself. */
export interface MonitorInfo {
  /** sampling now */
  enabled: boolean;
  /** why it is off, when it is: "run the kpi.monitor step" */
  reason?: string;
  intervalSeconds: number;
  lastRoundAt: Date | null;
  endpoints: number;
  database: boolean;
}

export interface KpiViewInput {
  summary: KpiSummary;
  /** "the last 24 h" */
  windowLabel: string;
  longTerm: KpiConfig["longTerm"];
  /** alerts in breach now */
  breached: Array<{ key: string; since: Date; message: string | null }>;
  monitor: MonitorInfo;
  now: Date;
}

/**
 * The KPI figures over a window against the long-term targets, as blocks without a header (the
 * digest embeds them).
 */
export function kpiBlocks(input: KpiViewInput): KnownBlock[] {
  const { summary: s, longTerm: lt } = input;
  const rows: Array<[string, number | undefined, "min" | "max", number, "%" | "ms"]> = [
    ["Availability", s.endpoints.availabilityPercent, "min", lt.availabilityPercent.min, "%"],
    ["Avg response", s.endpoints.avgMs, "max", lt.avgResponseMs.max, "ms"],
    ["Error rate", s.endpoints.errorRatePercent, "max", lt.errorRatePercent.max, "%"],
    ["DB query", s.database.avgMs, "max", lt.dbQueryMs.max, "ms"],
  ];
  const fields = rows.map(([name, v, bound, threshold, unit]) => ({
    type: "mrkdwn" as const,
    text: `${mark(v, bound, threshold)} *${name}*\n${figure(v, unit)} (target ${targetText(bound, threshold, unit)})`,
  }));
  fields.push({
    type: "mrkdwn",
    text: `*p95 response*\n${figure(s.endpoints.p95Ms, "ms")}${s.database.p95Ms !== undefined ? ` · DB p95 ${figure(s.database.p95Ms, "ms")}` : ""}`,
  });
  fields.push({
    type: "mrkdwn",
    text: `*Probes*\n${s.endpoints.samples} (${s.endpoints.failures} failed)${s.database.samples ? ` · ${s.database.samples} DB queries` : ""}`,
  });
  const blocks: KnownBlock[] = [];
  if (s.endpoints.samples === 0 && s.database.samples === 0) {
    blocks.push(section(`No KPI samples in ${input.windowLabel}.`));
  } else {
    blocks.push({ type: "section", fields });
  }
  if (s.byEndpoint.length > 1 || s.byEndpoint.some((e) => e.lastError)) {
    const lines = s.byEndpoint.map(
      (e) =>
        `• \`${esc(e.target)}\` ${figure(e.availabilityPercent, "%")} up · avg ${figure(e.avgMs, "ms")} · p95 ${figure(e.p95Ms, "ms")} · ${e.failures}/${e.samples} failed${e.lastError ? ` — last error: ${esc(e.lastError)}` : ""}`,
    );
    if (s.database.lastError) lines.push(`• target database — last error: ${esc(s.database.lastError)}`);
    blocks.push(section(lines.join("\n")));
  }
  if (input.breached.length) {
    blocks.push(
      section(
        input.breached
          .map(
            (b) =>
              `🔴 In breach for ${formatDuration(input.now.getTime() - b.since.getTime())}: ${esc(b.message ?? b.key)}`,
          )
          .join("\n"),
      ),
    );
  }
  return blocks;
}

function monitorLine(m: MonitorInfo, now: Date): string {
  if (!m.enabled) return `⏸️ Not sampling: ${m.reason ?? "nothing to probe"}.`;
  const what = [
    m.endpoints ? `${m.endpoints} endpoint${m.endpoints === 1 ? "" : "s"}` : undefined,
    m.database ? "the target database" : undefined,
  ]
    .filter(Boolean)
    .join(" and ");
  const last = m.lastRoundAt
    ? `last round ${formatDuration(Math.max(0, now.getTime() - m.lastRoundAt.getTime()))} ago`
    : "no round yet";
  return `Sampling ${what} every ${m.intervalSeconds} s · ${last}.`;
}

/** `/migrate kpi [window]` */
export function kpiView(input: KpiViewInput): Reply {
  const s = input.summary;
  const a = s.endpoints.availabilityPercent;
  const text =
    s.endpoints.samples === 0 && s.database.samples === 0
      ? `KPIs over ${input.windowLabel}: no samples yet.`
      : `KPIs over ${input.windowLabel}: availability ${figure(a, "%")}, avg ${figure(s.endpoints.avgMs, "ms")}, p95 ${figure(s.endpoints.p95Ms, "ms")}, error rate ${figure(s.endpoints.errorRatePercent, "%")}, DB ${figure(s.database.avgMs, "ms")}${input.breached.length ? ` · ${input.breached.length} in breach` : ""}`;
  return {
    text,
    blocks: [
      header(`KPIs — ${input.windowLabel}`),
      ...kpiBlocks(input),
      context(
        `${monitorLine(input.monitor, input.now)} Targets are the file's \`kpis.longTerm\` (checked daily, error rate weekly); other windows: \`/migrate kpi 1h\`, \`7d\`, \`30d\`.`,
      ),
    ],
  };
}

/** The checks as lines, for a step's summary. */
export function checksLine(checks: readonly KpiCheck[]): string {
  return checks.map((c) => `${c.title} ${figure(c.value, c.unit)} ${c.breached ? "❌" : "✅"}`).join(" · ");
}
