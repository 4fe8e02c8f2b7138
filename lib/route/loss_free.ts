import { checkChoice, checkNumber } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { requireKernel } from "../ops/registry.ts";
import { lossFreeUpdateOp } from "../ops/loss_free_update.ts";

/** Options of {@linkcode lossFree}. */
export interface LossFreeOptions {
  /** Update rate `u`. Default `1e-3` (the paper's, DeepSeek-V3's, Megatron-Core's). */
  rate?: number;
  /**
   * `"sign"`: `b[j] += u * sign(e[j])` (the paper's choice, default);
   * `"proportional"`: `b[j] += u * e[j] / mean(c)`.
   */
  rule?: "sign" | "proportional";
  /** Select on `s * b` with `b` starting at 1 instead of `s + b`. Default `false`. */
  multiplicative?: boolean;
  /** Subtract the mean of each update so the biases do not drift. Default `false`. */
  center?: boolean;
}

/**
 * Checks {@linkcode LossFreeOptions} and fills their defaults: the one
 * place both the CPU balancer and the device balancer read them from.
 */
export function lossFreeSettings(
  options: LossFreeOptions,
): Required<LossFreeOptions> {
  return {
    rate: checkNumber("rate", options.rate ?? 1e-3, 0),
    rule: checkChoice("rule", options.rule ?? "sign", [
      "sign",
      "proportional",
    ]),
    multiplicative: options.multiplicative ?? false,
    center: options.center ?? false,
  };
}

/**
 * Loss-Free Balancing (Wang et al., DeepSeek-AI, arXiv 2408.15664): a bias
 * `b[j]` per expert and layer changes which experts are selected (top-K of
 * `s[i][j] + b[j]`), never the gate weights. After each batch, with
 * `e[j] = mean(c) - c[j]` from the loads that batch produced:
 *
 * - sign rule: `b[j] += u * sign(e[j])`;
 * - proportional rule: `b[j] += u * e[j] / mean(c)`. The paper does not
 *   state the scale of `e`; dividing by the mean load makes `u` mean the
 *   same at every batch size;
 * - multiplicative variant: selection on `s[i][j] * b[j]`, `b` starts at 1,
 *   same update;
 * - `center`: the update's mean is subtracted (additive form only), a
 *   guard against bias drift used by some implementations.
 *
 * The bias applied to a batch comes from earlier batches only: causal.
 * Biases are kept in float64, loads as exact integers.
 *
 * @param context Layers, experts, `k` and routing settings.
 * @param options See {@linkcode LossFreeOptions}.
 * @returns A causal {@linkcode Balancer} named `"loss-free"`.
 * @throws {RangeError} If the rate is negative or not finite, or the rule unknown.
 *
 * @example The busiest expert's bias goes down, the idle one's up
 * ```ts
 * import { lossFree } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = lossFree({ layers: 1, experts: 2, k: 1 }, { rate: 0.01 });
 * const scores = { data: new Float32Array([0.9, 0.1, 0.8, 0.2]), tokens: 2, experts: 2 };
 * const r = b.route(0, scores);
 * assert.deepEqual([...r.loads], [2, 0]);
 * b.update(0, scores, r);
 * assert.deepEqual([...b.biases(0)], [-0.01, 0.01]);
 * ```
 */
export function lossFree(
  context: BalancerContext,
  options: LossFreeOptions = {},
): Balancer {
  const ctx = checkContext(context);
  const { rate: u, rule, multiplicative, center } = lossFreeSettings(options);
  const E = ctx.experts;
  const bias = Array.from(
    { length: ctx.layers },
    () => new Float64Array(E).fill(multiplicative ? 1 : 0),
  );
  const updateKernel = requireKernel(lossFreeUpdateOp, "cpu");
  let out: Routing | undefined;
  return checkedBalancer(ctx, {
    name: "loss-free",
    causal: true,
    route(layer: number, scores: ScoreMatrix): Routing {
      if (!out || out.experts.length !== scores.tokens * ctx.k) {
        out = createRouting(scores.tokens, ctx.k, E);
      }
      routeInto(scores, ctx.k, out, {
        ...ctx,
        bias: bias[layer],
        multiply: multiplicative,
      });
      return out;
    },
    update(layer: number, _scores: ScoreMatrix, routing: Routing): void {
      updateKernel.run({
        bias: bias[layer],
        loads: routing.loads,
        rate: u,
        rule,
        center: center && !multiplicative,
      }, {});
    },
    biases: (layer: number) => Float64Array.from(bias[layer]),
  });
}
