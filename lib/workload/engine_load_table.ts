import type pl from "nodejs-polars";
import { show } from "../validate.ts";
import type { EngineLoads } from "../serving/engine_loads.ts";
import { longTable } from "./_columns.ts";

/**
 * Turns a serving engine's recording (see `readEngineLoads` in
 * `@moelab/balance/serving`) into the long load table `step, layer,
 * expert, load` that {@linkcode loadTable} gives for CSV and parquet, one
 * row per step, layer and logical expert, zeros included.
 *
 * @param loads The recording, as `engineLoads` or `readEngineLoads` return it.
 * @returns The long load table (`step`, `layer`, `expert`: Int32; `load`: Float64).
 * @throws {TypeError} If `loads` is not shaped as `EngineLoads`.
 *
 * @example TensorRT-LLM statistics of two ranks, as a load table
 * ```ts
 * import { engineLoadTable, loadVectors } from "@moelab/balance/workload";
 * import { readEngineLoads } from "@moelab/balance/serving";
 * import assert from "node:assert/strict";
 *
 * const table = engineLoadTable(readEngineLoads("data/fixtures/trtllm"));
 * assert.deepEqual(table.columns, ["step", "layer", "expert", "load"]);
 * const first = loadVectors(table)[0];
 * assert.deepEqual([first.step, first.layer, first.loads.length], [10, 3, 8]);
 * ```
 */
export function engineLoadTable(loads: EngineLoads): pl.DataFrame {
  const { steps, layers, experts, counts } = loads ?? {};
  if (
    !Array.isArray(steps) || !Array.isArray(layers) ||
    !Number.isSafeInteger(experts) || !(counts instanceof Float64Array) ||
    counts.length !== steps.length * layers.length * experts
  ) {
    throw new TypeError(
      `loads must hold steps, layers, experts and counts (steps x layers x experts): current value is ${
        show(loads)
      }`,
    );
  }
  const n = counts.length;
  const step = new Int32Array(n);
  const layer = new Int32Array(n);
  const expert = new Int32Array(n);
  for (let at = 0; at < n; at++) {
    const cell = Math.floor(at / experts);
    step[at] = steps[Math.floor(cell / layers.length)];
    layer[at] = layers[cell % layers.length];
    expert[at] = at % experts;
  }
  return longTable([], null, step, layer, expert, Float64Array.from(counts));
}
