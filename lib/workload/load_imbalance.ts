import pl from "nodejs-polars";
import { maxOverMean, maxVio } from "../metrics/load_metrics.ts";
import { loadVectors } from "./load_vectors.ts";

/**
 * Expert-level imbalance of every batch and layer of a long load table:
 * `...ids, step, layer, totalLoad, maxOverMean, maxVio`, where `totalLoad`
 * is the sum of the loads (tokens x K), `maxOverMean = max_j c[j] / mean` and
 * `maxVio = (max_j c[j] - mean) / mean` over the `E` experts (the largest
 * expert index plus 1 over the whole table, absent experts counting 0).
 *
 * @param table A long load table, as {@linkcode loadTable},
 * {@linkcode traceLoads} or {@linkcode olmoeExpertCounts} return.
 * @param options `experts`: `E`. Default: the largest expert index plus 1.
 * @returns One row per ids, step and layer, in order of first appearance.
 * @throws {TypeError} If the table lacks `step`, `layer`, `expert` or
 * `load`.
 * @throws {RangeError} If `experts` is not a positive integer or is not
 * above every expert index.
 *
 * @example
 * ```ts
 * import { loadImbalance } from "@moelab/balance/workload";
 * import pl from "nodejs-polars";
 * import assert from "node:assert/strict";
 *
 * const t = loadImbalance(pl.DataFrame({
 *   step: [0, 0, 0, 0], layer: [0, 0, 0, 0], expert: [0, 1, 2, 3], load: [4, 2, 1, 1],
 * }));
 * assert.deepEqual(t.toRecords(), [
 *   { step: 0, layer: 0, totalLoad: 8, maxOverMean: 2, maxVio: 1 },
 * ]);
 * ```
 */
export function loadImbalance(
  table: pl.DataFrame,
  options: { experts?: number } = {},
): pl.DataFrame {
  const vectors = loadVectors(table, options);
  const n = vectors.length;
  const step = new Int32Array(n);
  const layer = new Int32Array(n);
  const tokens = new Float64Array(n);
  const mom = new Float64Array(n);
  const vio = new Float64Array(n);
  vectors.forEach((v, i) => {
    step[i] = v.step;
    layer[i] = v.layer;
    for (let j = 0; j < v.loads.length; j++) tokens[i] += v.loads[j];
    mom[i] = maxOverMean(v.loads);
    vio[i] = maxVio(v.loads);
  });
  const idNames = table.columns.slice(0, table.columns.indexOf("step"));
  return pl.DataFrame([
    ...idNames.map((name) =>
      pl.Series(
        name,
        vectors.map((v) => v.ids[name]),
        table.getColumn(name).dtype,
      )
    ),
    pl.Series("step", step, pl.Int32),
    pl.Series("layer", layer, pl.Int32),
    pl.Series("totalLoad", tokens, pl.Float64),
    pl.Series("maxOverMean", mom, pl.Float64),
    pl.Series("maxVio", vio, pl.Float64),
  ]);
}
