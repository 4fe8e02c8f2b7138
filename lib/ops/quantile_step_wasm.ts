// The WebAssembly SIMD kernel of the Quantile step op (backend "wasm"):
// the CPU kernel's step, bit for bit, on lib/wasm/src/dual.c.
import { registerKernel } from "./registry.ts";
import { wasmRuntimeOn } from "../wasm/runtime.ts";
import { type QuantileStepArgs, quantileStepOp } from "./quantile_step.ts";
import { coordinateRoundsWasm, routeKeepingNextWasm } from "./_dual_wasm.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { DualScratch } from "./_dual.ts";
import { dualScratchFits } from "./_dual.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode quantileStepOp}: the same
 * prices as {@linkcode quantileStepCpu}, bit for bit. Takes
 * `args.tokenValues` when given (the route's `a[i]`), and reads and
 * writes `args.scratch`'s token prices and row filter as the CPU kernel
 * does. Needs the runtime; callers pick it through
 * `hostKernel(quantileStepOp, "wasm")`.
 */
export function quantileStepWasm(args: QuantileStepArgs): Float64Array {
  const rt = wasmRuntimeOn(args.scores.data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const { scores, k, prices: q } = args;
  const { tokens: N, experts: E } = scores;
  const C = Math.ceil((N * k) / E);
  if (k >= E || C >= N) return q;
  // The CPU kernel's scratch when it fits the batch, else a fresh one's.
  const fits = args.scratch && dualScratchFits(args.scratch, N, E, k);
  const p = fits ? args.scratch!.p : new Float64Array(N);
  const stats = fits ? args.scratch!.filter.stats : new Float64Array([NaN, 0]);
  const ready = args.tokenValues !== undefined;
  if (ready && args.tokenValues !== p) p.set(args.tokenValues!);
  const next = Float64Array.from(q);
  coordinateRoundsWasm(
    rt,
    scores,
    k,
    C,
    next,
    1,
    false,
    p,
    stats,
    args.bounds,
    ready,
  );
  let mean = 0;
  for (let j = 0; j < E; j++) {
    // A column of -Infinity scores has no finite quantile: keep its price.
    if (!Number.isFinite(next[j])) next[j] = q[j];
    mean += next[j];
  }
  mean /= E;
  for (let j = 0; j < E; j++) q[j] = next[j] - mean;
  return q;
}

/**
 * {@linkcode routeKeepingNext} on WebAssembly SIMD: the same routing and
 * `(k+1)`-th values, bit for bit (and the same RangeError on a NaN or
 * `+Infinity` score). Needs the runtime and `k < experts`.
 */
export function routeKeepingNextOnWasm(
  scores: ScoreMatrix,
  k: number,
  q: Float64Array,
  out: Routing,
  scratch: DualScratch,
  normalize: boolean,
): void {
  const rt = wasmRuntimeOn(scores.data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  routeKeepingNextWasm(rt, scores, k, q, out, scratch, normalize);
}

registerKernel({
  op: quantileStepOp,
  backend: "wasm",
  run: quantileStepWasm,
  callers: ["quantile balancer update()"],
});
