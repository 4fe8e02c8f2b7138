// The Sinkhorn scaling op (S-BASE, Clark et al. 2022; Megatron-Core
// `sinkhorn`; docs/algorithms.md section 8) and its production CPU kernel,
// the scaling the `sinkhorn` balancer and `sinkhornScaling` run. Its exp
// and log are fdlibm's (lib/numeric/fdlibm.ts), not Math.exp and Math.log,
// which differ in the last bit from engine to engine: the same scores give
// the same scale on every engine, and the WebAssembly kernel's exp
// (lib/wasm/src/sinkhorn.c) is the same function.
import { fdlibmExp, fdlibmLog } from "../numeric/fdlibm.ts";
import {
  checkInteger,
  checkNumber,
  checkObject,
  checkScores,
  show,
} from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** Options of the Sinkhorn scaling (lib/route/sinkhorn.ts). */
export interface SinkhornOptions {
  /** Relative tolerance on the column sums. Default `1e-4`. */
  tolerance?: number;
  /** Iteration cap: row normalisations (each but the last followed by a column one). Default `100`. */
  maxIterations?: number;
  /**
   * Temperature `tau`: the matrix scaled is `exp(s / tau)`. Default `1`
   * (`exp(s)`, as stated by S-BASE). Scores in `[0, 1]` make `exp(s)`
   * nearly flat, so the scaling moves few top-K choices; a small `tau`
   * sharpens it.
   */
  temperature?: number;
}

/** The options, checked, with their defaults. */
export interface SinkhornSettings {
  tolerance: number;
  maxIterations: number;
  temperature: number;
}

/** What the Sinkhorn op's validator takes. */
export interface SinkhornRequest {
  scores: ScoreMatrix;
  options: SinkhornOptions;
  /** Starting log column scale (experts), e.g. the previous batch's. Default zeros. */
  logScale?: ArrayLike<number>;
}

/** Checked arguments of every Sinkhorn kernel. */
export interface SinkhornArgs extends SinkhornSettings {
  /** Scores, `tokens x experts`, no NaN or `+Infinity`. */
  scores: ScoreMatrix;
  /** `tau * log v` (experts): the start, overwritten by the centred result. */
  logScale: Float64Array;
  /** CPU kernel scratch (reused between batches); others ignore it. */
  scratch?: SinkhornScratch;
}

/** What a Sinkhorn kernel returns. */
export interface SinkhornResult {
  /** Row normalisations done. */
  iterations: number;
  /** Largest relative deviation of a column sum from `tokens / experts`. */
  error: number;
}

/** Scratch of the CPU kernel, reused across batches of one shape. */
export interface SinkhornScratch {
  kernel: Float64Array;
  rowScale: Float64Array;
  colSum: Float64Array;
  colScale: Float64Array;
}

/** A {@linkcode SinkhornScratch} for the shape (or `reuse` when it fits). */
export function sinkhornScratch(
  tokens: number,
  experts: number,
  reuse?: SinkhornScratch,
): SinkhornScratch {
  if (reuse && reuse.kernel.length === tokens * experts) return reuse;
  return {
    kernel: new Float64Array(tokens * experts),
    rowScale: new Float64Array(tokens),
    colSum: new Float64Array(experts),
    colScale: new Float64Array(experts),
  };
}

/** Checks the options of a Sinkhorn scaling and fills their defaults. */
export function checkSinkhornOptions(
  options: SinkhornOptions,
): SinkhornSettings {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  return {
    tolerance: checkNumber("tolerance", options.tolerance ?? 1e-4, 0),
    maxIterations: checkInteger(
      "maxIterations",
      options.maxIterations ?? 100,
      1,
    ),
    temperature: checkNumber(
      "temperature",
      options.temperature ?? 1,
      Number.MIN_VALUE,
    ),
  };
}

/**
 * Sinkhorn scaling of `exp(s / tau)`: `u` (tokens) and `v` (experts) such
 * that `u[i] * exp(s[i][j] / tau) * v[j]` has row sums 1 and column sums
 * `tokens / experts`, by alternate normalisation from the given `v`. Rows
 * are shifted by their maximum before `exp`. One step: rows
 * `u[i] = 1 / sum_j K[i][j] v[j]`, then the column sums `c[j] = v[j] *
 * sum_i u[i] K[i][j]` and `error = max_j |c[j] - N/E| / (N/E)`; it stops
 * when `error <= tolerance` or after `maxIterations` steps, else the
 * columns `v[j] = (N/E) / sum_i u[i] K[i][j]`. The result is
 * `tau * log v`, centred.
 *
 * Backends: `"cpu"` in float64 (the reference); a float32 kernel agrees
 * within float32 rounding plus, where its error crosses the tolerance at
 * another step, one step's change (about `tolerance * tau`).
 */
