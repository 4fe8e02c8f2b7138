import * as Plot from "@observablehq/plot";
import type { Figure } from "./figure.ts";
import {
  type ChartOptions,
  chartSize,
  checkData,
  column,
  compose,
  type PlotData,
  plotDocument,
  type ScaledPlot,
} from "./_plot.ts";
import { checkNumber } from "../validate.ts";

/** Options of {@linkcode heatmap}. */
export interface HeatmapOptions extends ChartOptions {
  /** Numeric column on the x axis, the left edge of each cell (default `"step"`). */
  x?: string;
  /** Numeric column on the y axis, the bottom edge of each cell (default `"expert"`). */
  y?: string;
  /** Column giving each cell's colour (default `"load"`). */
  fill?: string;
  /** Column splitting the plot into rows of panels, one per value, in the order the values first appear (default none). */
  facet?: string;
  /** Width of a cell in x units (default 1). */
  cellWidth?: number;
  /** Height of a cell in y units (default 1). */
  cellHeight?: number;
  /**
   * A diverging colour scale centred here (blue below, red above; for
   * load over mean load, 1). Default: a sequential scale (viridis).
   */
  pivot?: number;
  /** Label of the colour legend (default the fill column's name). */
  fillLabel?: string;
  /** Label of the x axis (default the column name). */
  xLabel?: string;
  /** Label of the y axis (default the column name). */
  yLabel?: string;
}

/**
 * A heatmap as SVG: one rectangle per row, `[x, x + cellWidth) x [y, y +
 * cellHeight)`, coloured by `fill`; for example the load of every expert
 * over steps. Keep it to some ten thousand cells (bin the steps first):
 * every cell is one SVG element.
 *
 * @param data A DataFrame (or array of objects) with the x, y and fill columns.
 * @param options Columns, facet, colour scale, labels, size.
 * @returns A {@linkcode Figure}.
 * @throws {TypeError} If `data` is not a DataFrame or array, or lacks a column.
 * @throws {RangeError} If a size is out of range.
 *
 * @example
 * ```ts
 * import { heatmap } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const rows = [];
 * for (let step = 0; step < 4; step++) {
 *   for (let expert = 0; expert < 3; expert++) rows.push({ step, expert, load: expert + 1 });
 * }
 * const fig = heatmap(rows, { pivot: 2, fillLabel: "load / mean" });
 * assert.equal(fig.svg.match(/<rect fill="#/g)?.length, 12);
 * ```
 */
export function heatmap(data: PlotData, options: HeatmapOptions = {}): Figure {
  checkData(data);
  const { width, height } = chartSize(options);
  const xName = options.x ?? "step", yName = options.y ?? "expert";
  const fillName = options.fill ?? "load";
  const dx = checkNumber("cellWidth", options.cellWidth ?? 1, 0);
  const dy = checkNumber("cellHeight", options.cellHeight ?? 1, 0);
  const xs = column(data, xName).map(Number);
  const ys = column(data, yName).map(Number);
  const fs = column(data, fillName).map(Number);
  const facets = options.facet === undefined
    ? undefined
    : column(data, options.facet).map(String);
  const pivot = options.pivot === undefined
    ? undefined
    : checkNumber("pivot", options.pivot);
  const n = xs.length;
  let lo = Infinity, hi = -Infinity;
  for (const f of fs) {
    if (f < lo) lo = f;
    if (f > hi) hi = f;
  }
  if (n === 0) lo = hi = 0;
  if (pivot !== undefined) {
    lo = Math.min(lo, pivot);
    hi = Math.max(hi, pivot);
  }
  if (hi === lo) hi = lo + 1;
  // Panels in the order their first row comes (the methods' order), not
  // Plot's default alphabetical one.
  const panelOrder = facets ? [...new Set(facets)] : [];
  const panels = facets ? panelOrder.length : 1;
  const plot = Plot.plot({
    document: plotDocument(),
    width,
    height: height * panels,
    marginLeft: 56,
    // Room for the panel labels on the right.
    marginRight: facets
      ? 24 + 6.2 * Math.max(...panelOrder.map((f) => f.length))
      : 20,
    x: { label: options.xLabel ?? xName },
    y: { label: options.yLabel ?? yName },
    ...(facets ? { fy: { label: null, domain: panelOrder } } : {}),
    color: pivot === undefined
      ? { type: "linear", scheme: "viridis", domain: [lo, hi] }
      : {
        type: "diverging",
        scheme: "rdbu",
        reverse: true,
        pivot,
        // Not symmetric: the darkest blue is the smallest value seen, so
        // idle experts stand out as much as the busiest ones.
        symmetric: false,
        domain: [lo, hi],
      },
    marks: [
      Plot.rect({ length: n }, {
        x1: xs,
        x2: xs.map((x) => x + dx),
        y1: ys,
        y2: ys.map((y) => y + dy),
        fill: fs,
        ...(facets ? { fy: facets } : {}),
        inset: 0,
        // Without it, anti-aliased edges draw faint white lines between cells.
        shapeRendering: "crispEdges",
      }),
    ],
  }) as unknown as ScaledPlot;
  const color = plot.scale("color");
  const ticks = pivot === undefined ? [lo, (lo + hi) / 2, hi] : [lo, pivot, hi];
  return compose(plot, width, {
    title: options.title,
    legend: {
      kind: "ramp",
      label: options.fillLabel ?? fillName,
      ticks,
      color: (v) => color.apply(v),
    },
  });
}
