import { checkChoice, checkNumber } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { solveBalancedAssignmentSync } from "../solve/solve_balanced_assignment_sync.ts";
import { groupLimitedBounds } from "../solve/group_limited.ts";

/** Options of {@linkcode exact}. */
export interface ExactOptions {
  /** Capacity `ceil(N * K / E * capacityFactor)` per expert. Default `1`. */
  capacityFactor?: number;
  /**
   * Under a group limit (`topGroups < groups` in the context):
   * `"bracket"` (default) routes the best group-limited assignment found
   * by {@linkcode groupLimitedBounds}, which respects the limit and lies
   * within `bounds(layer).bracket` of the group-limited optimum;
   * `"relax"` routes the flow optimum that ignores the limit, an upper
   * bound no group-limited router can reach (cheaper: one solve). Without
   * a group limit both are the exact optimum.
   */
  groupLimit?: "bracket" | "relax";
}

/** What {@linkcode ExactBalancer.bounds} reports about a layer's last batch. */
export interface ExactBounds {
  /**
   * The score of the routed assignment: a lower bound of the optimum under
   * the context's group limit (the optimum itself without one). With
   * `groupLimit: "relax"` under a group limit, the relaxation instead (not
   * a feasible group-limited score).
   */
  readonly routed: number;
  /** A lower bound of the optimum under the group limit. */
  readonly lowerBound: number;
  /** An upper bound of the optimum under the group limit. */
  readonly upperBound: number;
  /** The optimum of the flow relaxation, which ignores the group limit. */
  readonly relaxation: number;
  /** Whether the context has a group limit (`topGroups < groups`). */
  readonly groupLimited: boolean;
}

/** The {@linkcode exact} balancer, with the bounds of its last batch per layer. */
export interface ExactBalancer extends Balancer {
  /**
   * The bounds of the last batch routed on `layer` (all `NaN` before the
   * first). Gaps measured against `upperBound` are upper bounds of the
   * true gaps, those against `lowerBound` lower bounds.
   */
  bounds(layer: number): ExactBounds;
}

/**
 * The exact balanced assignment as a router (docs/algorithms.md section 5): each
 * batch goes to the optimum of `max sum s[i][j] x[i][j]` with `K` experts
 * per token and at most `C = ceil(N * K / E * capacityFactor)` tokens per
 * expert, solved by {@linkcode solveBalancedAssignmentSync} (the
 * specialised exact solver, certified by its prices). It is the yardstick
 * of the others: no router with the same capacity keeps more score.
 * Gate weights are the scores of the selected experts (normalised when the
 * context says so).
 *
 * Under a group limit (node-limited routing: each token's experts from at
 * most `topGroups` of `groups` groups) the problem is no longer a flow and
 * its exact optimum is an integer program. By default the balancer routes
 * the best group-limited assignment {@linkcode groupLimitedBounds} finds,
 * which respects the limit, and `bounds(layer)` brackets the optimum
 * (about 0.05 % wide at DeepSeek-V3's shape); `groupLimit: "relax"`
 * routes the flow optimum over all experts instead, a relaxation: an
 * upper bound that breaks the limit (docs/algorithms.md section 5).
 *
 * Not causal: the optimum of a batch depends on all its tokens.
 * `biases(layer)` returns minus the optimal expert prices of the last batch.
 *
 * @param context Layers, experts, `k`, `normalize`.
 * @param options `capacityFactor` (default 1), `groupLimit` (default
 * `"bracket"`).
 * @returns A non-causal {@linkcode Balancer} named `"exact"`, with
 * `bounds(layer)`.
 * @throws {RangeError} If `capacityFactor < 1` (some batch would be
 * infeasible) or `groupLimit` is not `"bracket"` or `"relax"`.
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
 * assert.equal(b.bounds(0).upperBound, b.bounds(0).lowerBound); // no group limit
 *
 * // Two groups of two experts, one kept per token: the relaxation breaks the limit.
 * const g = exact({ layers: 1, experts: 4, k: 2, groups: 2, topGroups: 1 });
 * const s = { data: new Float32Array([0.9, 0.1, 0.8, 0.2, 0.5, 0.5, 0.5, 0.5]), tokens: 2, experts: 4 };
 * const r = g.route(0, s);
 * assert.ok(Math.floor(r.experts[0] / 2) === Math.floor(r.experts[1] / 2));
 * const { lowerBound, upperBound, relaxation } = g.bounds(0);
 * assert.ok(lowerBound <= upperBound && upperBound < relaxation);
 * ```
 */
export function exact(
  context: BalancerContext,
  options: ExactOptions = {},
): ExactBalancer {
  const ctx = checkContext(context);
  const cf = checkNumber("capacityFactor", options.capacityFactor ?? 1, 1);
  const mode = checkChoice("groupLimit", options.groupLimit ?? "bracket", [
    "bracket",
    "relax",
  ]);
  const grouped = ctx.groups > 1 && ctx.topGroups < ctx.groups;
  const none: ExactBounds = {
    routed: NaN,
    lowerBound: NaN,
    upperBound: NaN,
    relaxation: NaN,
    groupLimited: grouped,
  };
  const last: ExactBounds[] = Array.from({ length: ctx.layers }, () => none);
  const E = ctx.experts, K = ctx.k;
  const prices = Array.from({ length: ctx.layers }, () => new Float64Array(E));
  // Under a group limit: the restricted solve's prices, its next start.
  const restricted = Array.from(
    { length: ctx.layers },
    () => new Float64Array(E),
  );
  const solved = new Uint8Array(ctx.layers);
  let out: Routing | undefined;
  const balancer = checkedBalancer(ctx, {
    name: "exact",
    causal: false,
    route(layer: number, scores: ScoreMatrix): Routing {
      const N = scores.tokens;
      if (!out || out.experts.length !== N * K) out = createRouting(N, K, E);
      // The previous batch's optimal prices are a close start: consecutive
      // batches of a layer have similar score distributions.
      const start = {
        k: K,
        capacityFactor: cf,
        expertPrices: solved[layer] ? prices[layer] : undefined,
        host: ctx.host,
      };
      let a;
      if (grouped && mode === "bracket") {
        const b = groupLimitedBounds(scores, {
          ...start,
          groups: ctx.groups,
          topGroups: ctx.topGroups,
          restrictedPrices: solved[layer] ? restricted[layer] : undefined,
        });
        a = b.assignment;
        prices[layer].set(b.relaxationPrices);
        restricted[layer].set(b.assignment.expertPrices);
        last[layer] = {
          routed: b.lowerBound,
          lowerBound: b.lowerBound,
          upperBound: b.upperBound,
          relaxation: b.relaxation,
          groupLimited: true,
        };
      } else {
        a = solveBalancedAssignmentSync(scores, start);
        prices[layer].set(a.expertPrices);
        last[layer] = {
          routed: a.objective,
          // The relaxation bounds a group-limited optimum from above only.
          lowerBound: grouped ? NaN : a.objective,
          upperBound: a.objective,
          relaxation: a.objective,
          groupLimited: grouped,
        };
      }
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
  return {
    ...balancer,
    bounds(layer: number): ExactBounds {
      balancer.biases(layer); // checks the layer
      return last[layer];
    },
  };
}
