import { checkNumber } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { solveBalancedAssignmentSync } from "../solve/solve_balanced_assignment_sync.ts";

/** Options of {@linkcode exact}. */
export interface ExactOptions {
  /** Capacity `ceil(N * K / E * capacityFactor)` per expert. Default `1`. */
  capacityFactor?: number;
}

/**
 * The exact balanced assignment as a router (docs/algorithms.md section 5): each
 * batch goes to the optimum of `max sum s[i][j] x[i][j]` with `K` experts
 * per token and at most `C = ceil(N * K / E * capacityFactor)` tokens per
 * expert, solved by {@linkcode solveBalancedAssignmentSync} (the
 * specialised exact solver, certified by its prices). It is the yardstick
 * of the others: no router with the same capacity keeps more score.
 * Gate weights are the scores of the selected experts (normalised when the
 * context says so); group-limited routing is not applied (the optimum is
 * over all experts).
 *
 * Not causal: the optimum of a batch depends on all its tokens.
 * `biases(layer)` returns minus the optimal expert prices of the last batch.
 *
 * @param context Layers, experts, `k`, `normalize`.
 * @param options `capacityFactor` (default 1).
 * @returns A non-causal {@linkcode Balancer} named `"exact"`.
 * @throws {RangeError} If `capacityFactor < 1` (some batch would be infeasible).
 *
 * @example The optimum sends the first token away from the shared favourite
 * ```ts
 * import { exact } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = exact({ layers: 1, experts: 2, k: 1 });
 * const scores = { data: new Float32Array([0.9, 0.5, 0.8, 0.1]), tokens: 2, experts: 2 };
 * assert.deepEqual([...b.route(0, scores).experts], [1, 0]);
 * assert.equal(b.causal, false);
 * ```
 */
export function exact(
  context: BalancerContext,
  options: ExactOptions = {},
): Balancer {
  const ctx = checkContext(context);
  const cf = checkNumber("capacityFactor", options.capacityFactor ?? 1, 1);
  const E = ctx.experts, K = ctx.k;
  const prices = Array.from({ length: ctx.layers }, () => new Float64Array(E));
  const solved = new Uint8Array(ctx.layers);
  let out: Routing | undefined;
  return checkedBalancer(ctx, {
    name: "exact",
    causal: false,
    route(layer: number, scores: ScoreMatrix): Routing {
      const N = scores.tokens;
      if (!out || out.experts.length !== N * K) out = createRouting(N, K, E);
      // The previous batch's optimal prices are a close start: consecutive
      // batches of a layer have similar score distributions.
      const a = solveBalancedAssignmentSync(scores, {
        k: K,
        capacityFactor: cf,
        expertPrices: solved[layer] ? prices[layer] : undefined,
      });
      prices[layer].set(a.expertPrices);
      solved[layer] = 1;
      out.experts.set(a.experts);
      out.loads.set(a.loads);
      const { data } = scores;
      const w = out.weights;
      for (let i = 0; i < N; i++) {
        let sum = 0;
        for (let r = i * K; r < (i + 1) * K; r++) {
          const v = data[i * E + a.experts[r]];
          w[r] = v;
          sum += v;
        }
        if (ctx.normalize && sum > 0) {
          for (let r = i * K; r < (i + 1) * K; r++) w[r] /= sum;
        }
      }
      return out;
    },
    update() {},
    biases: (layer: number) => Float64Array.from(prices[layer], (v) => 0 - v),
  });
}
