import type { ScoreMatrix } from "../types.ts";
import { certify } from "./_certificate.ts";
import { solveWithGlpk } from "./_glpk.ts";
import { solveWithHighs } from "./_highs.ts";
import { readLpSolution } from "./_lp.ts";
import { resolveProblem } from "./_problem.ts";
import { solveSsp } from "./_solve_ssp.ts";
import type { BalancedAssignment, BalancedAssignmentOptions } from "./types.ts";

/**
 * Solves the balanced assignment exactly with any of the exact solvers and
 * returns prices that prove the result optimal.
 *
 * Problem (docs/algorithms.md section 5): maximise `sum_ij s[i][j] x[i][j]`
 * subject to `sum_j x[i][j] = k` for every token, `sum_i x[i][j] <= C` for
 * every expert, `x in {0, 1}`. Solvers:
 * - `"ssp"` (and `"auto"`): the specialised exact algorithm of
 *   {@linkcode solveBalancedAssignmentSync}, orders of magnitude faster.
 * - `"glpk"`: glpk.js's simplex on the LP relaxation `0 <= x <= 1`.
 * - `"highs"`: HiGHS (npm `highs`) on the same LP.
 *
 * The LP's constraint matrix is the incidence matrix of the bipartite
 * token-expert graph, hence totally unimodular: its vertices are integral,
 * so the simplex optimum is the integer optimum. Whatever the solver, the
 * duality gap is recomputed here from the returned prices (the LP solvers'
 * expert-row duals; token prices re-derived from them), never taken from
 * the solver's own report: `dualityGap <= 1e-9 * |objective|` proves
 * optimality. Asynchronous because glpk.js and HiGHS load WebAssembly on
 * first use.
 *
 * @param scores Scores (tokens x experts, row-major); `-Infinity` masks a pair.
 * @param options `k`; `capacity` or `capacityFactor` (default capacity
 * `ceil(tokens * k / experts)`); `solver` (default `"auto"`).
 * @returns The optimal assignment, loads, objective, prices and duality gap.
 * @throws {TypeError} If `scores` or `options` has the wrong type or shape.
 * @throws {RangeError} If `k > experts`, a score is NaN or `+Infinity`, the
 * capacity is infeasible (`tokens * k > experts * capacity`, or masks leave
 * no feasible assignment) or the solver is unknown.
 *
 * @example The same optimum from the three solvers
 * ```ts
 * import { solveBalancedAssignment } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // Every token prefers expert 0; capacity 2 sends two of them elsewhere.
 * const scores = {
 *   data: new Float32Array([
 *     0.9, 0.5, 0.1,
 *     0.8, 0.1, 0.6,
 *     0.7, 0.2, 0.1,
 *     0.6, 0.5, 0.4,
 *   ]),
 *   tokens: 4,
 *   experts: 3,
 * };
 * for (const solver of ["ssp", "glpk", "highs"] as const) {
 *   const a = await solveBalancedAssignment(scores, { k: 1, solver });
 *   assert.deepEqual([...a.experts], [0, 2, 0, 1]);
 *   assert.deepEqual([...a.loads], [2, 1, 1]);
 *   assert.ok(a.dualityGap <= 1e-9 * Math.abs(a.objective));
 * }
 * ```
 */
export async function solveBalancedAssignment(
  scores: ScoreMatrix,
  options: BalancedAssignmentOptions,
): Promise<BalancedAssignment> {
  const problem = resolveProblem(scores, options);
  if (problem.solver === "ssp") {
    try {
      return solveSsp(problem);
    } finally {
      problem.release();
    }
  }
  const solution = problem.solver === "glpk"
    ? await solveWithGlpk(problem, problem.timeLimit)
    : await solveWithHighs(problem, problem.timeLimit);
  if (solution === null) {
    throw new RangeError(
      `scores mask too many pairs: no assignment gives every token k = ${problem.k} unmasked experts within capacity ${problem.capacity}`,
    );
  }
  const { slots, prices } = readLpSolution(problem, solution, problem.solver);
  return certify(problem, slots, prices, problem.solver);
}
