// The WebAssembly SIMD kernel of the Sinkhorn op (backend "wasm"): the CPU
// kernel's steps, bit for bit, on lib/wasm/src/sinkhorn.c. The kernel
// `exp(s / tau)` is computed there too, blocks of rows copied into the
// instance's memory, with fdlibm's exp (the CPU kernel's, lib/numeric/
// fdlibm.ts), two lanes at a time; the column scale's start and the
// centred log scale (one per expert) here, by the CPU kernel's functions.
import { registerKernel } from "./registry.ts";
import { wasmRuntime } from "../wasm/runtime.ts";
import {
  centredLogScale,
  columnScaleFrom,
  type SinkhornArgs,
  sinkhornOp,
  type SinkhornResult,
} from "./sinkhorn.ts";

/** Rows per tile of the kernel (TILE in lib/wasm/src/sinkhorn.c). */
const TILE = 8;
/** Rows of scores copied in per call of the exp kernel (whole tiles). */
const BLOCK_ROWS = 1024;

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
  const block = Math.min(rows, BLOCK_ROWS);
  const at = {
    kernel: rt.reserve("sinkhorn.kernel", rows * E * 8),
    colScale: rt.reserve("sinkhorn.colScale", E * 8),
    rowScale: rt.reserve("sinkhorn.rowScale", rows * 8),
    colSum: rt.reserve("sinkhorn.colSum", E * 8),
    error: rt.reserve("sinkhorn.error", 8),
    scores: rt.reserve("sinkhorn.scores", block * E * 4),
  };
  // exp((s - max of the row) / tau) into the tiles, a block of rows at a
  // time; the last tile's rows past the batch are 0.
  const scoresIn = rt.f32(at.scores, block * E);
  for (let i = 0; i < N; i += block) {
    const n = Math.min(block, N - i);
    scoresIn.set(data.subarray(i * E, (i + n) * E));
    rt.exports.moelab_sinkhorn_kernel(
      at.scores,
      n,
      E,
      tau,
      at.kernel + i * E * 8,
    );
  }
  const vj = rt.f64(at.colScale, E);
  columnScaleFrom(logV, tau, vj);
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
  centredLogScale(vj, tau, logV);
  return { iterations, error };
}

registerKernel({
  op: sinkhornOp,
  backend: "wasm",
  run: sinkhornWasm,
  callers: ["sinkhornScaling()", "sinkhorn balancer route()"],
});
