import { checkChoice, checkInteger, checkNumber } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { capacityOf } from "../select/capacity.ts";
import { requireKernel } from "../ops/registry.ts";
import {
  capacityDropOp,
  type CapacityDropScratch,
  capacityDropScratch,
} from "../ops/capacity_drop.ts";

/** Options of {@linkcode capacity}. */
export interface CapacityOptions {
  /**
   * Capacity `ceil(N * K * capacityFactor / E)` tokens per expert. Default
   * `1.25` (Switch Transformer's training value).
   */
  capacityFactor?: number;
  /**
   * Which assignments an over-capacity expert drops: `"probs"` the lowest
   * routing probabilities, the gate weights after normalisation and
   * scaling (ties: the later token), default, as Megatron-Core's
   * `moe_token_drop_policy="probs"`; `"position"` the latest tokens of the
   * batch.
   */
  drop?: "probs" | "position";
  /**
   * Least capacity, whatever the factor (`min_capacity` of Megatron-Core's
   * `get_capacity`). Default `0` (none).
   */
  minCapacity?: number;
}

/**
 * Checks {@linkcode CapacityOptions} and fills their defaults: the one
 * place both the CPU balancer and the device balancer read them from.
 */
export function capacitySettings(
  options: CapacityOptions,
): Required<CapacityOptions> {
  return {
    capacityFactor: checkNumber(
      "capacityFactor",
      options.capacityFactor ?? 1.25,
      Number.MIN_VALUE,
    ),
    drop: checkChoice("drop", options.drop ?? "probs", [
      "probs",
      "position",
    ]),
    minCapacity: checkInteger("minCapacity", options.minCapacity ?? 0, 0),
  };
}

/**
 * Greedy top-K with an expert capacity and token dropping (GShard, Switch
 * Transformer; docs/algorithms.md section 10): route by plain top-K, then each
 * expert keeps at most `ceil(N * K * capacityFactor / E)` of the tokens
 * that selected it and drops the rest, by routing probability (the gate
 * weight after normalisation and scaling, not the raw score: with
 * `normalize` and `k > 1` the two orders differ) or by position. A dropped
 * slot holds expert `-1` and weight `0`; a token's kept experts move to
 * its first slots, in their original order. Kept weights are not
 * renormalised (a dropped assignment passes through the residual).
 *
 * Causal with `drop: "position"`: whether a token is kept depends only on
 * the tokens before it, never on later ones. Not causal with `"probs"`:
 * a token is dropped when later tokens of the batch have a higher
 * routing probability.
 * Stateless: `biases` are zeros.
 *
 * @param context Layers, experts, `k` and routing settings.
 * @param options `capacityFactor` (default 1.25), `drop` (default
 * `"probs"`) and `minCapacity` (default 0).
 * @returns A {@linkcode Balancer} named `"capacity"`.
 * @throws {RangeError} If `capacityFactor` is not positive or `drop` is unknown.
 *
 * @example Capacity 1: the weaker of two tokens is dropped
 * ```ts
 * import { capacity } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = capacity({ layers: 1, experts: 2, k: 1 }, { capacityFactor: 1 });
 * const scores = { data: new Float32Array([0.6, 0.1, 0.9, 0.2]), tokens: 2, experts: 2 };
 * const r = b.route(0, scores);
 * assert.deepEqual([...r.experts], [-1, 0]);
 * assert.deepEqual([...r.loads], [1, 0]);
 * assert.equal(b.causal, false);
 * ```
 */
export function capacity(
  context: BalancerContext,
  options: CapacityOptions = {},
): Balancer {
  const ctx = checkContext(context);
  const { capacityFactor: cf, drop, minCapacity } = capacitySettings(options);
  const E = ctx.experts, K = ctx.k;
  const dropKernel = requireKernel(capacityDropOp, "cpu");
  let out: Routing | undefined;
  let scratch: CapacityDropScratch | undefined;
  return checkedBalancer(ctx, {
    name: "capacity",
    causal: drop === "position",
    route(_layer: number, scores: ScoreMatrix): Routing {
      const N = scores.tokens;
      if (!out || out.experts.length !== N * K) out = createRouting(N, K, E);
      routeInto(scores, K, out, ctx);
      scratch = capacityDropScratch(N * K, E, scratch);
      return dropKernel.run({
        scores,
        routing: out,
        capacity: Math.max(minCapacity, capacityOf(N, K, E, cf)),
        drop,
        scratch,
      }, {});
    },
    update() {},
    biases: () => new Float64Array(E),
  });
}
