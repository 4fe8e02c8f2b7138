import { checkInteger, checkNumber, checkScores, show } from "../_validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext } from "./_context.ts";

/** Options of {@linkcode sinkhorn} and {@linkcode sinkhornScaling}. */
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

/** The result of {@linkcode sinkhornScaling}. */
export interface SinkhornScaling {
  /**
   * `tau * log v[j]`, centred: the column scaling in the score domain
   * (experts), float64; top-K of `s + logColumnScale` is top-K of the
   * scaled matrix.
   */
  logColumnScale: Float64Array;
  /** Row normalisations done. */
  iterations: number;
  /** Largest relative deviation of a column sum from `tokens / experts` at the end. */
  error: number;
  /** Whether `error <= tolerance` (false: the cap was reached). */
  converged: boolean;
}

/** Scratch reused across batches. */
interface Scratch {
  kernel: Float64Array;
  rowScale: Float64Array;
  colSum: Float64Array;
  colScale: Float64Array;
}

function scratchFor(tokens: number, experts: number, s?: Scratch): Scratch {
  if (s && s.kernel.length === tokens * experts) return s;
  return {
    kernel: new Float64Array(tokens * experts),
    rowScale: new Float64Array(tokens),
    colSum: new Float64Array(experts),
    colScale: new Float64Array(experts),
  };
}

