import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { hostKernel } from "../ops/host.ts";
import { routeKeepingNextOnWasm } from "../ops/quantile_step_wasm.ts";
import {
  columnBounds,
  type DualScratch,
  dualScratch,
} from "../ops/bip_round.ts";
import { quantileStepOp, routeKeepingNext } from "../ops/quantile_step.ts";

/**
 * Quantile Balancing (J. Su, 2026; Megatron-Core `quantile_balancing`),
 * the causal cousin of BIP-Based Balancing (docs/algorithms.md section 7): per
 * layer an expert bias `b` (initially 0) routes each batch by top-K of
 * `s[i][j] + b[j]` (gate weights unbiased); after the batch, one exact
 * coordinate step on that batch, without the clip at 0:
 *
 * - `a[i] = (K+1)-th largest of s[i][j] + b[j] over j`;
 * - `b[j] = -Q(s[i][j] - a[i] over i)`, then `b -= mean(b)`;
 *
 * and the new `b` routes the next batch. `Q` is the quantile at level
 * `1 - K/E`, defined here as an order statistic: with
 * `C = ceil(N * K / E)`, `Q` is the `(C+1)`-th largest of the `N` values
 * (the value of ascending rank `N - C`, 1-based: `floor(N * (1 - K/E))`),
 * so that `C` tokens lie strictly above it when there are no ties; it is
 * BIP's `q[j]` step with capacity factor 1. Mean-centring changes no
 * selection (a shift common to all experts) and keeps `b` from drifting.
 * With `K = E` nothing can be balanced and `b` stays 0.
 *
 * Causal: the bias that routes a batch comes from earlier batches only.
 *
 * @param context Layers, experts, `k` and routing settings.
 * @returns A causal {@linkcode Balancer} named `"quantile"`.
 * @throws {RangeError} If `k > experts` or a size is not a positive integer.
 *
 * @example One step from a batch balances the same batch routed again
 * ```ts
 * import { quantile } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = quantile({ layers: 1, experts: 3, k: 1 });
 * const scores = {
 *   data: new Float32Array([0.9, 0.5, 0.1, 0.8, 0.6, 0.2, 0.7, 0.3, 0.4]),
 *   tokens: 3,
 *   experts: 3,
 * };
 * const r = b.route(0, scores);
 * assert.deepEqual([...r.loads], [3, 0, 0]);
 * b.update(0, scores, r);
 * assert.ok(b.biases(0)[0] < 0);
 * assert.deepEqual([...b.route(0, scores).loads], [1, 1, 1]);
 * ```
 */
export function quantile(context: BalancerContext): Balancer {
  const ctx = checkContext(context);
  const E = ctx.experts;
  // q = -b, so that the shared kernel's rounds read as in the dual.
  const prices = Array.from({ length: ctx.layers }, () => new Float64Array(E));
  const bounds = Array.from({ length: ctx.layers }, () => columnBounds(E));
  const bias = new Float64Array(E);
  const step = hostKernel(quantileStepOp, ctx.host);
  // The route that keeps a[i] for the step, on the step's host.
  const fusedRoute = step.backend === "wasm"
    ? routeKeepingNextOnWasm
    : routeKeepingNext;
  const grouped = ctx.groups > 1 && ctx.topGroups < ctx.groups;
  let scratch: DualScratch | undefined;
  let out: Routing | undefined;
  // The batch whose a[i] the last route left in scratch.p.
  let routed: ScoreMatrix | undefined;
  let routedLayer = -1;
  return checkedBalancer(ctx, {
    name: "quantile",
    causal: true,
    route(layer: number, scores: ScoreMatrix): Routing {
      if (!out || out.experts.length !== scores.tokens * ctx.k) {
        out = createRouting(scores.tokens, ctx.k, E);
      }
      const q = prices[layer];
      routed = undefined;
      if (grouped || ctx.k >= E) {
        for (let j = 0; j < E; j++) bias[j] = -q[j];
        routeInto(scores, ctx.k, out, { ...ctx, bias });
        return out;
      }
      scratch = dualScratch(scores.tokens, E, ctx.k, scratch);
      fusedRoute(scores, ctx.k, q, out, scratch, ctx.normalize);
      routed = scores;
      routedLayer = layer;
      return out;
    },
    update(layer: number, scores: ScoreMatrix): void {
      const ready = routed === scores && routedLayer === layer;
      routed = undefined;
      scratch = dualScratch(scores.tokens, E, ctx.k, scratch);
      step.run({
        scores,
        k: ctx.k,
        prices: prices[layer],
        tokenValues: ready ? scratch.p : undefined,
        scratch,
        bounds: bounds[layer],
      }, {});
    },
    biases: (layer: number) => Float64Array.from(prices[layer], (v) => 0 - v),
  });
}
