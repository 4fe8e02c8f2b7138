import type { ScoreMatrix } from "../types.ts";
import { certify } from "./_certificate.ts";
import { resolveProblem } from "./_problem.ts";
import { successiveShortestPaths } from "./_ssp.ts";
import { warmStartPrices } from "./_warm_start.ts";
import type { BalancedAssignment, BalancedAssignmentOptions } from "./types.ts";

/**
 * Solves the balanced assignment exactly, synchronously, with the
 * specialised solver `"ssp"`: maximise the sum of selected scores with
 * every token on exactly `k` distinct experts and every expert on at most
 * `capacity` tokens, and return prices that prove it optimal.
 *
 * The algorithm (docs/algorithms.md section 5): starting expert prices `q` come
 * from `options.expertPrices` or from the exact optimum of a sample of one
 * token in four (solved the same way, recursively); each token takes its
 * top-k of `s - q`; then successive shortest paths
 * on the E-node graph whose edge a -> b is the cheapest move of a token
 * from expert a to expert b (the two cheapest kept per pair, repaired where
 * tokens move, lower bounds standing in for the rest)
 * remove every excess exactly, moving prices by Dijkstra distances. Unused
 * capacity is a dummy token of score 0, so ties and slack need no special
 * case. The duality gap is recomputed from the returned prices (see
 * {@linkcode BalancedAssignment}). Use it in synchronous loops (the
 * simulator); {@linkcode solveBalancedAssignment} also runs glpk.js and
 * HiGHS.
 *
 * @param scores Scores (tokens x experts, row-major); `-Infinity` masks a pair.
 * @param options `k`, and `capacity` or `capacityFactor` (default capacity
 * `ceil(tokens * k / experts)`); `solver` must be `"auto"` or `"ssp"`.
 * @returns The optimal assignment, loads, objective, prices and duality gap.
 * @throws {TypeError} If `scores` or `options` has the wrong type or shape.
 * @throws {RangeError} If `k > experts`, a score is NaN or `+Infinity`, the
 * capacity is infeasible (`tokens * k > experts * capacity`, or masks leave
 * no feasible assignment), or the solver is not `"auto"` or `"ssp"`.
 *
 * @example Both tokens prefer expert 0; the optimum sends the first away
 * ```ts
 * import { solveBalancedAssignmentSync } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const scores = {
 *   data: new Float32Array([0.9, 0.5, 0.8, 0.1]),
 *   tokens: 2,
 *   experts: 2,
 * };
 * const a = solveBalancedAssignmentSync(scores, { k: 1 }); // capacity 1
 * assert.deepEqual([...a.experts], [1, 0]); // 0.5 + 0.8 beats 0.9 + 0.1
 * assert.ok(Math.abs(a.objective - 1.3) < 1e-6);
 * assert.ok(a.dualityGap <= 1e-9 * Math.abs(a.objective));
 * ```
 */
export function solveBalancedAssignmentSync(
  scores: ScoreMatrix,
  options: BalancedAssignmentOptions,
): BalancedAssignment {
  const problem = resolveProblem(scores, options);
  if (problem.solver !== "ssp") {
    throw new RangeError(
      `options.solver must be "auto" or "ssp" in the synchronous solver: current value is "${problem.solver}"`,
    );
  }
  const { data, tokens, experts } = problem.scores;
  const { k, capacity } = problem;
  const prices = problem.start ??
    warmStartPrices(data, tokens, experts, k, capacity);
  const result = successiveShortestPaths(
    data,
    tokens,
    experts,
    k,
    capacity,
    prices,
  );
  if (result === null) {
    throw new RangeError(
      `scores mask too many pairs: no assignment gives every token k = ${k} unmasked experts within capacity ${capacity}`,
    );
  }
  return certify(problem, result.slots, result.prices, "ssp");
}
