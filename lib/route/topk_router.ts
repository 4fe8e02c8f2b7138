// Megatron-Core's TopKRouter on a batch of router logits, under the
// names its users set (docs/algorithms.md section "Megatron-Core and
// DeepSeek router settings"): the score function, pre- or post-softmax,
// group-limited routing with Megatron's or DeepSeek's group score, the
// expert bias, the scaling factor, and capacity with token dropping and
// padding. Each step runs the library's kernels (route, capacityDrop).
import {
  checkChoice,
  checkInteger,
  checkNumber,
  checkScoreShape,
  show,
} from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { type Gate, gateInto, GATES } from "../scores/gate.ts";
import { GROUP_SCORES, type GroupScore, routeOp } from "../ops/route.ts";
import { capacityDropOp } from "../ops/capacity_drop.ts";
import { requireKernel } from "../ops/registry.ts";
import { fdlibmExp } from "../numeric/fdlibm.ts";

/** Options of {@linkcode topkRouting}, each named after its Megatron-Core flag. */
export interface TopKRouterOptions {
  /** Experts per token (`moe_router_topk`). */
  topk: number;
  /** `moe_router_score_function`. Default `"softmax"`. */
  scoreFunction?: Gate;
  /**
   * `moe_router_pre_softmax`: softmax over all experts before the top-K
   * (weights are those probabilities), instead of top-K on the logits and
   * a softmax over the `topk` selected (the default, `false`). Softmax
   * only. With groups, the group scores are sums of probabilities
   * (pre) or of logits (post), which can keep different groups.
   */
  preSoftmax?: boolean;
  /** `moe_router_num_groups`: equal groups of experts. Default: none. */
  numGroups?: number;
  /** `moe_router_group_topk`: groups kept per token. Required with `numGroups`. */
  groupTopk?: number;
  /** How a group is scored (see `GroupScore`). Default `"megatron"`. */
  groupScore?: GroupScore;
  /** `moe_router_topk_scaling_factor`: factor on the weights. Default: none (1). */
  scalingFactor?: number;
  /**
   * `expert_bias` (`moe_router_enable_expert_bias`): added to the scores
   * for the selection only. Sigmoid and sqrtsoftplus only, as in
   * Megatron-Core.
   */
  expertBias?: ArrayLike<number>;
  /**
   * `moe_expert_capacity_factor`: each expert keeps at most
   * `ceil(tokens * topk / experts * factor)` tokens. Default: none (no
   * dropping).
   */
  capacityFactor?: number;
  /** `moe_token_drop_policy`: drop the lowest weights or the latest tokens. Default `"probs"`. */
  dropPolicy?: "probs" | "position";
  /**
   * `moe_pad_expert_input_to_capacity`: every expert processes exactly
   * its capacity (`min(capacity, tokens)` rows), padded with tokens that
   * did not select it at weight 0. Needs `capacityFactor`. Default `false`.
   */
  padToCapacity?: boolean;
  /** `min_capacity` of Megatron-Core's `get_capacity`. Default: none. */
  minCapacity?: number;
}

/** What {@linkcode topkRouting} returns. */
export interface TopKRouterResult {
  /**
   * Experts (dropped slots `-1`, kept ones first) and weights per token,
   * loads of the kept assignments.
   */
  routing: Routing;
  /** Scores after the score function (`tokens x experts`; the logits for post-softmax). */
  scores: ScoreMatrix;
  /** The expert capacity, or `undefined` without `capacityFactor`. */
  capacity: number | undefined;
  /**
   * Rows each expert processes: its load, or `min(capacity, tokens)`
   * with `padToCapacity`.
   */
  expertTokens: Int32Array;
}

/**
 * The expert capacity as Megatron-Core's `get_capacity` computes it:
 * `ceil((tokens / experts) * capacityFactor)`, at least `minCapacity`.
 * `tokens` counts assignments (`tokens * topk` in the router). The float
 * arithmetic is Python's, in the same order: `(8 / 4) * 1.1` and its
 * rounding give the same capacity.
 *
 * @example
 * ```ts
 * import { megatronCapacity } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(megatronCapacity(4096 * 8, 256, 1.0), 128);
 * assert.equal(megatronCapacity(100, 8, 1.5), 19); // ceil(18.75)
 * assert.equal(megatronCapacity(10, 8, 1, 4), 4);
 * ```
 */
export function megatronCapacity(
  tokens: number,
  experts: number,
  capacityFactor: number,
  minCapacity?: number,
): number {
  checkInteger("tokens", tokens, 0);
  checkInteger("experts", experts, 1);
  checkNumber("capacityFactor", capacityFactor, 0);
  const c = Math.ceil((tokens / experts) * capacityFactor);
  if (minCapacity === undefined) return c;
  return Math.max(c, checkInteger("minCapacity", minCapacity, 0));
}

