// The Loss-Free bias update op (Wang et al., arXiv 2408.15664;
// docs/algorithms.md section 4) and its production CPU kernel, the update
// the `lossFree` balancer runs after each batch: optionally on token
// counts summed over micro-batches, with the counts and the bias kept in
// an emulated precision (lib/numeric/precision.ts).
import { checkChoice, checkNumber, show } from "../validate.ts";
import {
  addIn,
  checkPrecision,
  countCeiling,
  type Precision,
  roundTo,
} from "../numeric/precision.ts";
import { defineOp, registerKernel } from "./registry.ts";

/**
 * How token counts enter the running count: `"batch"` adds each
 * micro-batch's count once (Megatron-Core's
 * `local_tokens_per_expert += routing_map.sum(dim=0)`); `"token"` adds
 * 1 per routed token, as a counter incremented by atomics would (a
 * bfloat16 counter stops at 256, a float32 one at `2^24`).
 */
export type CountAdd = "batch" | "token";

/** Checked arguments of every Loss-Free update kernel. */
export interface LossFreeUpdateArgs {
  /** Biases of one layer (experts), updated in place. */
  bias: Float64Array;
  /** Loads of the batch just routed (experts), non-negative integers. */
  loads: Int32Array;
  /** Update rate `u >= 0` (already scheduled). */
  rate: number;
  /** `"sign"`: `u * sign(e)`; `"proportional"`: `u * e / mean(c)`. */
  rule: "sign" | "proportional";
  /** Subtract the mean of the update (the additive form's drift guard; float64 only). */
  center: boolean;
  /** Precision the bias is kept in. Default `"float64"`. */
  biasPrecision?: Precision;
  /** Precision the token counts are kept in. Default `"float64"`. */
  countPrecision?: Precision;
  /** How the loads enter the counts. Default `"batch"`. */
  countAdd?: CountAdd;
  /**
   * Running counts over micro-batches (experts, values of
   * `countPrecision`), updated in place: the loads are added to them, and
   * when `apply` the bias moves on them and they return to 0. Default:
   * counts of this batch alone.
   */
  counts?: Float64Array;
  /** Move the bias now (the last micro-batch of a global batch). Default `true`. */
  apply?: boolean;
}

/**
 * The Loss-Free update: the batch's loads are added to the running
 * counts `c` (in `countPrecision`, rounded after every add), and when
 * `apply`, with `e[j] = mean(c) - c[j]`, `b[j] += u * sign(e[j])` (sign
 * rule) or `u * e[j] / mean(c)` (proportional rule), less the update's
 * mean when `center`; nothing when every count is 0. Returns `args.bias`.
 *
 * In reduced precision the update is Megatron-Core's
 * `get_updated_expert_bias` as PyTorch evaluates it on tensors of that
 * type: the sum of the counts rounded once, `mean = sum / E`,
 * `e = mean - c`, the step `sign(e) * u` (each rounded to the count
 * precision), then `b + step` rounded to the bias precision.
 *
 * Backends: `"cpu"` (the reference: float64, or the emulated precision);
 * `"webgpu"` keeps float64 biases in float32 (the same signs, decided on
 * integer loads; values within float32 rounding) and emulates float32 and
 * bfloat16 counts and biases exactly for the sign rule.
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
  const biasPrecision = checkPrecision("biasPrecision", args.biasPrecision);
  const countPrecision = checkPrecision("countPrecision", args.countPrecision);
  if (center && (biasPrecision !== "float64" || countPrecision !== "float64")) {
    throw new RangeError(
      `center applies to float64 biases and counts only: current precisions are ${biasPrecision} and ${countPrecision}`,
    );
  }
  const countAdd = checkChoice("countAdd", args.countAdd ?? "batch", [
    "batch",
    "token",
  ]);
  const counts = args.counts;
  if (counts !== undefined) {
    if (!(counts instanceof Float64Array) || counts.length !== bias.length) {
      throw new TypeError(
        `counts must be a Float64Array with one entry per expert (${bias.length}): current value is ${
          show(counts)
        }`,
      );
    }
    for (let j = 0; j < counts.length; j++) {
      if (!(counts[j] >= 0) || counts[j] === Infinity) {
        throw new RangeError(
          `counts must be finite and non-negative: entry ${j} is ${counts[j]}`,
        );
      }
    }
  }
  const apply = args.apply ?? true;
  if (typeof apply !== "boolean") {
    throw new TypeError(
      `apply must be a boolean: current value is ${show(apply)}`,
    );
  }
  return {
    bias,
    loads,
    rate: checkNumber("rate", args.rate, 0),
    rule: checkChoice("rule", args.rule, ["sign", "proportional"]),
    center,
    biasPrecision,
    countPrecision,
    countAdd,
    counts,
    apply,
  };
}

/**
 * A running count plus a batch's load in `precision`: `"batch"` one
 * rounded add of the load, itself first rounded to `precision` (PyTorch
 * casts the integer tensor to the counts' type before `+=`); `"token"`
 * `load` adds of 1, which
 * stop at `countCeiling(precision)` (the count starts at or below it).
 *
 * @example
 * ```ts
 * import { addCount } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(addCount(40960, 601, "bfloat16", "batch"), 41472); // 601 -> 600, sum rounded to 256s
 * assert.equal(addCount(0, 300, "bfloat16", "token"), 256);
 * assert.equal(addCount(0, 300, "float32", "token"), 300);
 * ```
 */
