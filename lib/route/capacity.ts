import { checkChoice, checkNumber } from "../_validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext } from "./_context.ts";
import { capacityOf } from "../select/capacity.ts";
import { keepThreshold } from "../select/order.ts";

/** Options of {@linkcode capacity}. */
export interface CapacityOptions {
  /**
   * Capacity `ceil(N * K * capacityFactor / E)` tokens per expert. Default
   * `1.25` (Switch Transformer's training value).
   */
  capacityFactor?: number;
  /**
   * Which assignments an over-capacity expert drops: `"probs"` the lowest
   * scores (ties: the later token), default, as Megatron-Core's
   * `moe_token_drop_policy`; `"position"` the latest tokens of the batch.
   */
  drop?: "probs" | "position";
}

/**
 * Greedy top-K with an expert capacity and token dropping (GShard, Switch
 * Transformer; docs/algorithms.md section 10): route by plain top-K, then each
 * expert keeps at most `ceil(N * K * capacityFactor / E)` of the tokens
 * that selected it and drops the rest, by score or by position. A dropped
 * slot holds expert `-1` and weight `0`; a token's kept experts move to
 * its first slots, in their original order. Kept weights are not
 * renormalised (a dropped assignment passes through the residual).
 *
 * Causal with `drop: "position"`: whether a token is kept depends only on
 * the tokens before it, never on later ones. Not causal with `"probs"`:
 * a token is dropped when later tokens of the batch outscore it.
 * Stateless: `biases` are zeros.
 *
 * @param context Layers, experts, `k` and routing settings.
 * @param options `capacityFactor` (default 1.25) and `drop` (default `"probs"`).
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
  const cf = checkNumber(
    "capacityFactor",
    options.capacityFactor ?? 1.25,
    Number.MIN_VALUE,
  );
  const drop = checkChoice("drop", options.drop ?? "probs", [
    "probs",
    "position",
  ]);
  const E = ctx.experts, K = ctx.k;
  const start = new Int32Array(E + 1);
  let out: Routing | undefined;
  let bySlot = new Int32Array(0);
  let vals = new Float64Array(0);
  return {
    name: "capacity",
    causal: drop === "position",
    route(_layer: number, scores: ScoreMatrix): Routing {
      const N = scores.tokens;
      if (!out || out.experts.length !== N * K) {
        out = createRouting(N, K, E);
        bySlot = new Int32Array(N * K);
        vals = new Float64Array(N);
      }
      routeInto(scores, K, out, ctx);
      const cap = capacityOf(N, K, E, cf);
      const sel = out.experts, loads = out.loads;
      // Slots grouped by expert, in token order (a counting sort).
      start[0] = 0;
      for (let j = 0; j < E; j++) start[j + 1] = start[j] + loads[j];
      for (let j = 0; j < E; j++) loads[j] = 0;
      for (let s = 0; s < N * K; s++) {
        const j = sel[s];
        bySlot[start[j] + loads[j]++] = s;
      }
      for (let j = 0; j < E; j++) {
        const n = loads[j];
        if (n <= cap) continue;
        const lo = start[j];
        if (drop === "position") {
          for (let r = cap; r < n; r++) sel[bySlot[lo + r]] = -1;
        } else {
          dropLowest(scores, j, bySlot, lo, n, cap, sel, vals);
        }
        loads[j] = cap;
      }
      compact(out, N, K);
      return out;
    },
    update() {},
    biases: () => new Float64Array(E),
  };
}

/**
 * Keeps the `cap` highest-scoring of expert `j`'s `n` slots
 * `bySlot[lo, lo + n)` (token order), ties kept by the earlier token.
 */
function dropLowest(
  scores: ScoreMatrix,
  j: number,
  bySlot: Int32Array,
  lo: number,
  n: number,
  cap: number,
  sel: Int32Array,
  vals: Float64Array,
): void {
  const { data, experts: E } = scores;
  const K = sel.length / scores.tokens;
  const value = (s: number) => data[Math.floor(s / K) * E + j];
  for (let r = 0; r < n; r++) vals[r] = value(bySlot[lo + r]);
  let [t, ties] = keepThreshold(vals, n, cap);
  for (let r = 0; r < n; r++) {
    const s = bySlot[lo + r];
    const v = value(s);
    if (!(v > t || (v === t && ties-- > 0))) sel[s] = -1;
  }
}

/** Moves each token's kept slots first; dropped ones become `-1`, weight 0. */
function compact(out: Routing, N: number, K: number): void {
  const sel = out.experts, w = out.weights;
  for (let i = 0; i < N; i++) {
    let n = i * K;
    for (let r = i * K; r < (i + 1) * K; r++) {
      if (sel[r] < 0) continue;
      sel[n] = sel[r];
      w[n] = w[r];
      n++;
    }
    for (; n < (i + 1) * K; n++) {
      sel[n] = -1;
      w[n] = 0;
    }
  }
}
