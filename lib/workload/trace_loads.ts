import type pl from "nodejs-polars";
import { checkInteger } from "../validate.ts";
import {
  checkFrame,
  expertCount,
  ids,
  longTable,
  numberLists,
  tableColumn,
} from "./_columns.ts";
import { groupRows } from "./_groups.ts";

/** Options of {@linkcode traceLoads}. */
export interface TraceLoadsOptions {
  /**
   * Tokens per batch: the tokens of each layer, in row order within their
   * ids group, are cut into consecutive batches of this many (the last one
   * may be shorter), numbered from 0 in the output's `step`. Default: keep
   * the trace's own steps.
   */
  batchTokens?: number;
  /**
   * Number of experts `E`. Default: the largest expert id plus 1. Every
   * expert gets a row, zero loads included, so that means are over `E`.
   */
  experts?: number;
}

const TRACE_COLUMNS = new Set(["step", "layer", "token", "experts", "probs"]);

/**
 * Aggregates a per-token trace (from {@linkcode tokenTrace}) to a long load
 * table `...ids, step, layer, expert, load`: `load` counts the tokens that
 * selected `expert` in that batch and layer. Rows are ordered by ids group
 * (first appearance), step, layer, expert.
 *
 * @param trace The per-token trace; columns other than `step, layer,
 * token, experts, probs` are ids.
 * @param options Batch size and number of experts.
 * @returns The long load table (`load`: Float64, exact token counts).
 * @throws {TypeError} If `trace` lacks the `experts`, `step` or `layer`
 * column.
 * @throws {RangeError} If `batchTokens` or `experts` is not a positive
 * integer, or an expert id is at least `experts`.
 *
 * @example Top-2 routing of four tokens, batches of two tokens
 * ```ts
 * import { tokenTrace, traceLoads } from "@moelab/balance/workload";
 * import pl from "nodejs-polars";
 * import assert from "node:assert/strict";
 *
 * const trace = tokenTrace(pl.DataFrame({ experts: [[0, 1], [0, 2], [3, 0], [1, 0]] }));
 * const loads = traceLoads(trace, { batchTokens: 2 });
 * assert.deepEqual([...loads.getColumn("step")], [0, 0, 0, 0, 1, 1, 1, 1]);
 * assert.deepEqual([...loads.getColumn("load")], [2, 1, 1, 0, 2, 1, 0, 1]);
 * ```
 */
export function traceLoads(
  trace: pl.DataFrame,
  options: TraceLoadsOptions = {},
): pl.DataFrame {
  checkFrame("trace", trace);
  const batch = options.batchTokens === undefined
    ? 0
    : checkInteger("options.batchTokens", options.batchTokens, 1);
  const rows = trace.height;
  const list = numberLists(tableColumn(trace, "experts", "trace"));
  const { offsets, values } = list;
  const layer = ids(tableColumn(trace, "layer", "trace"));
  const step = batch > 0
    ? new Int32Array(rows)
    : ids(tableColumn(trace, "step", "trace"));
  const e = expertCount(values, options.experts, "trace");
  const idSeries = trace.columns.filter((c) => !TRACE_COLUMNS.has(c)).map(
    (c) => trace.getColumn(c),
  );
  const { group, first } = groupRows(idSeries, rows);
  let maxLayer = 0;
  for (let r = 0; r < rows; r++) maxLayer = Math.max(maxLayer, layer[r]);
  if (batch > 0) {
    // The batch of a token is its position among the tokens of its group
    // and layer, divided by the batch size.
    const seen = new Float64Array(first.length * (maxLayer + 1));
    for (let r = 0; r < rows; r++) {
      const at = group[r] * (maxLayer + 1) + layer[r];
      step[r] = Math.floor(seen[at]++ / batch);
    }
  }
  let maxStep = 0;
  for (let r = 0; r < rows; r++) maxStep = Math.max(maxStep, step[r]);
  // One block of E loads per (group, step, layer) present in the trace.
  const blockOf = new Map<number, number>();
  const keys: number[] = [];
  const rowBlock = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const key = (group[r] * (maxStep + 1) + step[r]) * (maxLayer + 1) +
      layer[r];
    let b = blockOf.get(key);
    if (b === undefined) {
      b = keys.length;
      blockOf.set(key, b);
      keys.push(key);
    }
    rowBlock[r] = b;
  }
  const counts = new Float64Array(keys.length * e);
  for (let r = 0; r < rows; r++) {
    const base = rowBlock[r] * e;
    for (let k = offsets[r]; k < offsets[r + 1]; k++) {
      counts[base + values[k]]++;
    }
  }
  // Keys grow with group, then step, then layer: sorting them orders blocks.
  const order = keys.map((_, b) => b).sort((a, b) => keys[a] - keys[b]);
  const n = order.length * e;
  const outStep = new Int32Array(n);
  const outLayer = new Int32Array(n);
  const outExpert = new Int32Array(n);
  const outLoad = new Float64Array(n);
  const gather = new Array<number>(n);
  for (let i = 0; i < order.length; i++) {
    const key = keys[order[i]];
    const l = key % (maxLayer + 1);
    const s = Math.floor(key / (maxLayer + 1)) % (maxStep + 1);
    const g = Math.floor(key / ((maxLayer + 1) * (maxStep + 1)));
    for (let j = 0; j < e; j++) {
      const at = i * e + j;
      outStep[at] = s;
      outLayer[at] = l;
      outExpert[at] = j;
      outLoad[at] = counts[order[i] * e + j];
      gather[at] = first[g];
    }
  }
  return longTable(idSeries, gather, outStep, outLayer, outExpert, outLoad);
}