export function addCount(
  count: number,
  load: number,
  precision: Precision,
  how: CountAdd,
): number {
  if (how === "token") {
    return Math.min(count + load, countCeiling(precision));
  }
  return precision === "float64"
    ? count + load
    : addIn(count, roundTo(load, precision), precision);
}

/** The production CPU kernel of {@linkcode lossFreeUpdateOp}. */
export function lossFreeUpdateCpu(args: LossFreeUpdateArgs): Float64Array {
  const { bias: b, loads, rate: u, center } = args;
  const pb = args.biasPrecision ?? "float64";
  const pc = args.countPrecision ?? "float64";
  const how = args.countAdd ?? "batch";
  const E = loads.length;
  const plain = pb === "float64" && pc === "float64" && how === "batch";
  // The counts the update reads: this batch's loads alone, or the
  // running counts with the loads added.
  let c: ArrayLike<number> = loads;
  if (args.counts !== undefined) {
    const acc = args.counts;
    for (let j = 0; j < E; j++) acc[j] = addCount(acc[j], loads[j], pc, how);
    if (!(args.apply ?? true)) return b;
    c = acc;
  } else if (!plain) {
    c = Float64Array.from(loads, (l) => addCount(0, l, pc, how));
  }
  if (plain) updateFloat64(b, c, u, args.rule === "sign", center);
  else updateIn(b, c, u, args.rule === "sign", pb, pc);
  args.counts?.fill(0);
  return b;
}

/** The update in float64 on exact counts (the reference arithmetic). */
function updateFloat64(
  b: Float64Array,
  c: ArrayLike<number>,
  u: number,
  sign: boolean,
  center: boolean,
): void {
  const E = c.length;
  let total = 0;
  for (let j = 0; j < E; j++) total += c[j];
  const mean = total / E;
  if (mean === 0) return;
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
}

/**
 * The update as PyTorch evaluates `get_updated_expert_bias` on counts of
 * precision `pc` and a bias of precision `pb`: every intermediate tensor
 * rounded to `pc`, the sum accumulated exactly and rounded once.
 */
function updateIn(
  b: Float64Array,
  c: ArrayLike<number>,
  u: number,
  sign: boolean,
  pb: Precision,
  pc: Precision,
): void {
  const E = c.length;
  let sum = 0;
  for (let j = 0; j < E; j++) sum += c[j];
  const total = roundTo(sum, pc);
  const mean = roundTo(total / E, pc);
  if (mean === 0) return;
  for (let j = 0; j < E; j++) {
    const e = roundTo(mean - c[j], pc);
    const step = sign
      ? roundTo(Math.sign(e) * u, pc)
      : roundTo(roundTo(u * e, pc) / mean, pc);
    b[j] = addIn(b[j], step, pb);
  }
}

registerKernel({
  op: lossFreeUpdateOp,
  backend: "cpu",
  run: lossFreeUpdateCpu,
  callers: ["lossFree balancer update()"],
});
