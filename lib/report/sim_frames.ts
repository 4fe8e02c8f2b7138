// The long tables of a simulation run as Polars DataFrames.
import type pl from "nodejs-polars";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import { EP_STRATEGIES } from "../sim/ep_config.ts";
import type { SimResult } from "../sim/run.ts";
import { indexColumns } from "../sim/tables.ts";
import { tableFrame, type TableSource } from "./_table_writer.ts";

/** The Polars DataFrames of a run. */
export interface SimFrames {
  /** `step, layer, method, expert, load`. */
  loads: pl.DataFrame;
  /** `step, layer, method, metric, value`. */
  metrics: pl.DataFrame;
  /** `step, layer, method, expert, bias`. */
  biases: pl.DataFrame;
}

/**
 * The long tables of a run as {@linkcode TableSource}s: index columns built
 * from a row's position, slice by slice, so that writing them never builds
 * a whole column.
 */
export function simTableSources(result: SimResult): {
  loads: TableSource;
  metrics: TableSource;
  biases: TableSource;
} {
  const { steps, layers, experts: E } = result.config;
  const M = result.labels.length;
  const all = Array.from({ length: layers }, (_, l) => l);
  const method = {
    name: "method",
    kind: "label",
    labels: result.labels,
  } as const;
  const perExpert = (
    name: "load" | "bias",
    values: Int32Array | Float64Array,
  ): TableSource => ({
    rows: values.length,
    columns: [
      { name: "step", kind: "int32" },
      { name: "layer", kind: "int32" },
      method,
      { name: "expert", kind: "int32" },
      { name, kind: name === "load" ? "int32" : "float64" },
    ],
    slice(from, to) {
      const c = indexColumns(steps, all, M, E, from, to);
      return [c.step, c.layer, c.method, c.inner, values.subarray(from, to)];
    },
  });
  const value = result.tables.metrics.value;
  const Q = BATCH_METRICS.length;
  return {
    loads: perExpert("load", result.tables.loads.load),
    biases: perExpert("bias", result.tables.biases.bias),
    metrics: {
      rows: value.length,
      columns: [
        { name: "step", kind: "int32" },
        { name: "layer", kind: "int32" },
        method,
        { name: "metric", kind: "label", labels: BATCH_METRICS },
        { name: "value", kind: "float64" },
      ],
      slice(from, to) {
        const c = indexColumns(steps, all, M, Q, from, to);
        return [c.step, c.layer, c.method, c.inner, value.subarray(from, to)];
      },
    },
  };
}

/** `gpu_loads` of a run as a {@linkcode TableSource}, or null when the EP stage was off. */
export function gpuLoadsSource(result: SimResult): TableSource | null {
  const t = result.ep?.table;
  if (!t) return null;
  const columns = [t.step, t.layer, t.method, t.strategy, t.gpu, t.tokens];
  return {
    rows: t.tokens.length,
    columns: [
      { name: "step", kind: "int32" },
      { name: "layer", kind: "int32" },
      { name: "method", kind: "label", labels: result.labels },
      { name: "strategy", kind: "label", labels: EP_STRATEGIES },
      { name: "gpu", kind: "int32" },
      { name: "tokens", kind: "int32" },
    ],
    slice: (from, to) => columns.map((c) => c.subarray(from, to)),
  };
}

/**
 * The long tables of a run as Polars DataFrames (`loads`, `metrics`,
 * `biases`), with the method column holding labels.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { simFrames } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 });
 * const { loads } = simFrames(r);
 * assert.deepEqual(loads.columns, ["step", "layer", "method", "expert", "load"]);
 * assert.equal(loads.height, 2 * 1 * 2 * 8);
 * ```
 */
export function simFrames(result: SimResult): SimFrames {
  const sources = simTableSources(result);
  return {
    loads: tableFrame(sources.loads),
    metrics: tableFrame(sources.metrics),
    biases: tableFrame(sources.biases),
  };
}

/**
 * `gpu_loads(step, layer, method, strategy, gpu, tokens)` of a run as a
 * Polars DataFrame, or null when the EP stage was off.
 */
export function gpuLoadsFrame(result: SimResult): pl.DataFrame | null {
  const source = gpuLoadsSource(result);
  return source ? tableFrame(source) : null;
}
