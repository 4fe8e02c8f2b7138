import { checkChoice, checkInteger } from "../validate.ts";
import {
  BATCH_METRICS,
  type BatchMetric,
  METRIC,
} from "../metrics/batch_metrics.ts";
import type { SimResult } from "../sim/run.ts";
import type { Figure } from "./figure.ts";
import { heatmap } from "./heatmap.ts";
import { lineChart } from "./line_chart.ts";

export type { BatchMetric };

const METRIC_LABELS: Record<BatchMetric, string> = {
  maxVio: "MaxVio_batch",
  cv: "CV of loads",
  maxOverMean: "max / mean load",
  zeroExperts: "experts with no tokens",
  scoreRetention: "score retention",
  droppedFraction: "dropped fraction",
  tokensWithoutExpert: "tokens without an expert",
};

/**
 * A per-batch metric of a run, averaged over layers: one row per step and
 * method, `{ step, method, value }`, in step order.
 *
 * @param result A run of {@linkcode runSimulation}.
 * @param metric Which metric (default `"maxVio"`, i.e. MaxVio_batch).
 * @returns Rows `{ step, method, value }`, methods by label.
 * @throws {RangeError} If `metric` is not a batch metric.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { metricOverSteps } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 3, layers: 2, tokens: 64, experts: 8, topK: 2 });
 * const rows = metricOverSteps(r);
 * assert.equal(rows.length, 3 * 2);
 * assert.deepEqual(Object.keys(rows[0]), ["step", "method", "value"]);
 * ```
 */
export function metricOverSteps(
  result: SimResult,
  metric: BatchMetric = "maxVio",
): { step: number; method: string; value: number }[] {
  const q = METRIC[checkChoice("metric", metric, BATCH_METRICS)];
  const { steps, layers } = result.config;
  const M = result.labels.length;
  const sum = new Float64Array(steps * M);
  const value = result.tables.metrics.value;
  const Q = BATCH_METRICS.length;
  // Rows are ordered (step, layer, method, metric).
  for (let s = 0; s < steps; s++) {
    for (let l = 0; l < layers; l++) {
      for (let m = 0; m < M; m++) {
        sum[s * M + m] += value[((s * layers + l) * M + m) * Q + q];
      }
    }
  }
  const rows = [];
  for (let s = 0; s < steps; s++) {
    for (let m = 0; m < M; m++) {
      rows.push({
        step: s,
        method: result.labels[m],
        value: sum[s * M + m] / layers,
      });
    }
  }
  return rows;
}

/**
 * The convergence plot: a batch metric (default MaxVio_batch), averaged over
 * layers, over steps, one line per method, log scale by default. The dashed
 * line is the run's `balanceThreshold` when the metric is MaxVio.
 *
 * @param result A run of {@linkcode runSimulation}.
 * @param options `metric` (default `"maxVio"`), `logY` (default true), `title`, `width`, `height`.
 * @returns A {@linkcode Figure}.
 * @throws {RangeError} If `metric` is not a batch metric.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { convergencePlot } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 5, layers: 1, tokens: 256, experts: 8, topK: 2 });
 * assert.match(convergencePlot(r).svg, /MaxVio_batch/);
 * ```
 */
export function convergencePlot(
  result: SimResult,
  options: {
    metric?: BatchMetric;
    logY?: boolean;
    title?: string;
    width?: number;
    height?: number;
  } = {},
): Figure {
  const metric = options.metric ?? "maxVio";
  const label = METRIC_LABELS[metric] ?? metric;
  return lineChart(metricOverSteps(result, metric), {
    logY: options.logY ?? true,
    title: options.title ?? `${label} over steps (mean over layers)`,
    yLabel: label,
    rules: metric === "maxVio" ? [result.config.balanceThreshold] : [],
    width: options.width,
    height: options.height,
  });
}

