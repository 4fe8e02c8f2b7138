// The WebAssembly SIMD kernel of the row selection op (backend "wasm"): the
// CPU kernel's selection, bit for bit, on lib/wasm/src/select.c. Scores in
// the shared heap are read in place, others copied into the instance's
// memory; the lists grow there as the CPU kernel's do, the kernel stopping
// at a row whose list would not fit.
import { registerKernel } from "./registry.ts";
import { floatsIn, type WasmRuntime, wasmRuntimeOn } from "../wasm/runtime.ts";
import {
  priceCuts,
  type RowReselectArgs,
  rowReselectOp,
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
    ...rowRegions(rt, N, E, k),
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
    ({ cap, list } = grownRegions(rt, at.start, from, E, list));
  }
  return selectionOut(rt, at, N, k, list);
}

/**
 * The WebAssembly kernel of {@linkcode rowReselectOp}: the same top-k,
 * values, lists and floors as {@linkcode rowReselectCpu}, bit for bit.
 * Needs the runtime; callers pick it through
 * `hostKernel(rowReselectOp, "wasm")`.
 */
export function rowReselectWasm(args: RowReselectArgs): RowSelection {
  const { scores: { data, tokens: N, experts: E }, k, prev, old, prices } =
    args;
  const rt = wasmRuntimeOn(data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const n0 = prev.start[N];
  // The CPU kernel's order of the experts and tolerance scale (the
  // kernel computes the changes themselves).
  const { spread, byCut } = priceCuts(old, prices);
  const at = {
    scores: floatsIn(rt, data, "select.scores"),
    pSlots: rt.reserve("reselect.slots", N * k * 4),
    pHeld: rt.reserve("reselect.held", N * k * 4),
    pFloor: rt.reserve("reselect.floor", N * 8),
    pStart: rt.reserve("reselect.start", (N + 1) * 4),
    pList: rt.reserve("reselect.list", n0 * 4),
    pListS: rt.reserve("reselect.listS", n0 * 4),
    old: rt.reserve("reselect.old", E * 8),
    prices: rt.reserve("select.prices", E * 8),
    byCut: rt.reserve("reselect.byCut", E * 4),
    ...rowRegions(rt, N, E, k),
    delta: rt.reserve("reselect.delta", E * 8),
    candS: rt.reserve("reselect.candS", E * 4),
    rankS: rt.reserve("reselect.rankS", E * 4),
    byV: rt.reserve("reselect.byV", E * 8),
    byS: rt.reserve("reselect.byS", E * 4),
    taken: rt.reserve("reselect.taken", E * 4),
  };
  // The CPU kernel's first list size; grown to twice what a row needs.
  let cap = n0 + E;
  let list = listRegions(rt, cap);
  rt.i32(at.pSlots, N * k).set(prev.slots.subarray(0, N * k));
  rt.f32(at.pHeld, N * k).set(prev.held.subarray(0, N * k));
  rt.f64(at.pFloor, N).set(prev.floor.subarray(0, N));
  rt.i32(at.pStart, N + 1).set(prev.start.subarray(0, N + 1));
  rt.i32(at.pList, n0).set(prev.list.subarray(0, n0));
  rt.f32(at.pListS, n0).set(prev.listS.subarray(0, n0));
  rt.f64(at.old, E).set(old);
  rt.f64(at.prices, E).set(prices);
  rt.i32(at.byCut, E).set(byCut);
  rt.i32(at.start, 1)[0] = 0;
  let from = 0;
  for (;;) {
    from = rt.exports.moelab_reselect_rows(
      at.scores,
      N,
      E,
      k,
      at.pSlots,
      at.pHeld,
      at.pFloor,
      at.pStart,
      at.pList,
      at.pListS,
      at.old,
      at.prices,
      at.byCut,
      spread,
      from,
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
      at.delta,
      at.candS,
      at.rankS,
      at.byV,
      at.byS,
      at.taken,
    );
    if (from >= N) break;
    ({ cap, list } = grownRegions(rt, at.start, from, E, list));
  }
  return selectionOut(rt, at, N, k, list);
}

/**
 * Regions for a selection's per-token arrays (the kernels' outputs) and
 * the kernels' scratch.
 */
function rowRegions(rt: WasmRuntime, N: number, E: number, k: number) {
  return {
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
}

/** The list regions' addresses. */
interface ListRegions {
  list: number;
  listV: number;
  listS: number;
}

/**
 * Where row `from` would not fit: list regions twice the size a whole row
 * more would need, the entries so far copied over (out first: a region
 * given up may be reused for the next).
 */
function grownRegions(
  rt: WasmRuntime,
  start: number,
  from: number,
  E: number,
  list: ListRegions,
): { cap: number; list: ListRegions } {
  const n = rt.i32(start + from * 4, 1)[0];
  const kept = {
    list: rt.i32(list.list, n).slice(),
    listV: rt.f64(list.listV, n).slice(),
    listS: rt.f32(list.listS, n).slice(),
  };
  const cap = 2 * (n + E);
  const grown = listRegions(rt, cap);
  rt.i32(grown.list, n).set(kept.list);
  rt.f64(grown.listV, n).set(kept.listV);
  rt.f32(grown.listS, n).set(kept.listS);
  return { cap, list: grown };
}

/** The selection the kernel wrote, copied out of the runtime's memory. */
function selectionOut(
  rt: WasmRuntime,
  at: {
    slots: number;
    vals: number;
    held: number;
    free: number;
    floor: number;
    start: number;
  },
  N: number,
  k: number,
  list: ListRegions,
): RowSelection {
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
): ListRegions {
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

registerKernel({
  op: rowReselectOp,
  backend: "wasm",
  run: rowReselectWasm,
  callers: ["solveBalancedAssignmentSync()", "exact balancer route()"],
});
