// The WebAssembly SIMD kernel of the row selection op (backend "wasm"): the
// CPU kernel's selection, bit for bit, on lib/wasm/src/select.c. Scores in
// the shared heap are read in place, others copied into the instance's
// memory; the lists grow there as the CPU kernel's do, the kernel stopping
// at a row whose list would not fit.
import { registerKernel } from "./registry.ts";
import { floatsIn, type WasmRuntime, wasmRuntimeOn } from "../wasm/runtime.ts";
import {
  type RowSelectArgs,
  type RowSelection,
  rowSelectOp,
} from "./row_select.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode rowSelectOp}: the same top-k,
 * values, lists and floors as {@linkcode rowSelectCpu}, bit for bit (a
 * float64x2 pass for the candidates, the same ranks and insertions).
 * Needs the runtime; callers pick it through
 * `hostKernel(rowSelectOp, "wasm")`.
 */
export function rowSelectWasm(args: RowSelectArgs): RowSelection {
  const { scores: { data, tokens: N, experts: E }, k, prices } = args;
  const rt = wasmRuntimeOn(data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const at = {
    // Scores in the shared heap (sharedScores, the synthetic workload's
    // batches) are read in place; others are copied in.
    scores: floatsIn(rt, data, "select.scores"),
    prices: rt.reserve("select.prices", E * 8),
    stats: rt.reserve("select.stats", 16),
    slots: rt.reserve("select.slots", N * k * 4),
    vals: rt.reserve("select.vals", N * k * 8),
    held: rt.reserve("select.held", N * k * 4),
    free: rt.reserve("select.free", N * 8),
    floor: rt.reserve("select.floor", N * 8),
    start: rt.reserve("select.start", (N + 1) * 4),
    scratch: rt.reserve(
      "select.scratch",
      rt.exports.moelab_select_scratch_bytes(E),
    ),
  };
  // The CPU kernel's first list size; grown to twice what a row needs.
  let cap = N * 8 + E;
  let list = listRegions(rt, cap);
  rt.f64(at.prices, E).set(prices);
  rt.f64(at.stats, 2).set([NaN, 0]);
  rt.i32(at.start, 1)[0] = 0;
  let from = 0;
  for (;;) {
    from = rt.exports.moelab_select_rows(
      at.scores,
      N,
      E,
      k,
      at.prices,
      from,
      at.stats,
      at.slots,
      at.vals,
      at.held,
      at.free,
      at.floor,
      at.start,
      list.list,
      list.listV,
      list.listS,
      cap,
      at.scratch,
    );
    if (from >= N) break;
    // Row `from` would not fit: the lists move to regions twice the size
    // a whole row more would need, their entries so far copied over (out
    // first: a region given up may be reused for the next).
    const n = rt.i32(at.start + from * 4, 1)[0];
    const kept = {
      list: rt.i32(list.list, n).slice(),
      listV: rt.f64(list.listV, n).slice(),
      listS: rt.f32(list.listS, n).slice(),
    };
    cap = 2 * (n + E);
    list = listRegions(rt, cap);
    rt.i32(list.list, n).set(kept.list);
    rt.f64(list.listV, n).set(kept.listV);
    rt.f32(list.listS, n).set(kept.listS);
  }
  const n = rt.i32(at.start + N * 4, 1)[0];
  return {
    slots: rt.i32(at.slots, N * k).slice(),
    vals: rt.f64(at.vals, N * k).slice(),
    held: rt.f32(at.held, N * k).slice(),
    free: rt.f64(at.free, N).slice(),
    floor: rt.f64(at.floor, N).slice(),
    start: rt.i32(at.start, N + 1).slice(),
    list: rt.i32(list.list, n).slice(),
    listV: rt.f64(list.listV, n).slice(),
    listS: rt.f32(list.listS, n).slice(),
  };
}

/** Regions for `cap` list entries (experts, values, scores). */
function listRegions(
  rt: WasmRuntime,
  cap: number,
): { list: number; listV: number; listS: number } {
  return {
    list: rt.reserve("select.list", cap * 4),
    listV: rt.reserve("select.listV", cap * 8),
    listS: rt.reserve("select.listS", cap * 4),
  };
}

registerKernel({
  op: rowSelectOp,
  backend: "wasm",
  run: rowSelectWasm,
  callers: ["solveBalancedAssignmentSync()", "exact balancer route()"],
});
