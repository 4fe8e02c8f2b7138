// One pass over the scores under expert prices `q` for the exact solver
// (the rowSelect op, lib/ops/row_select.ts): each token's top-k of s - q
// (ties to the lowest expert), the best value it leaves out, and the other
// experts near its top with their values. The price steps take their
// margins and gaps from these lists and the table of cheapest moves takes
// its targets from them, so neither reads the scores again (at 16384 x 256
// each pass over them is a trip through 16 MiB of memory). After a small
// price step, reselectRows ranks the lists again instead (the rowReselect
// op).
import type { HostBackend } from "../ops/host.ts";
import { hostKernel } from "../ops/host.ts";
import {
  rowReselectOp,
  type RowSelection,
  rowSelectOp,
} from "../ops/row_select.ts";
import "../ops/row_select_wasm.ts";

export type { RowSelection };

/**
 * Selects every row of `s` (`tokens x E`) under the prices `q` with the
 * row selection op's kernel on `host` (the same answers on either): see
 * {@linkcode rowSelectOp}.
 */
export function selectRows(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  q: Float64Array,
  host: HostBackend = "wasm",
): RowSelection {
  return hostKernel(rowSelectOp, host).run({
    scores: { data: s, tokens, experts: E },
    k,
    prices: q,
  }, {});
}

/**
 * The selection under new prices `q` from `prev`, the selection of the
 * same scores under `old` (k < E), with the rowReselect op's kernel on
 * `host` (the same answers on either): see {@linkcode rowReselectOp}.
 */
export function reselectRows(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  prev: RowSelection,
  old: Float64Array,
  q: Float64Array,
  host: HostBackend = "wasm",
): RowSelection {
  return hostKernel(rowReselectOp, host).run({
    scores: { data: s, tokens, experts: E },
    k,
    prev,
    old,
    prices: q,
  }, {});
}
