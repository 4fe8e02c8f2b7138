// The WebAssembly SIMD kernel of the Sinkhorn op (backend "wasm"): the CPU
// kernel's steps, bit for bit, on lib/wasm/src/sinkhorn.c. The kernel
// `exp(s / tau)` is computed here with Math.exp, as the CPU kernel does
// (the same bits on every engine), into row tiles in the instance's
// memory; the steps, where the time goes, run there.
import { registerKernel } from "./registry.ts";
import { wasmRuntime } from "../wasm/runtime.ts";
import {
  type SinkhornArgs,
  sinkhornOp,
  type SinkhornResult,
} from "./sinkhorn.ts";

/** Rows per tile of the kernel (TILE in lib/wasm/src/sinkhorn.c). */
const TILE = 8;

/**
 * The WebAssembly SIMD kernel of {@linkcode sinkhornOp}: the same
 * iterations, error and log scale as {@linkcode sinkhornCpu}, bit for bit
 * (each sum in the same order; lanes run over rows). Ignores
 * `args.scratch`. Needs the runtime; callers pick it through
 * `hostKernel(sinkhornOp, "wasm")`.
 */
export function sinkhornWasm(args: SinkhornArgs): SinkhornResult {
  const rt = wasmRuntime();
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const { scores, tolerance, maxIterations, logScale: logV } = args;
  const tau = args.temperature;
  const { data, tokens: N, experts: E } = scores;
  const tiles = Math.ceil(N / TILE);
  const rows = tiles * TILE;
  const at = {
    kernel: rt.reserve("sinkhorn.kernel", rows * E * 8),
    colScale: rt.reserve("sinkhorn.colScale", E * 8),
    rowScale: rt.reserve("sinkhorn.rowScale", rows * 8),
    colSum: rt.reserve("sinkhorn.colSum", E * 8),
    error: rt.reserve("sinkhorn.error", 8),
  };
  const kernel = rt.f64(at.kernel, rows * E);
  const vj = rt.f64(at.colScale, E);
  // exp(s - max of the row), as the CPU kernel; rows past the batch are 0.
  for (let i = 0; i < N; i++) {
    const base = i * E;
    let max = -Infinity;
    for (let j = 0; j < E; j++) if (data[base + j] > max) max = data[base + j];
    if (max === -Infinity) max = 0;
    const at = (i - (i % TILE)) * E + (i % TILE);
    for (let j = 0; j < E; j++) {
      kernel[at + j * TILE] = Math.exp((data[base + j] - max) / tau);
    }
  }
  for (let i = N; i < rows; i++) {
    const at = (tiles - 1) * TILE * E + (i % TILE);
    for (let j = 0; j < E; j++) kernel[at + j * TILE] = 0;
  }
  for (let j = 0; j < E; j++) vj[j] = Math.exp(logV[j] / tau);
  const iterations = rt.exports.moelab_sinkhorn_steps(
    at.kernel,
    tiles,
    E,
    at.colScale,
    at.rowScale,
    at.colSum,
    N / E,
    tolerance,
    maxIterations,
    at.error,
  );
  const error = rt.f64(at.error, 1)[0];
  // Centre the log scale: a common factor changes no selection.
  let mean = 0;
  for (let j = 0; j < E; j++) mean += Math.log(vj[j]);
  mean /= E;
  for (let j = 0; j < E; j++) logV[j] = tau * (Math.log(vj[j]) - mean);
  return { iterations, error };
}

registerKernel({
  op: sinkhornOp,
  backend: "wasm",
  run: sinkhornWasm,
  callers: ["sinkhornScaling()", "sinkhorn balancer route()"],
});
