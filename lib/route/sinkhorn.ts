import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { hostKernel } from "../ops/host.ts";
import "../ops/sinkhorn_wasm.ts";
import {
  checkSinkhornOptions,
  sinkhornOp,
  type SinkhornOptions,
  type SinkhornScratch,
  sinkhornScratch,
} from "../ops/sinkhorn.ts";

export type { SinkhornOptions } from "../ops/sinkhorn.ts";

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
  const args = sinkhornOp.validate({ scores, options });
  const r = hostKernel(sinkhornOp).run(args, {});
  return {
    logColumnScale: args.logScale,
    iterations: r.iterations,
    error: r.error,
    converged: r.error <= args.tolerance,
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
  const settings = checkSinkhornOptions(options);
  const E = ctx.experts;
  const scales = Array.from({ length: ctx.layers }, () => new Float64Array(E));
  const scaling = hostKernel(sinkhornOp, ctx.host);
  // The TypeScript kernel's scratch; the WebAssembly one keeps its own.
  const ownScratch = scaling.backend === "cpu";
  let scratch: SinkhornScratch | undefined;
  let out: Routing | undefined;
  return checkedBalancer(ctx, {
    name: "sinkhorn",
    causal: false,
    route(layer: number, scores: ScoreMatrix): Routing {
      if (!out || out.experts.length !== scores.tokens * ctx.k) {
        out = createRouting(scores.tokens, ctx.k, E);
      }
      if (ownScratch) scratch = sinkhornScratch(scores.tokens, E, scratch);
      scaling.run(
        { scores, ...settings, logScale: scales[layer], scratch },
        {},
      );
      routeInto(scores, ctx.k, out, { ...ctx, bias: scales[layer] });
      return out;
    },
    update() {},
    biases: (layer: number) => Float64Array.from(scales[layer]),
  });
}