export const sinkhornOp = defineOp<
  SinkhornRequest,
  SinkhornArgs,
  SinkhornResult
>(
  {
    name: "sinkhorn",
    summary: "Sinkhorn (S-BASE) scaling steps until the column sums balance",
    validate: checkSinkhorn,
  },
);

function checkSinkhorn(request: SinkhornRequest): SinkhornArgs {
  checkObject("request", request);
  const scores = checkScores("scores", request.scores);
  const settings = checkSinkhornOptions(request.options);
  const E = scores.experts;
  const logScale = new Float64Array(E);
  const start = request.logScale;
  if (start !== undefined) {
    if (start === null || typeof start !== "object" || start.length !== E) {
      throw new TypeError(
        `logScale must have one entry per expert (${E}): current value is ${
          show(start)
        }`,
      );
    }
    for (let j = 0; j < E; j++) {
      if (!Number.isFinite(start[j])) {
        throw new RangeError(
          `logScale must be finite: entry ${j} is ${start[j]}`,
        );
      }
      logScale[j] = start[j];
    }
  }
  return { scores, ...settings, logScale };
}

/** The production CPU kernel of {@linkcode sinkhornOp}, in float64. */
export function sinkhornCpu(args: SinkhornArgs): SinkhornResult {
  const { scores, tolerance, maxIterations, logScale: logV } = args;
  const tau = args.temperature;
  const { data, tokens: N, experts: E } = scores;
  const s = sinkhornScratch(N, E, args.scratch);
  const { kernel, rowScale: u, colSum: v, colScale: vj } = s;
  // exp(s - max of the row): the row shift cancels in the row
  // normalisation, and keeps exp in range whatever the scores' scale.
  for (let i = 0; i < N; i++) {
    const base = i * E;
    let max = -Infinity;
    for (let j = 0; j < E; j++) if (data[base + j] > max) max = data[base + j];
    if (max === -Infinity) max = 0;
    for (let j = 0; j < E; j++) {
      kernel[base + j] = fdlibmExp((data[base + j] - max) / tau);
    }
  }
  const target = N / E;
  columnScaleFrom(logV, tau, vj);
  let iterations = 0, error = Infinity;
  while (true) {
    // Rows: each token's mass becomes 1; the column sums of the scaled
    // rows are added while the row is in cache (one pass over the kernel).
    v.fill(0);
    for (let i = 0; i < N; i++) {
      const base = i * E;
      let r = 0;
      for (let j = 0; j < E; j++) r += kernel[base + j] * vj[j];
      const ui = u[i] = r > 0 ? 1 / r : 0;
      for (let j = 0; j < E; j++) v[j] += ui * kernel[base + j];
    }
    iterations++;
    error = 0;
    for (let j = 0; j < E; j++) {
      const dev = Math.abs(v[j] * vj[j] - target) / target;
      if (!(dev <= error)) error = dev;
    }
    if (error <= tolerance || iterations >= maxIterations) break;
    // Columns: each expert's mass becomes tokens / experts. An expert no
    // token can reach (all scores -Infinity) keeps its scale.
    for (let j = 0; j < E; j++) if (v[j] > 0) vj[j] = target / v[j];
  }
  centredLogScale(vj, tau, logV);
  return { iterations, error };
}

/**
 * The column scale `v[j] = exp(logV[j] / tau)` a scaling starts from, into
 * `vj`: the start of both kernels of {@linkcode sinkhornOp}.
 */
export function columnScaleFrom(
  logV: ArrayLike<number>,
  tau: number,
  vj: Float64Array,
): void {
  for (let j = 0; j < vj.length; j++) vj[j] = fdlibmExp(logV[j] / tau);
}

/**
 * The result of both kernels of {@linkcode sinkhornOp} from the column
 * scale `vj`: `tau * log v` centred into `logV` (a common factor changes
 * no selection).
 */
export function centredLogScale(
  vj: ArrayLike<number>,
  tau: number,
  logV: Float64Array,
): void {
  const E = vj.length;
  let mean = 0;
  for (let j = 0; j < E; j++) mean += fdlibmLog(vj[j]);
  mean /= E;
  for (let j = 0; j < E; j++) logV[j] = tau * (fdlibmLog(vj[j]) - mean);
}

registerKernel({
  op: sinkhornOp,
  backend: "cpu",
  run: sinkhornCpu,
  callers: ['sinkhorn balancer route() (host "cpu")'],
});
