import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Resvg, type ResvgRenderOptions } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/**
 * Vega-Lite → SVG (Vega's headless renderer, no canvas) → PNG (resvg, a Rust renderer shipped
 * as a prebuilt npm binary). Pure: data in, bytes out; no database, no network.
 *
 * Text needs a font file: resvg draws nothing for text it has no font for. DejaVu Sans comes
 * from the `dejavu-fonts-ttf` npm package, so a machine without system fonts renders the same
 * image; Debian's fonts-dejavu is the fallback.
 */

/** The family every chart asks for; the file behind it is loaded explicitly. */
export const CHART_FONT = "DejaVu Sans";

/** A rendered chart: the PNG bytes, its pixel size, and the SVG it came from. */
export interface RenderedChart {
  png: Buffer;
  svg: string;
  width: number;
  height: number;
}

let fontFilesCache: string[] | undefined;

/** DejaVu Sans (regular and bold) from the npm package, else from the system; [] when neither exists. */
export function chartFontFiles(): string[] {
  if (fontFilesCache) return fontFilesCache;
  const dirs: string[] = [];
  try {
    const pkg = createRequire(import.meta.url).resolve("dejavu-fonts-ttf/package.json");
    dirs.push(path.join(path.dirname(pkg), "ttf"));
  } catch {
    // the package is missing: fall back to the system's copy
  }
  dirs.push("/usr/share/fonts/truetype/dejavu");
  for (const dir of dirs) {
    const files = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"].map((f) => path.join(dir, f));
    if (files.every((f) => existsSync(f))) {
      fontFilesCache = files;
      return files;
    }
  }
  fontFilesCache = [];
  return fontFilesCache;
}

/** Rasterises an SVG to PNG at `scale` (2 = sharp on high-density screens), white background. */
export function svgToPng(svg: string, scale = 2): RenderedChart {
  const image = new Resvg(svg, resvgOptions(scale)).render();
  return { png: image.asPng(), svg, width: image.width, height: image.height };
}

/** The options every chart is rasterised with: our font file, white background, `scale`. */
export function resvgOptions(scale = 2): ResvgRenderOptions {
  const fontFiles = chartFontFiles();
  return {
    background: "#ffffff",
    fitTo: { mode: "zoom", value: scale },
    font: {
      fontFiles,
      // With our own file there is no need for the (slow) system scan; without one, it is the only chance.
      loadSystemFonts: fontFiles.length === 0,
      defaultFontFamily: CHART_FONT,
      sansSerifFamily: CHART_FONT,
      serifFamily: CHART_FONT,
      monospaceFamily: CHART_FONT,
    },
    logLevel: "off",
  };
}

/** Vega-Lite spec → SVG text, through Vega's View with no renderer attached (headless). */
export async function vegaLiteToSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Vega-Lite spec → PNG. */
export async function renderVegaLite(spec: TopLevelSpec, scale = 2): Promise<RenderedChart> {
  return svgToPng(await vegaLiteToSvg(spec), scale);
}

const xmlEsc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Splits text into lines of at most `width` characters, at spaces where it can. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    for (let w = word; w.length > 0; ) {
      const room = line ? width - line.length - 1 : width;
      if (w.length <= room) {
        line = line ? `${line} ${w}` : w;
        w = "";
      } else if (line) {
        lines.push(line);
        line = "";
      } else {
        lines.push(w.slice(0, width));
        w = w.slice(width);
      }
    }
  }
  if (line) lines.push(line);
  return lines.length ? lines : [""];
}

/**
 * The image shown where a chart has nothing to draw yet ("No KPI samples yet"): the chart's
 * title, a sentence saying why, on an empty frame of the same size as the chart.
 */
export function placeholderPng(
  title: string,
  message: string,
  size: { width: number; height: number } = { width: 720, height: 320 },
): RenderedChart {
  const { width, height } = size;
  // about 0.6 em per character at 18 px: wrap so the sentence stays inside the frame
  const perLine = Math.max(20, Math.floor((width - 80) / 11));
  const lines = wrap(message, perLine).slice(0, 4);
  const firstY = height / 2 + 14 - ((lines.length - 1) * 26) / 2;
  const body = lines
    .map(
      (line, i) =>
        `<text x="${width / 2}" y="${firstY + i * 26}" text-anchor="middle" font-family="${CHART_FONT}" font-size="18" fill="#666666">${xmlEsc(line)}</text>`,
    )
    .join("\n  ");
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
  <rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>
  <rect x="20.5" y="50.5" width="${width - 41}" height="${height - 71}" fill="#f7f7f7" stroke="#cccccc" stroke-dasharray="6 4"/>
  <text x="20" y="32" font-family="${CHART_FONT}" font-size="16" font-weight="bold" fill="#222222">${xmlEsc(title)}</text>
  ${body}
</svg>`;
  return svgToPng(svg);
}

/** Common look: one font, no frame, readable sizes. */
export const BASE_CONFIG = {
  font: CHART_FONT,
  background: "#ffffff",
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eeeeee" },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom" },
  title: { fontSize: 15, anchor: "start", subtitleFontSize: 11, subtitleColor: "#666666" },
} as const;
