// Turns a solver's assignment and expert prices into the public result and
// computes the duality gap from those prices alone, so that no solver's own
// optimality claim is trusted.
import type { AssignmentSolver, BalancedAssignment } from "./types.ts";
import type { Problem } from "./_problem.ts";

/**
 * Checks that `slots` (tokens x k expert indices, any order) is feasible,
 * sets the token prices to `p[i] = min over the token's experts of
 * s[i][j] - q[j]` (the best `p` for these `q` and this assignment), and
 * returns the result with its duality gap.
 *
 * The gap `D(p, q) - objective` is evaluated in the equivalent form
 * `sum_j (C - load[j]) q[j] + sum_{selected ij} max(0, p[i] + q[j] - s[i][j])
 * + sum_{unselected ij} max(0, s[i][j] - p[i] - q[j])` (expand `D` and use
 * `sum_j x[i][j] = k`): every term is non-negative, so no cancellation
 * between two large sums hides a violation.
 *
 * @throws {Error} If the assignment breaks a constraint or a price is negative
 * (a solver bug, never bad input).
 */
export function certify(
  problem: Problem,
  slots: Int32Array,
  expertPrices: Float64Array,
  solver: AssignmentSolver,
): BalancedAssignment {
  const { scores, k, capacity } = problem;
  const { data, tokens, experts } = scores;
  const q = expertPrices;
  for (let j = 0; j < experts; j++) {
    if (!(q[j] >= 0) || q[j] === Infinity) {
      throw new Error(
        `${solver} returned expert price ${q[j]} for expert ${j}`,
      );
    }
  }
  const loads = new Int32Array(experts);
  const p = new Float64Array(tokens);
  const out = new Int32Array(tokens * k);
  const chosen = new Uint8Array(experts);
  // 0 at the token's experts, 1 elsewhere: picks the terms left out.
  const left = new Float64Array(experts).fill(1);
  let objective = 0, gap = 0;
  for (let i = 0; i < tokens; i++) {
    const row = i * experts, base = i * k;
    let pi = Infinity;
    for (let r = 0; r < k; r++) {
      const j = slots[base + r];
      if (
        !(j >= 0 && j < experts) || chosen[j] || data[row + j] === -Infinity
      ) {
        throw new Error(`${solver} gave token ${i} an invalid expert ${j}`);
      }
      chosen[j] = 1;
      loads[j]++;
      objective += data[row + j];
      const x = data[row + j] - q[j];
      if (x < pi) pi = x;
      // Insertion by decreasing score, ties to the lower index.
      let at = base + r;
      while (
        at > base &&
        (data[row + out[at - 1]] < data[row + j] ||
          (data[row + out[at - 1]] === data[row + j] && out[at - 1] > j))
      ) {
        out[at] = out[at - 1];
        at--;
      }
      out[at] = j;
    }
    p[i] = pi;
    for (let r = base; r < base + k; r++) left[out[r]] = chosen[out[r]] = 0;
    // Twice max(0, x) as x + |x|, without a branch; a masked pair makes
    // it NaN, and the row is summed again with the mask skipped.
    let twice = 0;
    for (let j = 0; j < experts; j++) {
      const x = data[row + j] - pi - q[j];
      twice += (x + Math.abs(x)) * left[j];
    }
    if (twice !== twice) {
      twice = 0;
      for (let j = 0; j < experts; j++) {
        const x = data[row + j] - pi - q[j];
        if (x > 0) twice += 2 * x * left[j];
      }
    }
    gap += 0.5 * twice;
    for (let r = base; r < base + k; r++) left[out[r]] = 1;
  }
  for (let j = 0; j < experts; j++) {
    if (loads[j] > capacity) {
      throw new Error(
        `${solver} loaded expert ${j} with ${
          loads[j]
        } tokens, over the capacity ${capacity}`,
      );
    }
    gap += (capacity - loads[j]) * q[j];
  }
  return {
    experts: out,
    loads,
    objective,
    expertPrices: q,
    tokenPrices: p,
    dualityGap: gap,
    solver,
    k,
    capacity,
  };
}
