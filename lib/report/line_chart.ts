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
  referenceRules,
  type ScaledPlot,
  seriesLegend,
} from "./_plot.ts";

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions extends ChartOptions {
  /** Column on the x axis (default `"step"`). */
  x?: string;
  /** Column on the y axis (default `"value"`). */
  y?: string;
  /** Column naming the line each row belongs to (default `"method"` when the data has it, else one line). */
  series?: string;
  /** Logarithmic y axis; rows with `y <= 0` are left out (default false). */
  logY?: boolean;
  /** Logarithmic x axis; rows with `x <= 0` are left out (default false). */
  logX?: boolean;
  /** Label of the x axis (default the column name). */
  xLabel?: string;
  /** Label of the y axis (default the column name). */
  yLabel?: string;
  /** Horizontal reference lines at these y values, dashed (default none). */
  rules?: number[];
}

/**
 * A line chart of a metric over steps, one line per series (method), as
 * SVG: for example MaxVio_batch over steps per balancing method. Rows are
 * drawn in the order given within each series.
 *
 * @param data A DataFrame (or array of objects) with the x, y and series columns.
 * @param options Columns, log scale, labels, size.
 * @returns A {@linkcode Figure} (displays in Jupyter, `.save(path)` writes an `.svg`).
 * @throws {TypeError} If `data` is not a DataFrame or array, or lacks a column.
 * @throws {RangeError} If `width` or `height` is out of range.
 *
 * @example
 * ```ts
 * import { lineChart } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const rows = [1, 2, 3].flatMap((step) => [
 *   { step, method: "greedy", value: 1.5 },
 *   { step, method: "loss-free", value: 1 / step },
 * ]);
 * const fig = lineChart(rows, { logY: true, title: "MaxVio_batch" });
 * assert.match(fig.svg, /loss-free/);
 * assert.match(fig.svg, /MaxVio_batch/);
 * ```
 */
export function lineChart(
  data: PlotData,
  options: LineChartOptions = {},
): Figure {
  checkData(data);
  const { width, height } = chartSize(options);
  const xName = options.x ?? "step";
  const yName = options.y ?? "value";
  let xs = column(data, xName) as number[];
  let ys = column(data, yName) as number[];
  let seriesName = options.series;
  if (seriesName === undefined) {
    try {
      column(data, "method");
      seriesName = "method";
    } catch {
      seriesName = undefined;
    }
  }
  let ss = seriesName === undefined
    ? null
    : column(data, seriesName).map(String);
  if (options.logY || options.logX) {
    const keep = ys.map((y, i) =>
      (!options.logY || y > 0) && (!options.logX || xs[i] > 0) ? i : -1
    ).filter((i) => i >= 0);
    xs = keep.map((i) => xs[i]);
    ys = keep.map((i) => ys[i]);
    if (ss) ss = keep.map((i) => ss![i]);
  }
  const labels = ss ? [...new Set(ss)] : [];
  const marks: Plot.Markish[] = [
    Plot.lineY({ length: xs.length }, {
      x: xs,
      y: ys,
      ...(ss ? { stroke: ss, z: ss } : {}),
      strokeWidth: 1.6,
    }),
  ];
  marks.push(...referenceRules(options.rules));
  const plot = Plot.plot({
    document: plotDocument(),
    width,
    height,
    marginLeft: 56,
    grid: true,
    x: {
      label: options.xLabel ?? xName,
      ...(options.logX ? { type: "log" as const, tickFormat: "~g" } : {}),
    },
    y: {
      label: options.yLabel ?? yName,
      // Plot's default log ticks use SI prefixes (700m); plain decimals read better.
      ...(options.logY
        ? { type: "log" as const, tickFormat: "~g", ticks: logTicks(ys) }
        : {}),
    },
    color: { domain: labels },
    marks,
  }) as unknown as ScaledPlot;
  return compose(plot, width, {
    title: options.title,
    legend: seriesLegend(plot, labels, "line"),
  });
}

// 1, 2, 3, 5 in every decade the values span: Plot's own log ticks leave
// values above the last power of ten (MaxVio 1.5) without a label.
function logTicks(values: number[]): number[] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const ticks: number[] = [];
  if (!(lo > 0) || !Number.isFinite(hi)) return ticks;
  for (
    let d = Math.floor(Math.log10(lo));
    d <= Math.ceil(Math.log10(hi));
    d++
  ) {
    for (const m of [1, 2, 3, 5]) {
      const t = Number((m * 10 ** d).toPrecision(1));
      if (t >= lo && t <= hi) ticks.push(t);
    }
  }
  return ticks.length >= 2 ? ticks : [lo, hi];
}
