import type { Routing, ScoreMatrix } from "../types.ts";
import {
  checkCoverage,
  SELECTED,
  SELECTED_LENGTH,
  selectedPass,
  selectedPasses,
} from "./_selected.ts";

/**
 * Names of the per-batch metrics, in the order in which
 * {@linkcode batchMetrics} writes them and the simulator's metrics table
 * numbers them.
 */
export const BATCH_METRICS = [
  "maxVio",
  "cv",
  "maxOverMean",
  "zeroExperts",
  "scoreRetention",
  "droppedFraction",
  "tokensWithoutExpert",
] as const;

/** A per-batch metric (see {@linkcode BATCH_METRICS}). */
export type BatchMetric = typeof BATCH_METRICS[number];

/**
 * The position of each per-batch metric in {@linkcode BATCH_METRICS}:
 * `values[METRIC.scoreRetention]`, not `values[4]`.
 *
 * @example
 * ```ts
 * import { BATCH_METRICS, METRIC } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(BATCH_METRICS[METRIC.scoreRetention], "scoreRetention");
 * assert.equal(Object.keys(METRIC).length, BATCH_METRICS.length);
 * ```
 */
export const METRIC: Readonly<Record<BatchMetric, number>> = Object.freeze(
  Object.fromEntries(BATCH_METRICS.map((name, q) => [name, q])) as Record<
    BatchMetric,
    number
  >,
);

/** Options of {@linkcode batchMetrics}. */
export interface BatchMetricsOptions {
  /**
   * Experts per token the run asks for (`K`). A routing may have more
   * slots than `K` (Expert Choice's has): `droppedFraction` counts, per
   * token, the used slots short of `K`.
   */
  topK: number;
  /**
   * Selected score sum of the reference routing (greedy top-K) on the same
   * batch, the denominator of `scoreRetention` (retention 1 when it is 0).
   */
  referenceSum: number;
  /** Where to write, `BATCH_METRICS.length` values (default: a new array). */
  out?: Float64Array;
}

/**
 * The {@linkcode BATCH_METRICS} of one routed batch, with `c[j]` the load
 * of expert `j` over `E` experts and `mean = sum_j c[j] / E`:
 * `maxVio = (max c - mean) / mean` (Wang et al., arXiv 2408.15664), `cv`
 * the population standard deviation of `c` over `mean`, `maxOverMean =
 * max c / mean` (the three are `0` when every load is zero),
 * `zeroExperts` the experts with `c[j] = 0`, `scoreRetention` the
 * selected score sum over `referenceSum`, `droppedFraction` the share of
 * the `tokens x K` (token, slot) pairs without an expert, and
 * `tokensWithoutExpert` the tokens routed nowhere. One pass over the
 * loads and one over the slots: O(E + tokens x k).
 *
 * @param scores Scores of the batch (tokens x experts).
 * @param routing Its routing: experts (tokens x k, `-1` for an empty slot) and loads.
 * @param options `topK`, `referenceSum` and an optional `out`.
 * @returns The values, indexed by {@linkcode METRIC}.
 * @throws {TypeError} If the routing does not cover the scores' tokens.
 *
 * @example
 * ```ts
 * import { batchMetrics, METRIC, route } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // Two tokens both pick expert 1 of 2: loads [0, 2], mean 1.
 * const s = { data: new Float32Array([0.1, 0.9, 0.2, 0.8]), tokens: 2, experts: 2 };
 * const r = route(s, { k: 1 });
 * const v = batchMetrics(s, r, { topK: 1, referenceSum: 1.7 });
 * assert.equal(v[METRIC.maxVio], 1);
 * assert.equal(v[METRIC.zeroExperts], 1);
 * assert.ok(Math.abs(v[METRIC.scoreRetention] - 1) < 1e-6);
 * ```
 */
export function batchMetrics(
  scores: ScoreMatrix,
  routing: Routing,
  options: BatchMetricsOptions,
): Float64Array {
  const out = options.out ?? new Float64Array(BATCH_METRICS.length);
  // One pass over the slots: counts and the selected score sum.
  checkCoverage(scores, routing);
  const pass = selectedPass(
    scores.data,
    routing.experts,
    scores.tokens,
    scores.experts,
    routing.k,
    options.topK,
    new Float64Array(SELECTED_LENGTH),
  );
  return metricsOf(routing.loads, pass, scores.tokens, options, out);
}

/** Options of {@linkcode batchMetricsMany}. */
export interface BatchMetricsManyOptions {
  /** Experts per token the run asks for (`K`), as {@linkcode BatchMetricsOptions}. */
  topK: number;
  /**
   * The routing, by its index, whose selected score sum is the
   * denominator of every routing's `scoreRetention` (greedy top-K on the
   * same batch).
   */
  referenceIndex: number;
  /** Where to write, one array of `BATCH_METRICS.length` values per routing (default: new ones). */
  out?: Float64Array[];
}

