// The per-batch metrics op: what the simulator records for every step,
// layer and method (docs/algorithms.md section 1). Its CPU kernel is
// lib/metrics/batch_metrics.ts's batchMetrics, whose METRIC names the
// positions of the output.
import {
  checkInteger,
  checkNumber,
  checkObject,
  checkRoutingShape,
  checkScores,
  show,
} from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { BATCH_METRICS, batchMetrics } from "../metrics/batch_metrics.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** What the per-batch metrics op's validator takes. */
export interface BatchMetricsRequest {
  /** Scores of the batch, `tokens x experts`. */
  scores: ScoreMatrix;
  /** Its routing (`-1` slots are empty; `k` may exceed `topK`). */
  routing: Routing;
  /** Experts a token should get (`K`), for `droppedFraction`. */
  topK: number;
  /** Selected score sum of the reference routing (greedy top-K). */
  referenceSum: number;
  /** Output, one entry per metric. Default: a new one. */
  out?: Float64Array;
}

/** Checked arguments of every per-batch metrics kernel. */
export interface BatchMetricsArgs extends BatchMetricsRequest {
  out: Float64Array;
}

/**
 * The per-batch metrics of one routed batch, with `c` its loads, `mean`
 * and `max` over the experts:
 *
 * - `maxVio = (max - mean) / mean`, `cv = std(c) / mean`,
 *   `maxOverMean = max / mean` (all 0 when `mean = 0`);
 * - `zeroExperts`: experts with no token;
 * - `scoreRetention`: the selected score sum (finite scores of filled
 *   slots) over `referenceSum` (1 when that is 0);
 * - `droppedFraction`: the experts short of `topK`, summed over tokens,
 *   over `tokens * topK`; `tokensWithoutExpert`: tokens with no expert.
 *
 * Written at the positions of `METRIC` (lib/metrics/batch_metrics.ts);
 * returns `args.out`.
 *
 * Backends: `"cpu"` in float64 (the reference); a float32 kernel agrees on
 * the counts exactly and on the ratios within float32 rounding.
 */
export const batchMetricsOp = defineOp<
  BatchMetricsRequest,
  BatchMetricsArgs,
  Float64Array
>({
  name: "batchMetrics",
  summary: "load balance, score retention and drops of one routed batch",
  validate: checkBatchMetrics,
});

function checkBatchMetrics(request: BatchMetricsRequest): BatchMetricsArgs {
  checkObject("request", request);
  const scores = checkScores("scores", request.scores);
  const { tokens: N, experts: E } = scores;
  const routing = checkRoutingShape("routing", request.routing, N, E);
  const k = routing.k;
  for (let s = 0; s < N * k; s++) {
    const j = routing.experts[s];
    if (!(j >= -1 && j < E)) {
      throw new RangeError(
        `routing.experts must hold -1 or experts in [0, ${E}): slot ${s} is ${j}`,
      );
    }
  }
  const topK = checkInteger("topK", request.topK, 1);
  const referenceSum = checkNumber("referenceSum", request.referenceSum);
  const out = request.out ?? new Float64Array(BATCH_METRICS.length);
  if (!(out instanceof Float64Array) || out.length !== BATCH_METRICS.length) {
    throw new TypeError(
      `out must be a Float64Array of ${BATCH_METRICS.length} entries: current value is ${
        show(out)
      }`,
    );
  }
  return { scores, routing, topK, referenceSum, out };
}

/** The production CPU kernel of {@linkcode batchMetricsOp}. */
export function batchMetricsCpu(args: BatchMetricsArgs): Float64Array {
  return batchMetrics(args.scores, args.routing, args);
}

registerKernel({
  op: batchMetricsOp,
  backend: "cpu",
  run: batchMetricsCpu,
  callers: [
    "the simulator's per-batch metrics (lib/sim/_simulate.ts and lib/sim/run_backend.ts: batchMetricsMany runs its code for every method of a batch in one pass over the scores)",
  ],
});
