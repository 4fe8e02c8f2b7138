// The Quantile step op (Quantile Balancing, J. Su, 2026; Megatron-Core
// `quantile_balancing`; docs/algorithms.md section 7) and its production
// CPU kernel, the update the `quantile` balancer runs after each batch.
import {
  badScore,
  checkInteger,
  checkObject,
  checkScores,
  show,
} from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { defineOp, registerKernel } from "./registry.ts";
import {
  type ColumnBounds,
  coordinateRounds,
  type DualScratch,
  dualScratch,
} from "./_dual.ts";
import { routeRows, rowState, writeSelection } from "./_route_rows.ts";
import { rowTop } from "../select/top.ts";

/** What the Quantile step's validator takes. */
export interface QuantileStepRequest {
  /** The batch just routed, `tokens x experts`. */
  scores: ScoreMatrix;
  /** Experts per token. */
  k: number;
  /** Prices `q = -b` (experts) that routed it, finite; updated in place. */
  prices: Float64Array;
}

/** Checked arguments of every Quantile step kernel. */
export interface QuantileStepArgs extends QuantileStepRequest {
  /**
   * `a[i]` of the batch (tokens), when the route computed it on the way
   * (see {@linkcode routeKeepingNext}); the CPU kernel then skips its
   * token step. Other kernels may ignore it.
   */
  tokenValues?: Float64Array;
  /** CPU kernel scratch (reused between batches); others ignore it. */
  scratch?: DualScratch;
  /** CPU kernel candidate memory per layer (speed only); others ignore it. */
  bounds?: ColumnBounds;
}

/**
 * One Quantile step on the batch just routed, from the prices `q = -b`
 * that routed it, with `C = ceil(N * K / E)`:
 *
 * - `a[i] = (K+1)-th largest of s[i][j] - q[j] over j`;
 * - `q'[j] = (C+1)-th largest of s[i][j] - a[i] over i` (an expert whose
 *   column has no finite value keeps its price);
 * - `q = q' - mean(q')`.
 *
 * Unclipped, unlike BIP's round. Nothing changes when `K >= E` or
 * `C >= N`. Returns `args.prices`.
 *
 * Backends: `"cpu"` in float64 (the reference); a float32 kernel agrees
 * within float32 rounding of `|s| + |q|` (order statistics move by at
 * most the change of their inputs; the mean by at most the largest change).
 */
export const quantileStepOp = defineOp<
  QuantileStepRequest,
  QuantileStepArgs,
  Float64Array
>({
  name: "quantileStep",
  summary: "Quantile Balancing's exact dual step from the batch just routed",
  validate: checkQuantileStep,
});

function checkQuantileStep(request: QuantileStepRequest): QuantileStepArgs {
  checkObject("request", request);
  const scores = checkScores("scores", request.scores);
  const E = scores.experts;
  const k = checkInteger("k", request.k, 1, E);
  const prices = request.prices;
  if (!(prices instanceof Float64Array) || prices.length !== E) {
    throw new TypeError(
      `prices must be a Float64Array with one entry per expert (${E}): current value is ${
        show(prices)
      }`,
    );
  }
  for (let j = 0; j < E; j++) {
    if (!Number.isFinite(prices[j])) {
      throw new RangeError(`prices must be finite: entry ${j} is ${prices[j]}`);
    }
  }
  return { scores, k, prices };
}

/** The production CPU kernel of {@linkcode quantileStepOp}, in float64. */
export function quantileStepCpu(args: QuantileStepArgs): Float64Array {
  const { scores, k, prices: q } = args;
  const { tokens: N, experts: E } = scores;
  const C = Math.ceil((N * k) / E);
  if (k >= E || C >= N) return q;
  const scratch = dualScratch(N, E, k, args.scratch);
  const ready = args.tokenValues !== undefined;
  if (ready && args.tokenValues !== scratch.p) scratch.p.set(args.tokenValues!);
  const next = Float64Array.from(q);
  coordinateRounds(scores, k, C, next, 1, false, scratch, args.bounds, ready);
  let mean = 0;
  for (let j = 0; j < E; j++) {
    // A column of -Infinity scores has no finite quantile: keep its price.
    if (!Number.isFinite(next[j])) next[j] = q[j];
    mean += next[j];
  }
  mean /= E;
  for (let j = 0; j < E; j++) q[j] = next[j] - mean;
  return q;
}

registerKernel({
  op: quantileStepOp,
  backend: "cpu",
  run: quantileStepCpu,
  callers: ['quantile balancer update() (host "cpu")'],
});

/**
 * The route op's CPU selection (top-K of `s - q`, ties to the lowest
 * index; no groups; a NaN or `+Infinity` score is a RangeError naming it)
 * that also keeps each token's `(K+1)`-th value
 * `a[i]` in `scratch.p`, for the Quantile step that follows: one pass
 * instead of two. Needs `k < experts`. Weights from the unbiased scores,
 * normalised when asked.
 */
export function routeKeepingNext(
  scores: ScoreMatrix,
  k: number,
  q: Float64Array,
  out: Routing,
  scratch: DualScratch,
  normalize: boolean,
): void {
  const { data, tokens: N, experts: E } = scores;
  const { p, top: topV, topI, filter } = scratch;
  const { experts, weights, loads } = out;
  loads.fill(0);
  if (!q.subarray(0, E).every(Number.isFinite)) {
    routeKeepingNextByRows(scores, k, q, out, scratch, normalize);
    return;
  }
  // The route op's rows with the bias -q (s - q and s + (-q) are the same
  // float64) select the top k + 1; the row filter tracks the (k+1)-th.
  const bias = Float64Array.from(q.subarray(0, E), (v) => -v);
  const state = { ...rowState(E), stats: filter.stats };
  const settings = { bias, multiply: false, normalize, scale: 1 };
  const bad = routeRows(
    data,
    E,
    k,
    settings,
    0,
    N,
    experts,
    weights,
    loads,
    topV,
    topI,
    state,
    p,
  );
  if (bad >= 0) throw badScore("scores", scores, bad);
}

/**
 * routeKeepingNext where a price is not finite (the route op's rows take
 * finite biases only): lib/select/top.ts rowTop row by row, its (k+1)-th
 * value kept, the first k routed.
 */
const routeKeepingNextByRows: typeof routeKeepingNext = (
  scores,
  k,
  q,
  out,
  scratch,
  normalize,
) => {
  const { data, tokens: N, experts: E } = scores;
  const { p, top: topV, topI, filter } = scratch;
  const outE = out.experts, outW = out.weights, loads = out.loads;
  for (let i = 0; i < N; i++) {
    const base = i * E;
    // Ties keep the lowest index, so the first k are the route op's top-k.
    rowTop(data, base, E, q, k + 1, topV, topI, filter);
    // NaN and +Infinity fail here, as in the route op.
    let bad = 0;
    for (let j = 0; j < E; j++) bad += Number(!(data[base + j] < Infinity));
    if (bad > 0) {
      let j = 0;
      while (data[base + j] < Infinity) j++;
      throw badScore("scores", scores, base + j);
    }
    p[i] = topV[k];
    writeSelection(data, base, topI, k, i * k, outE, outW, loads, normalize, 1);
  }
};