/** The kernel of sinkhornScaling without validation; `logV` is the start and the result. */
function scaleInto(
  scores: ScoreMatrix,
  tau: number,
  tolerance: number,
  maxIterations: number,
  logV: Float64Array,
  s: Scratch,
): { iterations: number; error: number } {
  const { data, tokens: N, experts: E } = scores;
  const { kernel, rowScale: u, colSum: v, colScale: vj } = s;
  // exp(s - max of the row): the row shift cancels in the row
  // normalisation, and keeps exp in range whatever the scores' scale.
  for (let i = 0; i < N; i++) {
    const base = i * E;
    let max = -Infinity;
    for (let j = 0; j < E; j++) if (data[base + j] > max) max = data[base + j];
    if (max === -Infinity) max = 0;
    for (let j = 0; j < E; j++) {
      kernel[base + j] = Math.exp((data[base + j] - max) / tau);
    }
  }
  const target = N / E;
  for (let j = 0; j < E; j++) vj[j] = Math.exp(logV[j] / tau);
  let iterations = 0, error = Infinity;
  while (true) {
    // Rows: each token's mass becomes 1.
    for (let i = 0; i < N; i++) {
      const base = i * E;
      let r = 0;
      for (let j = 0; j < E; j++) r += kernel[base + j] * vj[j];
      u[i] = r > 0 ? 1 / r : 0;
    }
    iterations++;
    v.fill(0);
    for (let i = 0; i < N; i++) {
      const base = i * E, ui = u[i];
      for (let j = 0; j < E; j++) v[j] += ui * kernel[base + j];
    }
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
  // Centre the log scale: a common factor changes no selection.
  let mean = 0;
  for (let j = 0; j < E; j++) mean += Math.log(vj[j]);
  mean /= E;
  for (let j = 0; j < E; j++) logV[j] = tau * (Math.log(vj[j]) - mean);
  return { iterations, error };
}

function checkOptions(options: SinkhornOptions): [number, number, number] {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  return [
    checkNumber("tolerance", options.tolerance ?? 1e-4, 0),
    checkInteger("maxIterations", options.maxIterations ?? 100, 1),
    checkNumber("temperature", options.temperature ?? 1, Number.MIN_VALUE),
  ];
}

/**
 * Sinkhorn scaling of `exp(s / tau)` (Clark et al. 2022, S-BASE;
 * Megatron-Core `sinkhorn`): find `u` (tokens) and `v` (experts) such that
 * `P[i][j] = u[i] * exp(s[i][j] / tau) * v[j]` has every row sum 1 and
 * every column sum `tokens / experts`, by alternately normalising rows and
 * columns, from `v = 1`. It stops after a row normalisation once every
 * column sum is within `tolerance` (relative) of `tokens / experts`, or
 * after `maxIterations` row normalisations with `converged: false`. Rows
 * are shifted by their maximum before `exp` (the shift cancels in the row
 * normalisation and keeps `exp` in range whatever the scores' scale).
 *
 * Since `u[i]` is common to a row, top-K of `P[i][.]` is top-K of
 * `s[i][j] + tau * log v[j]`: the scaling acts as an expert bias, returned
 * centred as `logColumnScale`.
 *
 * @param scores Scores, `tokens x experts`.
 * @param options `tolerance` (default `1e-4`), `maxIterations` (default
 * 100), `temperature` (default 1).
 * @returns The log column scale, iterations, final error, whether it converged.
 * @throws {TypeError} If the scores have the wrong shape.
 * @throws {RangeError} If a score is NaN or an option is out of range.
 *
 * @example Column sums become uniform
 * ```ts
 * import { sinkhornScaling } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const scores = { data: new Float32Array([0.9, 0.1, 0.8, 0.3, 0.7, 0.2]), tokens: 3, experts: 2 };
 * const r = sinkhornScaling(scores);
 * assert.ok(r.converged && r.error <= 1e-4);
 * assert.ok(r.logColumnScale[0] < r.logColumnScale[1]);
 * ```
 */
export function sinkhornScaling(
  scores: ScoreMatrix,
  options: SinkhornOptions = {},
): SinkhornScaling {
  checkScores("scores", scores);
  const [tolerance, maxIterations, tau] = checkOptions(options);
  const logV = new Float64Array(scores.experts);
  const r = scaleInto(
    scores,
    tau,
    tolerance,
    maxIterations,
    logV,
    scratchFor(scores.tokens, scores.experts),
  );
  return {
    logColumnScale: logV,
    iterations: r.iterations,
    error: r.error,
    converged: r.error <= tolerance,
  };
}

/**
 * Sinkhorn routing (S-BASE, Clark et al. 2022): each batch is scaled by
 * {@linkcode sinkhornScaling} (warm-started from the layer's previous
 * scale, which changes the iteration count, not the fixed point), then
 * each token takes the top-K of the scaled matrix, that is of
 * `s[i][j] + tau * log v[j]`; the scaling is used for selection only, gate
 * weights are the unbiased scores. At the iteration cap the batch is
 * routed with the scaling reached so far (rows exact, columns not within
 * tolerance).
 *
 * Not causal: the scaling that routes a batch comes from that batch.
 * `biases(layer)` returns the centred `log v` of the last batch.
 *
 * @param context Layers, experts, `k` and routing settings.
 * @param options `tolerance` (default `1e-4`), `maxIterations` (default 100).
 * @returns A non-causal {@linkcode Balancer} named `"sinkhorn"`.
 * @throws {RangeError} If an option is out of range.
 *
 * @example
 * ```ts
 * import { sinkhorn } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = sinkhorn({ layers: 1, experts: 2, k: 1 });
 * const scores = { data: new Float32Array([0.9, 0.1, 0.8, 0.3]), tokens: 2, experts: 2 };
 * assert.deepEqual([...b.route(0, scores).loads], [1, 1]);
 * assert.equal(b.causal, false);
 * ```
 */
export function sinkhorn(
  context: BalancerContext,
  options: SinkhornOptions = {},
): Balancer {
  const ctx = checkContext(context);
  const [tolerance, maxIterations, tau] = checkOptions(options);
  const E = ctx.experts;
  const scales = Array.from({ length: ctx.layers }, () => new Float64Array(E));
  let scratch: Scratch | undefined;
  let out: Routing | undefined;
  return {
    name: "sinkhorn",
    causal: false,
    route(layer: number, scores: ScoreMatrix): Routing {
      if (!out || out.experts.length !== scores.tokens * ctx.k) {
        out = createRouting(scores.tokens, ctx.k, E);
      }
      scratch = scratchFor(scores.tokens, E, scratch);
      scaleInto(scores, tau, tolerance, maxIterations, scales[layer], scratch);
      routeInto(scores, ctx.k, out, { ...ctx, bias: scales[layer] });
      return out;
    },
    update() {},
    biases: (layer: number) => Float64Array.from(scales[layer]),
  };
}
