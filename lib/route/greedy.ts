import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";

/**
 * Plain top-K routing without balancing (docs/algorithms.md section 2): the
 * reference every balancer is compared with. Causal and stateless.
 *
 * @param context Layers, experts and `k`.
 * @returns A {@linkcode Balancer} named `"greedy"`.
 * @throws {RangeError} If `k > experts` or a size is not a positive integer.
 *
 * @example
 * ```ts
 * import { greedy } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = greedy({ layers: 1, experts: 3, k: 1 });
 * const r = b.route(0, { data: new Float32Array([0.2, 0.5, 0.3]), tokens: 1, experts: 3 });
 * assert.deepEqual([...r.experts], [1]);
 * assert.equal(b.causal, true);
 * ```
 */
export function greedy(context: BalancerContext): Balancer {
  const ctx = checkContext(context);
  let out: Routing | undefined;
  return checkedBalancer(ctx, {
    name: "greedy",
    causal: true,
    route(_layer: number, scores: ScoreMatrix): Routing {
      if (!out || out.experts.length !== scores.tokens * ctx.k) {
        out = createRouting(scores.tokens, ctx.k, ctx.experts);
      }
      routeInto(scores, ctx.k, out, ctx);
      return out;
    },
    update() {},
    biases: () => new Float64Array(ctx.experts),
  });
}
