// The long tables of a simulation run as Polars DataFrames.
import pl from "nodejs-polars";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import { EP_STRATEGIES } from "../sim/ep_config.ts";
import type { SimResult } from "../sim/run.ts";

/** The Polars DataFrames of a run. */
export interface SimFrames {
  /** `step, layer, method, expert, load`. */
  loads: pl.DataFrame;
  /** `step, layer, method, metric, value`. */
  metrics: pl.DataFrame;
  /** `step, layer, method, expert, bias`. */
  biases: pl.DataFrame;
}

function labelColumn(labels: string[], index: Int32Array): string[] {
  const out = new Array<string>(index.length);
  for (let i = 0; i < index.length; i++) out[i] = labels[index[i]];
  return out;
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
  const { loads, metrics, biases } = result.tables;
  const names = BATCH_METRICS as readonly string[];
  return {
    loads: pl.DataFrame({
      step: pl.Series("step", loads.step, pl.Int32),
      layer: pl.Series("layer", loads.layer, pl.Int32),
      method: pl.Series(
        "method",
        labelColumn(result.labels, loads.method),
        pl.Utf8,
      ),
      expert: pl.Series("expert", loads.expert, pl.Int32),
      load: pl.Series("load", loads.load, pl.Int32),
    }),
    metrics: pl.DataFrame({
      step: pl.Series("step", metrics.step, pl.Int32),
      layer: pl.Series("layer", metrics.layer, pl.Int32),
      method: pl.Series(
        "method",
        labelColumn(result.labels, metrics.method),
        pl.Utf8,
      ),
      metric: pl.Series(
        "metric",
        Array.from(metrics.metric, (q) => names[q]),
        pl.Utf8,
      ),
      value: pl.Series("value", metrics.value, pl.Float64),
    }),
    biases: pl.DataFrame({
      step: pl.Series("step", biases.step, pl.Int32),
      layer: pl.Series("layer", biases.layer, pl.Int32),
      method: pl.Series(
        "method",
        labelColumn(result.labels, biases.method),
        pl.Utf8,
      ),
      expert: pl.Series("expert", biases.expert, pl.Int32),
      bias: pl.Series("bias", biases.bias, pl.Float64),
    }),
  };
}

/**
 * `gpu_loads(step, layer, method, strategy, gpu, tokens)` of a run as a
 * Polars DataFrame, or null when the EP stage was off.
 */
export function gpuLoadsFrame(result: SimResult): pl.DataFrame | null {
  const t = result.ep?.table;
  if (!t) return null;
  return pl.DataFrame({
    step: pl.Series("step", t.step, pl.Int32),
    layer: pl.Series("layer", t.layer, pl.Int32),
    method: pl.Series(
      "method",
      Array.from(t.method, (m) => result.labels[m]),
      pl.Utf8,
    ),
    strategy: pl.Series(
      "strategy",
      Array.from(t.strategy, (k) => EP_STRATEGIES[k]),
      pl.Utf8,
    ),
    gpu: pl.Series("gpu", t.gpu, pl.Int32),
    tokens: pl.Series("tokens", t.tokens, pl.Int32),
  });
}
