// The balanced assignment as a plain LP for glpk.js and HiGHS. Its
// constraint matrix (token rows, expert rows, one column per pair) is the
// incidence matrix of a bipartite graph, hence totally unimodular: the
// simplex method ends on a vertex, which is integral, so the LP relaxation
// gives the integer optimum without branch and bound.
import type { Problem } from "./_problem.ts";
import type { AssignmentSolver } from "./types.ts";

/**
 * The power of two the LP solvers' objective is multiplied by: it brings
 * the largest unmasked score's magnitude into [1, 2] (1 where every score
 * is 0), so that their absolute tolerances (1e-7 by default) act as
 * relative ones. Multiplying by a power of two is exact, so the optimal
 * assignments are the same; the duals are divided by it.
 */
export function lpScale(problem: Problem): number {
  const { scale } = problem;
  return scale > 0 ? 2 ** -Math.floor(Math.log2(scale)) : 1;
}

/** What an LP solver hands back: column values and the expert-row duals. */
export interface LpSolution {
  /** `x[i * E + j]`, tokens x experts. */
  values: ArrayLike<number>;
  /** Duals of the expert rows `sum_i x[i][j] <= C`, in the solver's sign. */
  expertDuals: ArrayLike<number>;
}

/**
 * Reads an LP solution as tokens x k slots (pairs with `x > 0.5`) and expert
 * prices `q = |dual|` (the solvers differ in sign convention for a
 * maximisation; the certificate then checks the prices, whatever their
 * source).
 *
 * @throws {Error} If a token does not get exactly k experts (a fractional
 * or wrong solution).
 */
export function readLpSolution(
  problem: Problem,
  solution: LpSolution,
  solver: AssignmentSolver,
): { slots: Int32Array; prices: Float64Array } {
  const { tokens, experts } = problem.scores;
  const { k } = problem;
  const slots = new Int32Array(tokens * k);
  for (let i = 0; i < tokens; i++) {
    let n = 0;
    for (let j = 0; j < experts; j++) {
      if (solution.values[i * experts + j] > 0.5) {
        if (n === k) {
          throw new Error(`${solver} gave token ${i} more than ${k} experts`);
        }
        slots[i * k + n++] = j;
      }
    }
    if (n < k) {
      throw new Error(`${solver} gave token ${i} fewer than ${k} experts`);
    }
  }
  const prices = new Float64Array(experts);
  for (let j = 0; j < experts; j++) {
    prices[j] = Math.abs(solution.expertDuals[j]);
  }
  return { slots, prices };
}
