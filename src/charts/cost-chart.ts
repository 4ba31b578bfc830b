import type { TopLevelSpec } from "vega-lite";
import { BASE_CONFIG, placeholderPng, type RenderedChart, renderVegaLite } from "./render.js";

/** What the daily-cost chart draws: plain figures, whoever measured them. */
export interface CostChartInput {
  /** the month shown, "2026-11"; the x axis runs from its first to its last day */
  month: string;
  /** ISO code for labels, e.g. USD */
  currency: string;
  /** cost per day (UTC days, "YYYY-MM-DD"); days without a figure are left out */
  daily: ReadonlyArray<{ date: string; amount: number }>;
  /** the monthly spend the migration aims to stay under (the plan: 85) */
  monthlyTarget: number;
  /** the budget alert threshold (the plan: 100) */
  budget: number;
  /** expected total at month end; drawn dashed from the last day with a figure to the month's end */
  forecast?: number | undefined;
}

export const COST_CHART_SIZE = { width: 640, height: 260 };

const money = (currency: string, n: number) =>
  currency === "USD" ? `$${n.toFixed(Number.isInteger(n) ? 0 : 2)}` : `${n.toFixed(2)} ${currency}`;

function monthBounds(month: string): { first: string; last: string; days: number } {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m) throw new Error(`cost chart: month must be YYYY-MM, got ${month}`);
  const year = Number(m[1]);
  const mon = Number(m[2]);
  const days = new Date(Date.UTC(year, mon, 0)).getUTCDate();
  return { first: `${month}-01`, last: `${month}-${String(days).padStart(2, "0")}`, days };
}

/** The Vega-Lite spec (exported for tests and for anyone who wants the chart as SVG). */
export function costChartSpec(input: CostChartInput): TopLevelSpec {
  const { first, last } = monthBounds(input.month);
  const inMonth = input.daily
    .filter((d) => d.date >= first && d.date <= last && Number.isFinite(d.amount))
    .slice()
    .sort((a, b) => a.date.localeCompare(b.date));
  let running = 0;
  const rows = inMonth.map((d) => {
    running += d.amount;
    return { date: d.date, amount: d.amount, cumulative: Number(running.toFixed(4)) };
  });
  const lastRow = rows[rows.length - 1];
  const forecast =
    input.forecast !== undefined && lastRow && lastRow.date < last
      ? [
          { date: lastRow.date, value: lastRow.cumulative },
          { date: last, value: input.forecast },
        ]
      : [];
  const c = input.currency;
  const x = {
    field: "date",
    type: "temporal" as const,
    timeUnit: "utcyearmonthdate" as const,
    title: null,
    scale: { domain: [`${first}T00:00:00Z`, `${last}T23:59:59Z`] },
    axis: { format: "%d", labelOverlap: true, tickCount: 10 },
  };
  const thresholds = [
    { label: `target ${money(c, input.monthlyTarget)}`, value: input.monthlyTarget, colour: "#e6a700" },
    { label: `budget ${money(c, input.budget)}`, value: input.budget, colour: "#d62728" },
  ];
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: COST_CHART_SIZE.width,
    height: COST_CHART_SIZE.height,
    padding: 12,
    title: {
      text: `Daily cost, ${input.month}`,
      subtitle: `bars: cost per day (left axis) · line: month to date (right axis)${forecast.length ? " · dashed: forecast" : ""}`,
    },
    config: BASE_CONFIG,
    resolve: { scale: { y: "independent" } },
    layer: [
      {
        data: { values: rows },
        mark: { type: "bar", color: "#9ecae1", cornerRadiusEnd: 2 },
        encoding: {
          x,
          y: { field: "amount", type: "quantitative", title: `per day (${c})`, axis: { orient: "left" } },
        },
      },
      {
        layer: [
          {
            data: { values: rows },
            mark: { type: "line", color: "#1f77b4", strokeWidth: 2.5, point: { size: 30, color: "#1f77b4" } },
            encoding: {
              x,
              y: {
                field: "cumulative",
                type: "quantitative",
                title: `month to date (${c})`,
                axis: { orient: "right" },
              },
            },
          },
          ...(forecast.length
            ? [
                {
                  data: { values: forecast },
                  mark: { type: "line" as const, color: "#1f77b4", strokeDash: [6, 4], strokeWidth: 2 },
                  encoding: { x, y: { field: "value", type: "quantitative" as const } },
                },
              ]
            : []),
          {
            data: { values: thresholds },
            mark: { type: "rule", strokeDash: [4, 3], strokeWidth: 2 },
            encoding: {
              y: { field: "value", type: "quantitative" },
              color: { field: "colour", type: "nominal", scale: null },
            },
          },
          {
            data: { values: thresholds },
            mark: { type: "text", align: "left", dx: 4, dy: -7, fontSize: 11, fontWeight: "bold" },
            encoding: {
              x: { value: 0 },
              y: { field: "value", type: "quantitative" },
              text: { field: "label" },
              color: { field: "colour", type: "nominal", scale: null },
            },
          },
        ],
      },
    ],
  } as TopLevelSpec;
}

/**
 * The daily cost of the month as a PNG: bars per day, the month-to-date line, the forecast, and
 * the target and budget lines. With no figure for the month yet it returns a "no cost data yet"
 * image of the same size instead.
 */
export async function renderCostChart(input: CostChartInput): Promise<RenderedChart> {
  const { first, last } = monthBounds(input.month);
  const any = input.daily.some((d) => d.date >= first && d.date <= last && Number.isFinite(d.amount));
  if (!any) {
    return placeholderPng(`Daily cost, ${input.month}`, "No cost data for this month yet", {
      width: COST_CHART_SIZE.width + 120,
      height: COST_CHART_SIZE.height + 110,
    });
  }
  return renderVegaLite(costChartSpec(input));
}
