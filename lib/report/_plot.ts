// Shared plumbing of the plots: Observable Plot renders into a linkedom
// document (no browser needed), then the plot's <svg> is wrapped with a
// title and an SVG legend into one standalone SVG document. Plot's own
// legends are HTML (ordinal) or drawn on a canvas (continuous), neither of
// which survives as a plain .svg file, so the legends are drawn here.
import type pl from "nodejs-polars";
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import { Figure } from "./figure.ts";
import { checkInteger, show } from "../validate.ts";

/** Rows to plot: a Polars DataFrame, or an array of plain objects. */
export type PlotData = pl.DataFrame | readonly Record<string, unknown>[];

/** Size and labels every chart accepts. */
export interface ChartOptions {
  /** Title drawn above the plot (default none). */
  title?: string;
  /** Width in pixels (default 640). */
  width?: number;
  /** Height of the plotting area in pixels (default 320). */
  height?: number;
}

const FONT =
  "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

/** The part of a DOM element the wrapping needs (Deno has no DOM types). */
export interface PlotElement {
  getAttribute(name: string): string | null;
  setAttribute(name: string, value: string): void;
  readonly outerHTML: string;
}

/**
 * A fresh DOM document for Plot to render into, typed `never` so it can be
 * passed as Plot's `document` option without the DOM library's types.
 */
export function plotDocument(): never {
  const window = parseHTML(
    "<!DOCTYPE html><html><body></body></html>",
  ) as unknown as { document: unknown };
  return window.document as never;
}

/** Number of rows of `data`. */
export function rowCount(data: PlotData): number {
  if (Array.isArray(data)) return data.length;
  return (data as pl.DataFrame).height;
}

/** The column `name` of `data` as an array; throws if it is missing. */
export function column(data: PlotData, name: string): unknown[] {
  if (Array.isArray(data)) {
    const rows = data as readonly Record<string, unknown>[];
    if (rows.length > 0 && !(name in rows[0])) {
      throw new TypeError(
        `data must have a field ${show(name)}: the first row has ${
          Object.keys(rows[0]).map((k) => show(k)).join(", ")
        }`,
      );
    }
    return rows.map((r) => r[name]);
  }
  const df = data as pl.DataFrame;
  if (!df.columns.includes(name)) {
    throw new TypeError(
      `data must have a column ${show(name)}: current columns are ${
        df.columns.map((c) => show(c)).join(", ")
      }`,
    );
  }
  return df.getColumn(name).toArray() as unknown[];
}

/** Throws unless `data` is a DataFrame or an array of objects. */
export function checkData(data: unknown): PlotData {
  if (Array.isArray(data)) return data;
  if (
    data !== null && typeof data === "object" &&
    typeof (data as pl.DataFrame).getColumn === "function" &&
    Array.isArray((data as pl.DataFrame).columns)
  ) {
    return data as pl.DataFrame;
  }
  throw new TypeError(
    `data must be a DataFrame or an array of objects: current value is ${
      show(data)
    }`,
  );
}

/** Width and height, checked, with defaults. */
export function chartSize(o: ChartOptions): { width: number; height: number } {
  const width = checkInteger("width", o.width ?? 640, 100, 10000);
  const height = checkInteger("height", o.height ?? 320, 60, 10000);
  return { width, height };
}

/** Escapes text for SVG and HTML. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A rendered plot whose colour scale can be read back. */
export type ScaledPlot = PlotElement & {
  scale(name: string): { range?: string[]; apply(v: number): string };
};

/** Dashed horizontal reference lines at `ys` (a threshold, the mean load). */
export function referenceRules(ys: readonly number[] = []): Plot.Markish[] {
  return ys.map((y) =>
    Plot.ruleY([y], { strokeDasharray: "4,3", stroke: "#888" })
  );
}

/** Swatches naming each series in the plot's own colours, or none. */
export function seriesLegend(
  plot: ScaledPlot,
  labels: string[],
  shape: "line" | "rect",
): Legend | undefined {
  if (labels.length === 0) return undefined;
  return {
    kind: "swatches",
    shape,
    labels,
    colors: plot.scale("color")?.range ?? [],
  };
}

/** A legend drawn above the plot. */
export type Legend =
  | {
    kind: "swatches";
    shape: "line" | "rect";
    labels: string[];
    colors: string[];
  }
  | {
    kind: "ramp";
    label: string;
    ticks: number[];
    color: (v: number) => string;
  };

