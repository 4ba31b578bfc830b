import { Resvg } from "@resvg/resvg-js";
import { describe, expect, it } from "vitest";
import { costChartSpec, renderCostChart } from "../../src/charts/cost-chart.js";
import { renderKpiChart } from "../../src/charts/kpi-chart.js";
import { PNG_SIGNATURE, pngSize } from "../../src/charts/png.js";
import { CHART_FONT, chartFontFiles, placeholderPng, resvgOptions } from "../../src/charts/render.js";

const month = "2026-11";
const daily = Array.from({ length: 18 }, (_, i) => ({
  date: `2026-11-${String(i + 1).padStart(2, "0")}`,
  amount: 2 + (i % 4) * 0.5,
}));
const week = Array.from({ length: 7 }, (_, i) => ({
  date: `2026-11-${String(i + 12).padStart(2, "0")}`,
  availabilityPct: i === 2 ? 99.4 : 100,
  avgMs: 120 + i * 5,
  p95Ms: 230 + i * 9,
}));

function expectRealPng(png: Buffer, min: { width: number; height: number; bytes: number }) {
  expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  const size = pngSize(png)!;
  expect(size.width).toBeGreaterThanOrEqual(min.width);
  expect(size.height).toBeGreaterThanOrEqual(min.height);
  expect(size.width).toBeLessThan(4000);
  expect(size.height).toBeLessThan(4000);
  expect(png.length).toBeGreaterThan(min.bytes);
}

/** Pixels darker than light grey in an SVG rendered the way charts are. */
function darkPixels(svg: string): number {
  const { pixels } = new Resvg(svg, resvgOptions(1)).render();
  let dark = 0;
  for (let i = 0; i < pixels.length; i += 4) if (pixels[i]! < 128 && pixels[i + 3]! > 0) dark++;
  return dark;
}

describe("charts", () => {
  it("has a font to draw text with, and text really renders", () => {
    expect(chartFontFiles().length).toBeGreaterThan(0);
    const text = `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="5" y="28" font-family="${CHART_FONT}" font-size="20" fill="#000">Target $85</text></svg>`;
    const empty = '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"></svg>';
    expect(darkPixels(empty)).toBe(0);
    expect(darkPixels(text)).toBeGreaterThan(100);
    // sans-serif (what Vega writes when a spec names no font) maps to the same file
    expect(darkPixels(text.replace(CHART_FONT, "sans-serif"))).toBeGreaterThan(100);
  });

  it("draws the month's daily cost with the target and budget lines as a real PNG", async () => {
    const chart = await renderCostChart({
      month,
      currency: "USD",
      daily,
      monthlyTarget: 85,
      budget: 100,
      forecast: 74.5,
    });
    expectRealPng(chart.png, { width: 1200, height: 500, bytes: 20_000 });
    expect(chart.svg).toContain("target $85");
    expect(chart.svg).toContain("budget $100");
    expect(chart.svg).toContain("Daily cost, 2026-11");
    expect(chart.svg).toContain("month to date (USD)");
  });

  it("adds up the month to date from the days in the month only, in date order", () => {
    const spec = costChartSpec({
      month,
      currency: "USD",
      daily: [
        { date: "2026-11-02", amount: 2 },
        { date: "2026-10-31", amount: 50 },
        { date: "2026-11-01", amount: 1.5 },
        { date: "2026-12-01", amount: 50 },
      ],
      monthlyTarget: 85,
      budget: 100,
      forecast: 60,
    });
    const json = JSON.stringify(spec);
    expect(json).toContain('{"date":"2026-11-01","amount":1.5,"cumulative":1.5}');
    expect(json).toContain('{"date":"2026-11-02","amount":2,"cumulative":3.5}');
    expect(json).not.toContain("2026-10-31");
    // the forecast runs from the last day with a figure to the month's last day
    expect(json).toContain('[{"date":"2026-11-02","value":3.5},{"date":"2026-11-30","value":60}]');
  });

  it("draws latency (avg, p95) and availability for the last 7 days", async () => {
    const chart = await renderKpiChart({ days: week, targets: { availabilityPct: 99.9, avgMs: 200 } });
    expectRealPng(chart.png, { width: 1200, height: 600, bytes: 20_000 });
    expect(chart.svg).toContain("avg target 200 ms");
    expect(chart.svg).toContain("target 99.9 %");
    expect(chart.svg).toContain("latency (ms)");
    expect(chart.svg).toContain("availability (%)");
  });

  it("copes with days that have no samples", async () => {
    const gaps = week.map((d, i) => (i % 2 ? { ...d, availabilityPct: null, avgMs: null, p95Ms: null } : d));
    const chart = await renderKpiChart({ days: gaps, targets: { availabilityPct: 99.9, avgMs: 200 } });
    expectRealPng(chart.png, { width: 1200, height: 600, bytes: 20_000 });
  });

  it("says 'no data yet' instead of an empty chart", async () => {
    const cost = await renderCostChart({ month, currency: "USD", daily: [], monthlyTarget: 85, budget: 100 });
    expectRealPng(cost.png, { width: 700, height: 300, bytes: 3_000 });
    expect(cost.svg).toContain("No cost data for this month yet");
    const kpi = await renderKpiChart({
      days: week.map((d) => ({ ...d, availabilityPct: null, avgMs: null, p95Ms: null })),
      targets: { availabilityPct: 99.9, avgMs: 200 },
    });
    expectRealPng(kpi.png, { width: 700, height: 300, bytes: 3_000 });
    expect(kpi.svg).toContain("No KPI samples yet");
    const none = await renderKpiChart({ days: [], targets: { availabilityPct: 99.9, avgMs: 200 } });
    expect(none.svg).toContain("No KPI samples yet");
  });

  it("wraps a long reason inside the placeholder's frame", () => {
    const reason =
      "Cost unavailable: Cost Explorer refused: AccessDeniedException — the role lacks ce:GetCostAndUsage";
    const chart = placeholderPng("Daily cost", reason);
    const lines = [...chart.svg.matchAll(/<text[^>]*font-size="18"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.join(" ")).toBe(reason);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(58);
  });

  it("tells a PNG from other bytes", () => {
    expect(pngSize(Buffer.from("GIF89a not a png at all......"))).toBeUndefined();
    expect(pngSize(Buffer.alloc(0))).toBeUndefined();
  });
});
