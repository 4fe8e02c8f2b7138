// The rows of the route op's WebAssembly SIMD kernel (lib/wasm/src/route.c)
// on this thread's instance: blocks of rows copied into the instance's
// memory (a block stays in cache while the kernel reads it), routed there,
// the experts and weights copied out. Used by the "wasm" kernel
// (route_wasm.ts) on the calling thread and by the routing workers
// (_route_worker.ts), each on its own instance.
import { wasmRuntime } from "../wasm/runtime.ts";
import type { RowSettings } from "./_route_rows.ts";

/** Bytes of scores copied into the instance's memory per kernel call. */
const BLOCK_BYTES = 1 << 16;

/** Float64 entries of the kernel's running state (route.c ST_SIZE). */
const STATE_SIZE = 8;

/**
 * A router of row ranges of one batch on this thread's WebAssembly
 * instance, like `rowRouter` (_route_blocks.ts): each call routes rows
 * `[from, to)` of `data` (tokens x `E`) into `outE`, `outW` (tokens x `k`),
 * adds their counts to `loads`, and returns the flat index of the first
 * NaN or `+Infinity` score met (the lowest of its row), or -1; the running
 * threshold carries from one call to the next. `undefined` where the
 * engine cannot run the module.
 */
export function wasmRowRouter(
  data: Float32Array,
  E: number,
  k: number,
  s: RowSettings,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
): ((from: number, to: number) => number) | undefined {
  const rt = wasmRuntime();
  if (rt === undefined) return undefined;
  const groups = s.groups ?? 1;
  const topGroups = s.topGroups ?? groups;
  const perGroup = s.perGroup ??
    Math.max(1, Math.min(E / groups, Math.floor(k / topGroups)));
  const blockRows = Math.max(1, Math.floor(BLOCK_BYTES / (4 * E)));
  const kernel = rt.exports.moelab_route_rows;
  const at = {
    scores: rt.reserve("route.scores", 4 * blockRows * E),
    experts: rt.reserve("route.experts", 4 * blockRows * k),
    weights: rt.reserve("route.weights", 4 * blockRows * k),
    loads: rt.reserve("route.loads", 4 * E),
    bias: rt.reserve("route.bias", 8 * E),
    state: rt.reserve("route.state", 8 * STATE_SIZE),
    scratch: rt.reserve(
      "route.scratch",
      rt.exports.moelab_route_scratch_bytes(E, k, groups, perGroup),
    ),
  };
  // The bias as float64 (zeros for none: x + 0 orders as x); a
  // multiplicative bias only where there is one.
  const bias = rt.f64(at.bias, E);
  if (s.bias) bias.set(s.bias);
  else bias.fill(0);
  const multiply = s.multiply && s.bias !== undefined ? 1 : 0;
  rt.f64(at.state, STATE_SIZE).fill(NaN);
  let buffer: ArrayBufferLike | undefined;
  let scoresIn!: Float32Array, expertsOut!: Int32Array;
  let weightsOut!: Float32Array, loadsIn!: Int32Array;
  return (from, to) => {
    if (buffer !== rt.memory.buffer) {
      // (Re)take the views: memory grown since, by another kernel.
      buffer = rt.memory.buffer;
      scoresIn = rt.f32(at.scores, blockRows * E);
      expertsOut = rt.i32(at.experts, blockRows * k);
      weightsOut = rt.f32(at.weights, blockRows * k);
      loadsIn = rt.i32(at.loads, E);
    }
    loadsIn.fill(0);
    let bad = -1;
    for (let lo = from; lo < to; lo += blockRows) {
      const rows = Math.min(to - lo, blockRows);
      scoresIn.set(data.subarray(lo * E, (lo + rows) * E));
      const found = kernel(
        at.scores,
        rows,
        E,
        k,
        at.bias,
        multiply,
        s.normalize ? 1 : 0,
        s.scale,
        groups,
        topGroups,
        perGroup,
        at.experts,
        at.weights,
        at.loads,
        at.state,
        at.scratch,
      );
      if (found >= 0) {
        bad = lo * E + found;
        break;
      }
      outE.set(expertsOut.subarray(0, rows * k), lo * k);
      outW.set(weightsOut.subarray(0, rows * k), lo * k);
    }
    for (let j = 0; j < E; j++) loads[j] += loadsIn[j];
    return bad;
  };
}