function swatches(
  l: Extract<Legend, { kind: "swatches" }>,
  width: number,
  top: number,
): { svg: string; height: number } {
  const parts: string[] = [];
  let x = 0, y = top;
  l.labels.forEach((label, i) => {
    const w = 22 + label.length * 6.2 + 14;
    if (x > 0 && x + w > width - 20) {
      x = 0;
      y += 18;
    }
    const c = escapeXml(l.colors[i % l.colors.length]);
    parts.push(
      l.shape === "line"
        ? `<line x1="${x + 20}" x2="${x + 36}" y1="${y + 7}" y2="${
          y + 7
        }" stroke="${c}" stroke-width="2.5"/>`
        : `<rect x="${x + 22}" y="${
          y + 1
        }" width="12" height="12" fill="${c}"/>`,
      `<text x="${x + 40}" y="${y + 11}">${escapeXml(label)}</text>`,
    );
    x += w + 6;
  });
  return { svg: parts.join(""), height: y - top + 22 };
}

function ramp(
  l: Extract<Legend, { kind: "ramp" }>,
  top: number,
): { svg: string; height: number } {
  const lo = l.ticks[0], hi = l.ticks[l.ticks.length - 1];
  const x0 = 20, w = 260;
  const stops: string[] = [];
  for (let i = 0; i <= 32; i++) {
    const v = lo + (hi - lo) * i / 32;
    stops.push(
      `<stop offset="${(i / 32).toFixed(4)}" stop-color="${
        escapeXml(l.color(v))
      }"/>`,
    );
  }
  const id = `ramp-${Math.round(hi * 1e6)}-${Math.round(lo * 1e6)}`;
  const ticks = l.ticks.map((t) => {
    const x = x0 + (hi === lo ? 0 : (t - lo) / (hi - lo) * w);
    return `<line x1="${x}" x2="${x}" y1="${top + 16}" y2="${
      top + 26
    }" stroke="currentColor"/>` +
      `<text x="${x}" y="${top + 37}" text-anchor="middle">${
        escapeXml(formatTick(t))
      }</text>`;
  });
  return {
    svg:
      `<defs><linearGradient id="${id}">${
        stops.join("")
      }</linearGradient></defs>` +
      `<text x="${x0}" y="${top + 10}">${escapeXml(l.label)}</text>` +
      `<rect x="${x0}" y="${
        top + 16
      }" width="${w}" height="10" fill="url(#${id})"/>` +
      ticks.join(""),
    height: 44,
  };
}

function formatTick(t: number): string {
  return Math.abs(t) >= 100 || Number.isInteger(t)
    ? String(Math.round(t))
    : String(Number(t.toPrecision(3)));
}

/**
 * Wraps a rendered Plot `<svg>` with a title and a legend into one
 * standalone SVG document.
 */
export function compose(
  plot: PlotElement,
  width: number,
  options: { title?: string; legend?: Legend },
): Figure {
  let top = 8;
  const head: string[] = [];
  if (options.title) {
    head.push(
      `<text x="20" y="${top + 14}" font-size="14" font-weight="600">${
        escapeXml(options.title)
      }</text>`,
    );
    top += 24;
  }
  if (options.legend) {
    const l = options.legend.kind === "swatches"
      ? swatches(options.legend, width, top)
      : ramp(options.legend, top);
    head.push(l.svg);
    top += l.height;
  }
  const plotHeight = Number(plot.getAttribute("height"));
  plot.setAttribute("x", "0");
  plot.setAttribute("y", String(top));
  const height = Math.ceil(top + plotHeight);
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}" font-size="11">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<g fill="#222">${head.join("")}</g>` +
    roundCoordinates(plot.outerHTML).replace(/^<svg /, `<svg color="#222" `) +
    `</svg>`;
  return new Figure(svg, width, height);
}

// Plot writes coordinates at full double precision (193.33333333333331);
// a hundredth of a pixel is plenty, and hex colours are shorter than
// rgb(): together they halve the size of a heatmap.
function roundCoordinates(svg: string): string {
  return svg.replace(
    /(\s(?:x|y|x1|x2|y1|y2|width|height)=")(-?\d+\.\d{3,})"/g,
    (_, head: string, value: string) =>
      `${head}${Number(Number(value).toFixed(2))}"`,
  ).replace(
    /="rgb\((\d+), (\d+), (\d+)\)"/g,
    (_, r: string, g: string, b: string) =>
      `="#${
        [r, g, b].map((c) => Number(c).toString(16).padStart(2, "0")).join("")
      }"`,
  ).replace(
    /translate\((-?\d+\.\d{3,}),(-?\d+\.\d{3,})\)/g,
    (_, a: string, b: string) =>
      `translate(${Number(Number(a).toFixed(2))},${
        Number(Number(b).toFixed(2))
      })`,
  );
}
