import type pl from "nodejs-polars";
import {
  checkFrame,
  expertCount,
  ids,
  loads,
  tableColumn,
} from "./_columns.ts";
import { groupRows } from "./_groups.ts";

/** The loads of one batch and layer, taken from a long load table. */
export interface LoadVector {
  /** Values of the table's id columns (those before `step`), by name. */
  ids: Record<string, unknown>;
  /** The step. */
  step: number;
  /** The layer. */
  layer: number;
  /** `Float64Array` (experts): the load of each expert, 0 where absent. */
  loads: Float64Array;
}

/**
 * Splits a long load table (`...ids, step, layer, expert, load`, as
 * {@linkcode loadTable} and {@linkcode traceLoads} return) into one load
 * vector per ids, step and layer, in order of first appearance. Several
 * rows of the same expert add up.
 *
 * @param table The long load table; columns before `step` are ids.
 * @param options `experts`: vector length `E`. Default: the largest expert
 * index plus 1.
 * @returns The load vectors.
 * @throws {TypeError} If the table lacks `step`, `layer`, `expert` or
 * `load`.
 * @throws {RangeError} If `experts` is not a positive integer or an expert
 * index is at least `experts`.
 *
 * @example
 * ```ts
 * import { loadVectors } from "@moelab/balance/workload";
 * import pl from "nodejs-polars";
 * import assert from "node:assert/strict";
 *
 * const table = pl.DataFrame({
 *   step: [0, 0, 1], layer: [0, 0, 0], expert: [0, 1, 1], load: [3, 1, 4],
 * });
 * const [a, b] = loadVectors(table);
 * assert.deepEqual([...a.loads], [3, 1]);
 * assert.deepEqual([b.step, ...b.loads], [1, 0, 4]);
 * ```
 */
export function loadVectors(
  table: pl.DataFrame,
  options: { experts?: number } = {},
): LoadVector[] {
  checkFrame("table", table);
  const step = ids(tableColumn(table, "step", "table"));
  const layer = ids(tableColumn(table, "layer", "table"));
  const expert = ids(tableColumn(table, "expert", "table"));
  const load = loads(tableColumn(table, "load", "table"));
  const e = expertCount(expert, options.experts, "table");
  const idNames = table.columns.slice(0, table.columns.indexOf("step"));
  const idSeries = idNames.map((n) => table.getColumn(n));
  const idValues = idSeries.map((s) => s.toArray() as unknown[]);
  const { group } = groupRows(idSeries, table.height);
  const index = new Map<string, LoadVector>();
  const out: LoadVector[] = [];
  for (let r = 0; r < table.height; r++) {
    const key = `${group[r]},${step[r]},${layer[r]}`;
    let v = index.get(key);
    if (v === undefined) {
      const idsOf: Record<string, unknown> = {};
      idNames.forEach((n, i) => idsOf[n] = idValues[i][r]);
      v = {
        ids: idsOf,
        step: step[r],
        layer: layer[r],
        loads: new Float64Array(e),
      };
      index.set(key, v);
      out.push(v);
    }
    v.loads[expert[r]] += load[r];
  }
  return out;
}
