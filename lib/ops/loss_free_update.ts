// The Loss-Free bias update op (Wang et al., arXiv 2408.15664;
// docs/algorithms.md section 4) and its production CPU kernel, the update
// the `lossFree` balancer runs after each batch.
import { checkChoice, checkNumber, show } from "../validate.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** Checked arguments of every Loss-Free update kernel. */
export interface LossFreeUpdateArgs {
  /** Biases of one layer (experts), updated in place. */
  bias: Float64Array;
  /** Loads of the batch just routed (experts), non-negative integers. */
  loads: Int32Array;
  /** Update rate `u >= 0`. */
  rate: number;
  /** `"sign"`: `u * sign(e)`; `"proportional"`: `u * e / mean(c)`. */
  rule: "sign" | "proportional";
  /** Subtract the mean of the update (the additive form's drift guard). */
  center: boolean;
}

/**
 * The Loss-Free update: with `e[j] = mean(c) - c[j]` from the batch's
 * loads `c`, `b[j] += u * sign(e[j])` (sign rule) or `u * e[j] / mean(c)`
 * (proportional rule), less the update's mean when `center`; nothing when
 * every load is 0. Returns `args.bias`.
 *
 * Backends: `"cpu"` keeps the biases in float64 (the reference);
 * `"webgpu"` keeps them in float32: the same signs (decided on integer
 * loads), values within float32 rounding of the bias and the step.
 */
export const lossFreeUpdateOp = defineOp<
  LossFreeUpdateArgs,
  LossFreeUpdateArgs,
  Float64Array
>({
  name: "lossFreeUpdate",
  summary: "Loss-Free Balancing's expert bias update from a batch's loads",
  validate: checkLossFreeUpdate,
});

function checkLossFreeUpdate(args: LossFreeUpdateArgs): LossFreeUpdateArgs {
  if (args === null || typeof args !== "object") {
    throw new TypeError(
      `args must be an object: current value is ${show(args)}`,
    );
  }
  const { bias, loads } = args;
  if (!(bias instanceof Float64Array) || bias.length === 0) {
    throw new TypeError(
      `bias must be a non-empty Float64Array: current value is ${show(bias)}`,
    );
  }
  if (!(loads instanceof Int32Array) || loads.length !== bias.length) {
    throw new TypeError(
      `loads must be an Int32Array with one entry per expert (${bias.length}): current value is ${
        show(loads)
      }`,
    );
  }
  for (let j = 0; j < loads.length; j++) {
    if (loads[j] < 0) {
      throw new RangeError(
        `loads must be non-negative: entry ${j} is ${loads[j]}`,
      );
    }
  }
  for (let j = 0; j < bias.length; j++) {
    if (!Number.isFinite(bias[j])) {
      throw new RangeError(`bias must be finite: entry ${j} is ${bias[j]}`);
    }
  }
  const center = args.center ?? false;
  if (typeof center !== "boolean") {
    throw new TypeError(
      `center must be a boolean: current value is ${show(center)}`,
    );
  }
  return {
    bias,
    loads,
    rate: checkNumber("rate", args.rate, 0),
    rule: checkChoice("rule", args.rule, ["sign", "proportional"]),
    center,
  };
}

/** The production CPU kernel of {@linkcode lossFreeUpdateOp}, in float64. */
export function lossFreeUpdateCpu(args: LossFreeUpdateArgs): Float64Array {
  const { bias: b, loads: c, rate: u, center } = args;
  const sign = args.rule === "sign";
  const E = c.length;
  let total = 0;
  for (let j = 0; j < E; j++) total += c[j];
  const mean = total / E;
  if (mean === 0) return b;
  // The step is computed twice when centred (once for its mean), rather
  // than kept in scratch: the same arithmetic gives the same bits.
  let shift = 0;
  if (center) {
    for (let j = 0; j < E; j++) {
      const e = mean - c[j];
      shift += sign ? u * Math.sign(e) : (u * e) / mean;
    }
    shift /= E;
  }
  for (let j = 0; j < E; j++) {
    const e = mean - c[j];
    b[j] += (sign ? u * Math.sign(e) : (u * e) / mean) - shift;
  }
  return b;
}

registerKernel({
  op: lossFreeUpdateOp,
  backend: "cpu",
  run: lossFreeUpdateCpu,
  callers: ["lossFree balancer update()"],
});
