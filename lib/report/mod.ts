/**
 * Figures and reports of simulation runs: SVG charts drawn with Observable
 * Plot ({@linkcode lineChart}, {@linkcode heatmap}, {@linkcode barChart}),
 * the standard plots of a run ({@linkcode convergencePlot},
 * {@linkcode loadHeatmap}), tables and Markdown for Jupyter notebooks
 * ({@linkcode display}, {@linkcode htmlTable}), and one self-contained HTML
 * page per run ({@linkcode simReportHtml}).
 *
 * This entry point loads Observable Plot, linkedom and Polars when
 * imported; the simulator itself is in the core, `@moelab/balance`.
 *
 * @example MaxVio_batch over steps of a run, as SVG
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { convergencePlot } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const run = runSimulation({
 *   experts: 8, topK: 2, tokens: 256, layers: 1, steps: 5,
 *   methods: ["greedy", "loss-free"],
 * });
 * const figure = convergencePlot(run);
 * assert.ok(figure.svg.startsWith("<svg"));
 * assert.match(figure.svg, /loss-free/);
 * ```
 *
 * @module
 */
export { Figure } from "./figure.ts";
export type { MimeBundle } from "./_jupyter.ts";
export type { ChartOptions, PlotData } from "./_plot.ts";
export { lineChart, type LineChartOptions } from "./line_chart.ts";
export { heatmap, type HeatmapOptions } from "./heatmap.ts";
export { barChart, type BarChartOptions } from "./bar_chart.ts";
export {
  type BatchMetric,
  convergencePlot,
  loadHeatmap,
  metricOverSteps,
  mostImbalancedLayer,
} from "./sim_plots.ts";
export { display, htmlTable, markdown, Rendered } from "./display.ts";
export { simReportHtml } from "./html_report.ts";
export {
  adviceGpuLoadsChart,
  adviceIntervalChart,
  adviceReportHtml,
  type AdviceTable,
  adviceTable,
} from "./advise_page.ts";
export { gpuLoadsFrame, type SimFrames, simFrames } from "./sim_frames.ts";
export { writeSimOutputs } from "./sim_outputs.ts";
