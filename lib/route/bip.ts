import { checkInteger, checkNumber, show } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { capacityOf } from "../select/capacity.ts";
import { hostKernel } from "../ops/host.ts";
import "../ops/bip_round_wasm.ts";
import {
  type BipPricesOptions,
  bipRoundOp,
  columnBounds,
  type DualScratch,
  dualScratch,
} from "../ops/bip_round.ts";

export type { BipPricesOptions } from "../ops/bip_round.ts";

/** Options of {@linkcode bip}. */
export interface BipOptions {
  /**
   * Coordinate rounds per batch. Default `2`: the paper does not publish
   * its value, only "a small number of iterations"; 2 is this project's
   * choice.
   */
  T?: number;
  /** Expert capacity `C = ceil(N * K * capacityFactor / E)`. Default `1`. */
  capacityFactor?: number;
  /**
   * Clip token prices at 0, as the paper's `p[i] = max(0, .)` (the dual of
   * "at most K experts per token"). Default `true`. With `false`, `p` is
   * free (the dual of "exactly K", which routing by top-K enforces): when
   * prices rise above a token's scores, a clipped `p` stops counting its
   * K-th choice against capacity, and loads overshoot `C`.
   */
  clipTokenPrices?: boolean;
}

/**
 * The expert and token prices after `T` rounds of BIP-Based Balancing's
 * exact coordinate minimisation of the balanced-assignment dual on one
 * batch (Yuan Sun, arXiv 2502.15451; docs/algorithms.md section 6):
 *
 * - `p[i] = max(0, (K+1)-th largest of s[i][j] - q[j] over j)`
 * - `q[j] = max(0, (C+1)-th largest of s[i][j] - p[i] over i)`
 *
 * starting from `expertPrices`. Routing by top-K of `s[i][j] - q[j]` then
 * gives each expert about `C` tokens. Cost `O(T * tokens * experts)`
 * expected (quickselect per expert).
 *
 * @param scores Scores, `tokens x experts`.
 * @param options `k`, `capacity`, `T`, starting prices, `clipTokenPrices`.
 * @returns `expertPrices` `q` (experts) and `tokenPrices` `p` (tokens), float64.
 * @throws {TypeError} If the scores or the starting prices have the wrong
 * shape, or `clipTokenPrices` is not a boolean.
 * @throws {RangeError} If `k > experts`, a size is not a non-negative
 * integer, a score is NaN, or `tokens * k > experts * capacity`.
 *
 * @example One round on two tokens and two experts, capacity 1
 * ```ts
 * import { bipPrices } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const scores = { data: new Float32Array([0.5, 0.25, 0.75, 0.5]), tokens: 2, experts: 2 };
 * const { expertPrices, tokenPrices } = bipPrices(scores, { k: 1, T: 1 });
 * assert.deepEqual([...tokenPrices], [0.25, 0.5]);
 * assert.deepEqual([...expertPrices], [0.25, 0]);
 * ```
 */
export function bipPrices(
  scores: ScoreMatrix,
  options: BipPricesOptions,
): { expertPrices: Float64Array; tokenPrices: Float64Array } {
  const args = bipRoundOp.validate({ scores, options });
  const r = hostKernel(bipRoundOp).run(args, {});
  return {
    expertPrices: r.prices,
    tokenPrices: Float64Array.from(r.tokenPrices),
  };
}

/**
 * Checks {@linkcode BipOptions} and fills their defaults: the one place
 * both the CPU balancer and the device balancer read them from.
 */
export function bipSettings(options: BipOptions): Required<BipOptions> {
  const clipTokenPrices = options.clipTokenPrices ?? true;
  if (typeof clipTokenPrices !== "boolean") {
    throw new TypeError(
      `clipTokenPrices must be a boolean: current value is ${
        show(clipTokenPrices)
      }`,
    );
  }
  return {
    T: checkInteger("T", options.T ?? 2, 0),
    capacityFactor: checkNumber(
      "capacityFactor",
      options.capacityFactor ?? 1,
      1,
    ),
    clipTokenPrices,
  };
}

/**
 * BIP-Based Balancing (Yuan Sun, arXiv 2502.15451): per layer, expert
 * prices `q >= 0` kept across batches; on each batch, `T` exact
 * coordinate rounds on that batch (see {@linkcode bipPrices}) starting from
 * the previous `q`, then top-K of `s[i][j] - q[j]`, gate weights from the
 * unbiased scores. Prices are float64.
 *
 * Not causal: the prices that route a batch are computed from that same
 * batch, so a token's experts depend on the other tokens of its batch.
 * `biases(layer)` returns `-q`, the prices that routed the last batch.
 *
 * Ties: after a `q` step, an expert's boundary token (its `(C+1)`-th)
 * sits exactly at its own `p`, so it can tie with the expert that was its
 * `(K+1)`-th; the tie goes to the lower expert index, and an expert may
 * end a batch at `C + 1`.
 *
 * @param context Layers, experts, `k` and routing settings.
 * @param options `T` (default 2, not published), `capacityFactor` (default
 * 1), `clipTokenPrices` (default `true`, the paper's).
 * @returns A non-causal {@linkcode Balancer} named `"bip"`.
 * @throws {RangeError} If `T` is not a non-negative integer or
 * `capacityFactor < 1`.
 * @throws {TypeError} If `clipTokenPrices` is not a boolean.
 *
 * @example Balanced on the first batch (greedy loads would be `[1, 0, 3]`)
 * ```ts
 * import { bip } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const b = bip({ layers: 1, experts: 3, k: 1 });
 * const scores = {
 *   data: new Float32Array([0.1, 0.5, 0.9, 0.4, 0.2, 0.8, 0.3, 0.6, 0.7, 0.8, 0.1, 0.3]),
 *   tokens: 4,
 *   experts: 3,
 * };
 * assert.deepEqual([...b.route(0, scores).loads], [1, 1, 2]);
 * assert.ok(b.biases(0)[2] < 0);
 * assert.equal(b.causal, false);
 * ```
 */
export function bip(
  context: BalancerContext,
  options: BipOptions = {},
): Balancer {
  const ctx = checkContext(context);
  const { T, capacityFactor: cf, clipTokenPrices: clipP } = bipSettings(
    options,
  );
  const E = ctx.experts;
  const prices = Array.from({ length: ctx.layers }, () => new Float64Array(E));
  const bounds = Array.from({ length: ctx.layers }, () => columnBounds(E));
  const bias = new Float64Array(E);
  const roundKernel = hostKernel(bipRoundOp, ctx.host);
  let scratch: DualScratch | undefined;
  let out: Routing | undefined;
  return checkedBalancer(ctx, {
    name: "bip",
    causal: false,
    route(layer: number, scores: ScoreMatrix): Routing {
      const N = scores.tokens;
      if (!out || out.experts.length !== N * ctx.k) {
        out = createRouting(N, ctx.k, E);
      }
      scratch = dualScratch(N, E, ctx.k, scratch);
      const q = prices[layer];
      roundKernel.run({
        scores,
        k: ctx.k,
        capacity: capacityOf(N, ctx.k, E, cf),
        prices: q,
        rounds: T,
        clip: clipP || "experts",
        scratch,
        bounds: bounds[layer],
      }, {});
      for (let j = 0; j < E; j++) bias[j] = -q[j];
      routeInto(scores, ctx.k, out, { ...ctx, bias });
      return out;
    },
    update() {},
    biases: (layer: number) => Float64Array.from(prices[layer], (v) => 0 - v),
  });
}
