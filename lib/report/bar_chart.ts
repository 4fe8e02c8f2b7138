import * as Plot from "@observablehq/plot";
import type { Figure } from "./figure.ts";
import { show } from "../validate.ts";
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

/** Options of {@linkcode barChart}. */
export interface BarChartOptions extends ChartOptions {
  /** Column of the bars' categories, for example `"expert"` or `"gpu"` (default `"expert"`). */
  x?: string;
  /** Column of the bars' heights (default `"load"`). */
  y?: string;
  /** Column splitting bars into groups side by side, one colour each (default none). */
  series?: string;
  /** Horizontal reference lines, dashed: for example the mean load (default none). */
  rules?: number[];
  /** Label of the x axis (default the column name). */
  xLabel?: string;
  /** Label of the y axis (default the column name). */
  yLabel?: string;
  /** Extent of the y axis, `[min, max]`, so that several charts share one scale (default the data's, with 0). */
  yDomain?: [number, number];
}

/**
 * A bar chart as SVG: one bar per row, for example the load of each expert
 * or the tokens of each GPU, optionally grouped by a series column
 * (methods side by side within each category).
 *
 * @param data A DataFrame (or array of objects) with the x and y columns.
 * @param options Columns, grouping, reference lines, labels, size.
 * @returns A {@linkcode Figure}.
 * @throws {TypeError} If `data` is not a DataFrame or array, or lacks a column.
 * @throws {RangeError} If `width` or `height` is out of range.
 *
 * @example
 * ```ts
 * import { barChart } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const fig = barChart([{ gpu: 0, tokens: 900 }, { gpu: 1, tokens: 1100 }],
 *   { x: "gpu", y: "tokens", rules: [1000] });
 * assert.equal(fig.svg.match(/<rect [^>]*height="[0-9.]+" [^>]*\/>/g)!.length >= 2, true);
 * ```
 */
export function barChart(
  data: PlotData,
  options: BarChartOptions = {},
): Figure {
  checkData(data);
  const { width, height } = chartSize(options);
  const xName = options.x ?? "expert", yName = options.y ?? "load";
  const xs = column(data, xName).map(String);
  const ys = column(data, yName).map(Number);
  const ss = options.series === undefined
    ? undefined
    : column(data, options.series).map(String);
  const labels = ss ? [...new Set(ss)] : [];
  // Categories keep their numeric order (expert 10 after expert 9).
  const domain = [...new Set(xs)].sort((a, b) =>
    Number.isNaN(Number(a)) || Number.isNaN(Number(b))
      ? 0
      : Number(a) - Number(b)
  );
  const marks: Plot.Markish[] = [
    Plot.barY({ length: xs.length }, {
      ...(ss ? { fx: xs, x: ss, fill: ss } : { x: xs, fill: "#4269d0" }),
      y: ys,
    }),
    Plot.ruleY([0]),
  ];
  marks.push(...referenceRules(options.rules));
  const tickEvery = Math.max(1, Math.ceil(domain.length / 32));
  const ticks = domain.filter((_, i) => i % tickEvery === 0);
  const plot = Plot.plot({
    document: plotDocument(),
    width,
    height,
    marginLeft: 56,
    grid: true,
    ...(ss
      ? {
        fx: { domain, label: options.xLabel ?? xName, ticks, padding: 0.1 },
        x: { domain: labels, axis: null },
      }
      : {
        x: { domain, label: options.xLabel ?? xName, ticks, padding: 0.1 },
      }),
    y: {
      label: options.yLabel ?? yName,
      ...(options.yDomain ? { domain: checkDomain(options.yDomain) } : {}),
    },
    color: { domain: labels },
    marks,
  }) as unknown as ScaledPlot;
  return compose(plot, width, {
    title: options.title,
    legend: seriesLegend(plot, labels, "rect"),
  });
}

function checkDomain(d: unknown): [number, number] {
  if (
    !Array.isArray(d) || d.length !== 2 ||
    !d.every((x) => typeof x === "number" && Number.isFinite(x)) ||
    !(d[0] < d[1])
  ) {
    throw new RangeError(
      `yDomain must be two finite numbers [min, max] with min < max: current value is ${
        show(d)
      }`,
    );
  }
  return d as [number, number];
}