/**
 * The layer whose loads are least balanced: the highest MaxVio_batch
 * averaged over all steps and methods (ties to the lowest layer).
 *
 * @param result A run of {@linkcode runSimulation}.
 * @returns The layer index.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { mostImbalancedLayer } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 3, layers: 4, tokens: 128, experts: 8, topK: 2 });
 * const layer = mostImbalancedLayer(r);
 * assert.ok(layer >= 0 && layer < 4);
 * ```
 */
export function mostImbalancedLayer(result: SimResult): number {
  const { steps, layers } = result.config;
  const sum = new Float64Array(layers);
  const value = result.tables.metrics.value;
  const M = result.labels.length, Q = BATCH_METRICS.length;
  const q = METRIC.maxVio;
  // Rows are ordered (step, layer, method, metric).
  for (let s = 0; s < steps; s++) {
    for (let l = 0; l < layers; l++) {
      for (let m = 0; m < M; m++) {
        sum[l] += value[((s * layers + l) * M + m) * Q + q];
      }
    }
  }
  let best = 0;
  for (let l = 1; l < sum.length; l++) if (sum[l] > sum[best]) best = l;
  return best;
}

/**
 * A heatmap of one layer's load per expert over steps, one panel per
 * method, coloured by load over the batch's mean load (1 = balanced, white;
 * blue below, red above). Steps are averaged in bins so that at most
 * `maxColumns` columns are drawn.
 *
 * @param result A run of {@linkcode runSimulation}.
 * @param options `layer` (default the {@linkcode mostImbalancedLayer}),
 * `maxColumns` (default 80), `title`, `width`, `height` (of each panel).
 * @returns A {@linkcode Figure}.
 * @throws {RangeError} If `layer` or `maxColumns` is out of range.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { loadHeatmap } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 4, layers: 2, tokens: 128, experts: 8, topK: 2 });
 * assert.match(loadHeatmap(r, { layer: 1 }).svg, /load \/ mean/);
 * ```
 */
export function loadHeatmap(
  result: SimResult,
  options: {
    layer?: number;
    maxColumns?: number;
    title?: string;
    width?: number;
    height?: number;
  } = {},
): Figure {
  const { steps, layers, experts: E } = result.config;
  const layer = options.layer === undefined
    ? mostImbalancedLayer(result)
    : checkInteger("layer", options.layer, 0, layers - 1);
  const maxColumns = checkInteger("maxColumns", options.maxColumns ?? 80, 1);
  const bin = Math.ceil(steps / maxColumns);
  const bins = Math.ceil(steps / bin);
  const M = result.labels.length;
  const load = result.tables.loads.load;
  // Load over the batch mean, per (method, bin, expert); rows are ordered
  // (step, layer, method, expert).
  const rel = new Float64Array(M * bins * E);
  for (let s = 0; s < steps; s++) {
    const b = Math.floor(s / bin);
    const width = Math.min(bin, steps - b * bin);
    for (let m = 0; m < M; m++) {
      const row = ((s * layers + layer) * M + m) * E;
      let total = 0;
      for (let j = 0; j < E; j++) total += load[row + j];
      const mean = total / E;
      if (!(mean > 0)) continue;
      for (let j = 0; j < E; j++) {
        rel[(m * bins + b) * E + j] += load[row + j] / mean / width;
      }
    }
  }
  const rows = [];
  for (let m = 0; m < M; m++) {
    for (let b = 0; b < bins; b++) {
      for (let j = 0; j < E; j++) {
        rows.push({
          step: b * bin,
          expert: j,
          method: result.labels[m],
          load: rel[(m * bins + b) * E + j],
        });
      }
    }
  }
  return heatmap(rows, {
    facet: M > 1 ? "method" : undefined,
    cellWidth: bin,
    pivot: 1,
    fillLabel: "load / mean load",
    title: options.title ??
      `Load per expert over steps, layer ${layer}${
        bin > 1 ? ` (mean over ${bin} steps a column)` : ""
      }`,
    width: options.width,
    height: options.height ?? Math.max(120, Math.min(260, E * 3)),
  });
}
