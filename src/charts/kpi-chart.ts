import type { TopLevelSpec } from "vega-lite";
import { BASE_CONFIG, placeholderPng, type RenderedChart, renderVegaLite } from "./render.js";

/** One day of KPI figures; null where the day had no sample for it. */
export interface KpiChartDay {
  /** UTC day, "YYYY-MM-DD" (or the digest timezone's local day: the chart only labels it) */
  date: string;
  availabilityPct: number | null;
  avgMs: number | null;
  p95Ms: number | null;
}

export interface KpiChartInput {
  /** the days to draw, usually the last 7 */
  days: readonly KpiChartDay[];
  targets: { availabilityPct: number; avgMs: number };
  /** shown in the title, e.g. "api.gogojap.com" */
  subject?: string | undefined;
}

export const KPI_CHART_SIZE = { width: 640, height: 170 };

/** The Vega-Lite spec: latency (avg and p95) above, availability below, each with its target. */
export function kpiChartSpec(input: KpiChartInput): TopLevelSpec {
  const days = input.days.slice().sort((a, b) => a.date.localeCompare(b.date));
  const latency = days.flatMap((d) => [
    ...(d.avgMs !== null && Number.isFinite(d.avgMs) ? [{ date: d.date, series: "avg", ms: d.avgMs }] : []),
    ...(d.p95Ms !== null && Number.isFinite(d.p95Ms) ? [{ date: d.date, series: "p95", ms: d.p95Ms }] : []),
  ]);
  const availability = days
    .filter((d) => d.availabilityPct !== null && Number.isFinite(d.availabilityPct))
    .map((d) => ({ date: d.date, pct: d.availabilityPct as number }));
  const lowest = Math.min(input.targets.availabilityPct, ...availability.map((a) => a.pct));
  // Show the interesting band: from a little under the worst day (or the target) to 100 %.
  const floor = Math.max(0, Math.floor((lowest - Math.max(0.05, (100 - lowest) * 0.5)) * 100) / 100);
  const x = {
    field: "date",
    type: "temporal" as const,
    timeUnit: "utcyearmonthdate" as const,
    title: null,
    axis: { format: "%a %d %b", labelOverlap: true },
    scale: {
      domain: [
        `${days[0]?.date ?? "2000-01-01"}T00:00:00Z`,
        `${days[days.length - 1]?.date ?? "2000-01-01"}T00:00:00Z`,
      ],
    },
  };
  const { width, height } = KPI_CHART_SIZE;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    padding: 12,
    title: {
      text: `Latency and availability, last ${days.length} days${input.subject ? ` — ${input.subject}` : ""}`,
      subtitle: `targets: average < ${input.targets.avgMs} ms, availability > ${input.targets.availabilityPct} %`,
    },
    config: BASE_CONFIG,
    spacing: 18,
    vconcat: [
      {
        width,
        height,
        layer: [
          {
            data: { values: latency },
            mark: { type: "line", point: true, strokeWidth: 2.5 },
            encoding: {
              x,
              y: { field: "ms", type: "quantitative", title: "latency (ms)" },
              color: {
                field: "series",
                type: "nominal",
                title: null,
                scale: { domain: ["avg", "p95"], range: ["#1f77b4", "#ff7f0e"] },
                legend: { orient: "top-left", direction: "horizontal" },
              },
            },
          },
          {
            data: { values: [{ v: input.targets.avgMs, label: `avg target ${input.targets.avgMs} ms` }] },
            layer: [
              {
                mark: { type: "rule", color: "#d62728", strokeDash: [4, 3], strokeWidth: 2 },
                encoding: { y: { field: "v", type: "quantitative" } },
              },
              {
                mark: { type: "text", color: "#d62728", align: "right", dy: -7, fontSize: 11 },
                encoding: {
                  x: { value: width },
                  y: { field: "v", type: "quantitative" },
                  text: { field: "label" },
                },
              },
            ],
          },
        ],
      },
      {
        width,
        height: Math.round(height * 0.75),
        layer: [
          {
            data: { values: availability },
            mark: { type: "line", point: true, strokeWidth: 2.5, color: "#2ca02c" },
            encoding: {
              x,
              y: {
                field: "pct",
                type: "quantitative",
                title: "availability (%)",
                scale: { domain: [floor, 100], zero: false, clamp: true },
              },
            },
          },
          {
            data: {
              values: [
                { v: input.targets.availabilityPct, label: `target ${input.targets.availabilityPct} %` },
              ],
            },
            layer: [
              {
                mark: { type: "rule", color: "#d62728", strokeDash: [4, 3], strokeWidth: 2 },
                encoding: { y: { field: "v", type: "quantitative" } },
              },
              {
                mark: { type: "text", color: "#d62728", align: "right", dy: 12, fontSize: 11 },
                encoding: {
                  x: { value: width },
                  y: { field: "v", type: "quantitative" },
                  text: { field: "label" },
                },
              },
            ],
          },
        ],
      },
    ],
  } as TopLevelSpec;
}

/**
 * Latency (avg and p95) and availability per day as a PNG. With no sample in any of the days
 * it returns a "no KPI samples yet" image instead.
 */
export async function renderKpiChart(input: KpiChartInput): Promise<RenderedChart> {
  const any = input.days.some((d) => d.availabilityPct !== null || d.avgMs !== null || d.p95Ms !== null);
  if (!any) {
    return placeholderPng("Latency and availability, last 7 days", "No KPI samples yet", {
      width: KPI_CHART_SIZE.width + 110,
      height: KPI_CHART_SIZE.height * 2 + 110,
    });
  }
  return renderVegaLite(kpiChartSpec(input));
}
