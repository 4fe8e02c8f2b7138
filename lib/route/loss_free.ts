import { checkChoice, checkInteger, checkNumber } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import type { Balancer, BalancerContext } from "./balancer.ts";
import { createRouting, routeInto } from "./route.ts";
import { checkContext, checkedBalancer } from "./_context.ts";
import { requireKernel } from "../ops/registry.ts";
import { type CountAdd, lossFreeUpdateOp } from "../ops/loss_free_update.ts";
import { checkPrecision, type Precision } from "../numeric/precision.ts";
import { cosPi } from "../numeric/fdlibm.ts";

/** Update-rate schedules of {@linkcode lossFree}. */
export type RateSchedule = "constant" | "linear" | "cosine" | "step";

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
  /**
   * Micro-batches per global batch: the token counts of this many
   * batches are summed, then the bias moves once (Megatron-Core updates
   * `expert_bias` once per global batch in `finalize_model_grads` from
   * `local_tokens_per_expert` accumulated over the micro-batches; the
   * Loss-Free paper, section 5.1). Every batch is still routed, and its
   * balance measured, on its own. Default `1`.
   */
  microBatches?: number;
  /**
   * How the rate changes with the number `t` of bias updates made:
   * `"constant"` (default); `"linear"` from `rate` to `finalRate` over
   * `scheduleSteps` updates; `"cosine"` the same with a half cosine;
   * `"step"` `rate * stepFactor^floor(t / scheduleSteps)`.
   */
  schedule?: RateSchedule;
  /** Updates of the linear or cosine decay, or between two steps. Required by those schedules. */
  scheduleSteps?: number;
  /** Rate at the end of a linear or cosine decay. Default `0`. */
  finalRate?: number;
  /** Factor of the step schedule. Default `0.1`. */
  stepFactor?: number;
  /**
   * Precision the bias is kept in, rounded after every update (Megatron-Core
   * keeps `expert_bias` in float32; bfloat16 is what its bias buffer
   * silently became in bf16 training, Megatron-LM issue 1482). Default
   * `"float64"`.
   */
  biasPrecision?: Precision;
  /**
   * Precision the token counts are accumulated and reduced in (float32 in
   * Megatron-Core's `local_tokens_per_expert`; bfloat16 before Megatron-LM
   * PR 7081). Default `"float64"` (exact).
   */
  countPrecision?: Precision;
  /** How loads enter the counts (see `CountAdd`). Default `"batch"`. */
  countAdd?: CountAdd;
}

/**
 * The update rate of {@linkcode lossFree} after `t` updates under a
 * schedule (see {@linkcode LossFreeOptions}).
 *
 * @example A linear decay from 1e-3 to 0 over 10 updates
 * ```ts
 * import { scheduledRate } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const o = { rate: 1e-3, schedule: "linear", scheduleSteps: 10 } as const;
 * assert.equal(scheduledRate(o, 0), 1e-3);
 * assert.equal(scheduledRate(o, 5), 5e-4);
 * assert.equal(scheduledRate(o, 20), 0);
 * ```
 */
export function scheduledRate(
  options: LossFreeOptions,
  t: number,
): number {
  const o = lossFreeSettings(options);
  return rateAt(o, t);
}

function rateAt(o: Required<LossFreeOptions>, t: number): number {
  const u = o.rate;
  switch (o.schedule) {
    case "constant":
      return u;
    case "linear": {
      const f = Math.min(t, o.scheduleSteps) / o.scheduleSteps;
      return u + (o.finalRate - u) * f;
    }
    case "cosine": {
      const f = Math.min(t, o.scheduleSteps) / o.scheduleSteps;
      return o.finalRate + (u - o.finalRate) * (1 + cosPi(f)) / 2;
    }
    case "step":
      return u * o.stepFactor ** Math.floor(t / o.scheduleSteps);
  }
}

/**
 * Checks {@linkcode LossFreeOptions} and fills their defaults: the one
 * place both the CPU balancer and the device balancer read them from.
 */
export function lossFreeSettings(
  options: LossFreeOptions,
): Required<LossFreeOptions> {
  const schedule = checkChoice("schedule", options.schedule ?? "constant", [
    "constant",
    "linear",
    "cosine",
    "step",
  ]);
  if (schedule !== "constant" && options.scheduleSteps === undefined) {
    throw new RangeError(
      `scheduleSteps must be set for the ${schedule} schedule: current value is undefined`,
    );
  }
  const settings = {
    rate: checkNumber("rate", options.rate ?? 1e-3, 0),
    rule: checkChoice("rule", options.rule ?? "sign", [
      "sign",
      "proportional",
    ]),
    multiplicative: options.multiplicative ?? false,
    center: options.center ?? false,
    microBatches: checkInteger("microBatches", options.microBatches ?? 1, 1),
    schedule,
    scheduleSteps: checkInteger("scheduleSteps", options.scheduleSteps ?? 1, 1),
    finalRate: checkNumber("finalRate", options.finalRate ?? 0, 0),
    stepFactor: checkNumber("stepFactor", options.stepFactor ?? 0.1, 0),
    biasPrecision: checkPrecision("biasPrecision", options.biasPrecision),
    countPrecision: checkPrecision("countPrecision", options.countPrecision),
    countAdd: checkChoice("countAdd", options.countAdd ?? "batch", [
      "batch",
      "token",
    ]),
  };
  if (
    settings.center &&
    (settings.biasPrecision !== "float64" ||
      settings.countPrecision !== "float64")
  ) {
    throw new RangeError(
      `center applies to float64 biases and counts only: current precisions are ${settings.biasPrecision} and ${settings.countPrecision}`,
    );
  }
  return settings;
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
 * Biases are kept in float64 and loads as exact integers by default;
 * `biasPrecision` and `countPrecision` emulate float32 or bfloat16
 * storage exactly (round to nearest even after every add), and
 * `microBatches` sums the counts of several batches before one update, at
 * a rate that may follow a `schedule`.
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
  const o = lossFreeSettings(options);
  const { rule, multiplicative, center, microBatches } = o;
  const E = ctx.experts;
  // Running counts and micro-batch and update counters, per layer.
  const reduced = microBatches > 1 || o.countPrecision !== "float64" ||
    o.countAdd !== "batch";
  const counts = reduced
    ? Array.from({ length: ctx.layers }, () => new Float64Array(E))
    : undefined;
  const seen = new Int32Array(ctx.layers);
  const updates = new Int32Array(ctx.layers);
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
      seen[layer]++;
      const apply = seen[layer] % microBatches === 0;
      updateKernel.run({
        bias: bias[layer],
        loads: routing.loads,
        rate: rateAt(o, updates[layer]),
        rule,
        center: center && !multiplicative,
        biasPrecision: o.biasPrecision,
        countPrecision: o.countPrecision,
        countAdd: o.countAdd,
        counts: counts?.[layer],
        apply,
      }, {});
      if (apply) updates[layer]++;
    },
    biases: (layer: number) => Float64Array.from(bias[layer]),
  });
}
