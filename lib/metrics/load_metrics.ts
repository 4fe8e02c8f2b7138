import { show } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import {
  checkCoverage,
  SELECTED,
  SELECTED_LENGTH,
  selectedPass,
} from "./_selected.ts";

function checkLoads(loads: ArrayLike<number>): void {
  if (
    loads === null || typeof loads !== "object" ||
    typeof loads.length !== "number"
  ) {
    throw new TypeError(
      `loads must be an array of numbers: current value is ${show(loads)}`,
    );
  }
  if (loads.length === 0) {
    throw new RangeError("loads must not be empty: current length is 0");
  }
  for (let j = 0; j < loads.length; j++) {
    const v = loads[j];
    if (!(v >= 0) || v === Infinity) {
      throw new RangeError(
        `loads must be finite and non-negative: entry ${j} is ${v}`,
      );
    }
  }
}

function meanMax(loads: ArrayLike<number>): [number, number] {
  let sum = 0, max = -Infinity;
  for (let j = 0; j < loads.length; j++) {
    sum += loads[j];
    if (loads[j] > max) max = loads[j];
  }
  return [sum / loads.length, max];
}

/**
 * Maximal violation of balance, `MaxVio = (max_j c[j] - mean) / mean`
 * (Wang et al., arXiv 2408.15664). Applied to one batch's loads it is
 * MaxVio_batch; to loads summed over a run, MaxVio_global. `0` when every
 * load is zero.
 *
 * @param loads Load per expert (experts).
 * @throws {RangeError} If a load is negative or not finite, or `loads` is empty.
 *
 * @example
 * ```ts
 * import { maxVio } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(maxVio([3, 1, 2, 2]), 0.5);
 * assert.equal(maxVio([2, 2, 2, 2]), 0);
 * ```
 */
export function maxVio(loads: ArrayLike<number>): number {
  checkLoads(loads);
  const [mean, max] = meanMax(loads);
  return mean === 0 ? 0 : (max - mean) / mean;
}

/**
 * Busiest load over mean load, `max_j c[j] / mean` (`1` is perfect balance;
 * `0` when every load is zero).
 *
 * @example
 * ```ts
 * import { maxOverMean } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(maxOverMean([3, 1, 2, 2]), 1.5);
 * ```
 */
export function maxOverMean(loads: ArrayLike<number>): number {
  checkLoads(loads);
  const [mean, max] = meanMax(loads);
  return mean === 0 ? 0 : max / mean;
}

/**
 * Coefficient of variation of the loads: population standard deviation
 * over mean (two-pass). `0` when every load is zero.
 *
 * @example
 * ```ts
 * import { coefficientOfVariation } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(coefficientOfVariation([1, 3]), 0.5);
 * ```
 */
export function coefficientOfVariation(loads: ArrayLike<number>): number {
  checkLoads(loads);
  const [mean] = meanMax(loads);
  if (mean === 0) return 0;
  let ss = 0;
  for (let j = 0; j < loads.length; j++) ss += (loads[j] - mean) ** 2;
  return Math.sqrt(ss / loads.length) / mean;
}

/**
 * Number of experts with zero load.
 *
 * @example
 * ```ts
 * import { zeroLoadExperts } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(zeroLoadExperts([0, 4, 0, 1]), 2);
 * ```
 */
export function zeroLoadExperts(loads: ArrayLike<number>): number {
  checkLoads(loads);
  let n = 0;
  for (let j = 0; j < loads.length; j++) if (loads[j] === 0) n++;
  return n;
}

/**
 * Sum of the scores of the selected (token, expert) pairs, `sum s[i][j]`
 * over `j` in the routing of `i`; empty slots (`-1`) count nothing. Score
 * retention is this sum for a balancer over the same sum for greedy top-K.
 *
 * @param scores Scores, `tokens x experts`.
 * @param routing A routing of the same tokens.
 * @throws {TypeError} If the routing does not match the scores.
 *
 * @example
 * ```ts
 * import { route, selectedScoreSum } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = { data: new Float32Array([0.5, 0.25, 0.125, 1]), tokens: 2, experts: 2 };
 * const balanced = route(s, { k: 1, bias: [0, -1] });
 * const retention = selectedScoreSum(s, balanced) / selectedScoreSum(s, route(s, { k: 1 }));
 * assert.equal(retention, (0.5 + 0.125) / 1.5);
 * ```
 */
export function selectedScoreSum(
  scores: ScoreMatrix,
  routing: Routing,
): number {
  checkCoverage(scores, routing);
  const { data, tokens, experts } = scores;
  return selectedPass(
    data,
    routing.experts,
    tokens,
    experts,
    routing.k,
    0,
    new Float64Array(SELECTED_LENGTH),
  )[SELECTED.sum];
}