/** What {@linkcode batchMetricsMany} returns. */
export interface BatchMetricsMany {
  /** Each routing's {@linkcode batchMetrics}, in order. */
  values: Float64Array[];
  /** Each routing's selected score sum (`selectedScoreSum`). */
  sums: Float64Array;
}

/**
 * {@linkcode batchMetrics} of several routings of the same batch, with
 * one of them the retention reference, in one pass over the scores
 * instead of one per routing (and one more for the reference's sum): the
 * same values bit for bit. The simulator's per-batch metrics of every
 * method.
 *
 * @param scores Scores of the batch (tokens x experts).
 * @param routings Its routings (each `tokens x k` slots; `k` may differ).
 * @param options `topK`, `referenceIndex` and an optional `out`.
 * @returns Each routing's metrics, indexed by {@linkcode METRIC}, and its
 * selected score sum.
 * @throws {TypeError} If a routing does not cover the scores' tokens.
 * @throws {RangeError} If `referenceIndex` names no routing.
 *
 * @example
 * ```ts
 * import { batchMetrics, batchMetricsMany, METRIC, route, selectedScoreSum } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = { data: new Float32Array([0.1, 0.9, 0.2, 0.8]), tokens: 2, experts: 2 };
 * const greedy = route(s, { k: 1 });
 * const spread = route(s, { k: 1, bias: [0.75, 0] }); // token 1 moves to expert 0
 * const { values, sums } = batchMetricsMany(s, [greedy, spread], {
 *   topK: 1,
 *   referenceIndex: 0,
 * });
 * const referenceSum = selectedScoreSum(s, greedy);
 * assert.equal(sums[0], referenceSum);
 * assert.deepEqual(values[1], batchMetrics(s, spread, { topK: 1, referenceSum }));
 * assert.equal(values[1][METRIC.maxVio], 0);
 * ```
 */
export function batchMetricsMany(
  scores: ScoreMatrix,
  routings: readonly Routing[],
  options: BatchMetricsManyOptions,
): BatchMetricsMany {
  const { topK, referenceIndex } = options;
  const R = routings.length;
  if (
    !(Number.isInteger(referenceIndex) && referenceIndex >= 0 &&
      referenceIndex < R)
  ) {
    throw new RangeError(
      `referenceIndex must name one of the ${R} routings: current value is ${referenceIndex}`,
    );
  }
  for (const routing of routings) checkCoverage(scores, routing);
  const pass = selectedPasses(
    scores.data,
    routings.map((r) => r.experts),
    routings.map((r) => r.k),
    scores.tokens,
    scores.experts,
    topK,
    new Float64Array(R * SELECTED_LENGTH),
  );
  const sums = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    sums[r] = pass[r * SELECTED_LENGTH + SELECTED.sum];
  }
  const referenceSum = sums[referenceIndex];
  const values = routings.map((routing, r) =>
    metricsOf(
      routing.loads,
      pass.subarray(r * SELECTED_LENGTH, (r + 1) * SELECTED_LENGTH),
      scores.tokens,
      { topK, referenceSum },
      options.out?.[r] ?? new Float64Array(BATCH_METRICS.length),
    )
  );
  return { values, sums };
}

/** The metrics from the loads and a routing's pass over its slots. */
function metricsOf(
  loads: ArrayLike<number>,
  pass: Float64Array,
  tokens: number,
  options: { topK: number; referenceSum: number },
  out: Float64Array,
): Float64Array {
  const { topK, referenceSum } = options;
  const E = loads.length;
  let total = 0, max = 0, zero = 0;
  for (let j = 0; j < E; j++) {
    total += loads[j];
    if (loads[j] > max) max = loads[j];
    if (loads[j] === 0) zero++;
  }
  const mean = total / E;
  let ss = 0;
  for (let j = 0; j < E; j++) ss += (loads[j] - mean) ** 2;
  const sum = pass[SELECTED.sum];
  const empty = pass[SELECTED.empty], without = pass[SELECTED.without];
  out[METRIC.maxVio] = mean === 0 ? 0 : (max - mean) / mean;
  out[METRIC.cv] = mean === 0 ? 0 : Math.sqrt(ss / E) / mean;
  out[METRIC.maxOverMean] = mean === 0 ? 0 : max / mean;
  out[METRIC.zeroExperts] = zero;
  out[METRIC.scoreRetention] = referenceSum === 0 ? 1 : sum / referenceSum;
  out[METRIC.droppedFraction] = empty / (tokens * topK);
  out[METRIC.tokensWithoutExpert] = without;
  return out;
}