/**
 * Megatron-Core's `TopKRouter.routing` on a batch of logits
 * (`topk_routing_with_score_function`, then `apply_router_token_dropping`
 * when a capacity factor is set), with the options named after its flags:
 *
 * - softmax, post (default): top-`topk` of the logits (within the kept
 *   groups), weights the softmax of the selected logits;
 * - softmax, `preSoftmax`: softmax over all experts, top-`topk` of the
 *   probabilities, weights those probabilities;
 * - sigmoid / sqrtsoftplus: top-`topk` of `score + expertBias`, weights the
 *   unbiased scores normalised to sum 1 when `topk > 1`;
 * - weights times `scalingFactor`;
 * - with `capacityFactor`: capacity `ceil(N * topk / E * factor)`
 *   (at least `minCapacity`); when it is at most `N`, each expert keeps
 *   the `capacity` assignments of highest weight (`"probs"`) or the
 *   earliest tokens (`"position"`; Megatron's documented intent, "tokens
 *   at the end of each batch will be dropped"), the rest dropped.
 *
 * Ties between experts go to the lower index (PyTorch's `topk` on
 * distinct values is unaffected). Scores and weights are float32, as
 * Megatron computes them.
 *
 * @param logits Router logits, `tokens x experts`.
 * @param options See {@linkcode TopKRouterOptions}.
 * @returns The routing, the scores, the capacity and the rows per expert.
 * @throws {RangeError} If an option is out of range, an expert bias is
 * given with softmax, or `padToCapacity` without `capacityFactor`.
 *
 * @example DeepSeek-V3's router: sigmoid, 8 groups keep 4, bias, x2.5
 * ```ts
 * import { topkRouting } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const logits = { data: new Float32Array([2, 1, 0, -1, 0, 0, 3, 0]), tokens: 1, experts: 8 };
 * const r = topkRouting(logits, {
 *   topk: 2, scoreFunction: "sigmoid", numGroups: 4, groupTopk: 1,
 *   scalingFactor: 2.5,
 * });
 * // Groups {0,1} (sum 0.88 + 0.73) and {6,7} (0.95 + 0.5): the first wins.
 * assert.deepEqual([...r.routing.experts], [0, 1]);
 * const w = r.routing.weights;
 * assert.ok(Math.abs(w[0] + w[1] - 2.5) < 1e-6);
 * ```
 */
export function topkRouting(
  logits: ScoreMatrix,
  options: TopKRouterOptions,
): TopKRouterResult {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const { tokens: N, experts: E } = checkScoreShape("logits", logits);
  const k = checkInteger("topk", options.topk, 1, E);
  const fn = checkChoice(
    "scoreFunction",
    options.scoreFunction ?? "softmax",
    GATES,
  );
  const pre = options.preSoftmax ?? false;
  if (typeof pre !== "boolean") {
    throw new TypeError(
      `preSoftmax must be a boolean: current value is ${show(pre)}`,
    );
  }
  if (pre && fn !== "softmax") {
    throw new RangeError(
      `preSoftmax applies to the softmax score function only: current scoreFunction is ${fn}`,
    );
  }
  if (options.expertBias !== undefined && fn === "softmax") {
    throw new RangeError(
      `expertBias needs scoreFunction sigmoid or sqrtsoftplus (as Megatron-Core requires): current scoreFunction is softmax`,
    );
  }
  const groups = options.numGroups;
  if ((groups === undefined) !== (options.groupTopk === undefined)) {
    throw new RangeError(
      `numGroups and groupTopk go together: current values are ${
        show(groups)
      } and ${show(options.groupTopk)}`,
    );
  }
  const groupScore = checkChoice(
    "groupScore",
    options.groupScore ?? "megatron",
    GROUP_SCORES,
  );
  const scale = options.scalingFactor === undefined
    ? 1
    : checkNumber("scalingFactor", options.scalingFactor);
  const pad = options.padToCapacity ?? false;
  if (pad && options.capacityFactor === undefined) {
    throw new RangeError(
      "padToCapacity needs capacityFactor (moe_expert_capacity_factor must be set to use moe_pad_expert_input_to_capacity)",
    );
  }
  const drop = checkChoice("dropPolicy", options.dropPolicy ?? "probs", [
    "probs",
    "position",
  ]);
  // Scores: the logits themselves for post-softmax.
  const postSoftmax = fn === "softmax" && !pre;
  const data = postSoftmax
    ? logits.data
    : gateInto(logits.data, E, fn, new Float32Array(logits.data.length));
  const scores = { data, tokens: N, experts: E };
  const args = routeOp.validate({
    scores,
    options: {
      k,
      bias: options.expertBias,
      normalize: (fn === "sigmoid" || fn === "sqrtsoftplus") && k > 1,
      scale: postSoftmax ? 1 : scale,
      groups,
      topGroups: options.groupTopk,
      groupScore,
    },
  });
  const routing = requireKernel(routeOp, "cpu").run(args, {});
  if (postSoftmax) softmaxSelected(logits.data, E, routing, scale);
  let capacity: number | undefined;
  let out = routing;
  if (options.capacityFactor !== undefined) {
    capacity = megatronCapacity(
      N * k,
      E,
      checkNumber("capacityFactor", options.capacityFactor, 0),
      options.minCapacity,
    );
    if (capacity <= N) {
      out = requireKernel(capacityDropOp, "cpu").run(
        capacityDropOp.validate({ scores, routing, capacity, drop }),
        {},
      );
    }
  }
  const expertTokens = pad && capacity !== undefined
    ? new Int32Array(E).fill(Math.min(capacity, N))
    : Int32Array.from(out.loads);
  return { routing: out, scores, capacity, expertTokens };
}

/** Post-softmax weights: softmax over each token's selected logits, times `scale`. */
function softmaxSelected(
  logits: Float32Array,
  E: number,
  routing: Routing,
  scale: number,
): void {
  const { experts, weights, k } = routing;
  for (let i = 0; i < experts.length / k; i++) {
    let max = -Infinity;
    for (let r = 0; r < k; r++) {
      max = Math.max(max, logits[i * E + experts[i * k + r]]);
    }
    let sum = 0;
    for (let r = 0; r < k; r++) {
      sum += fdlibmExp(logits[i * E + experts[i * k + r]] - max);
    }
    for (let r = 0; r < k; r++) {
      const e = fdlibmExp(logits[i * E + experts[i * k + r]] - max);
      weights[i * k + r] = (e / sum) * scale;
    }
  }
}
