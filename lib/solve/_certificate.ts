// Turns a solver's assignment and expert prices into the public result and
// computes the duality gap from those prices alone, so that no solver's own
// optimality claim is trusted.
import type { AssignmentSolver, BalancedAssignment } from "./types.ts";
import type { Problem } from "./_problem.ts";
import { hostKernel } from "../ops/host.ts";
import { gapTermsOp } from "../ops/gap_terms.ts";
import "../ops/gap_terms_wasm.ts";

/** Expert prices are refused from here up (the gap terms op's bound). */
const PRICE_LIMIT = 1e280;

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
 * or not below 1e280 (a solver bug, never bad input).
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
    if (!(q[j] >= 0 && q[j] < PRICE_LIMIT)) {
      throw new Error(
        `${solver} returned expert price ${q[j]} for expert ${j}`,
      );
    }
  }
  const loads = new Int32Array(experts);
  const p = new Float64Array(tokens);
  const out = new Int32Array(tokens * k);
  const chosen = new Uint8Array(experts);
  const score = new Float64Array(k);
  let objective = 0;
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
      const v = data[row + j];
      objective += v;
      const x = v - q[j];
      if (x < pi) pi = x;
      // Insertion by decreasing score, ties to the lower index.
      let at = r;
      while (
        at > 0 &&
        (score[at - 1] < v || (score[at - 1] === v && out[base + at - 1] > j))
      ) {
        out[base + at] = out[base + at - 1];
        score[at] = score[at - 1];
        at--;
      }
      out[base + at] = j;
      score[at] = v;
    }
    p[i] = pi;
    for (let r = base; r < base + k; r++) chosen[out[r]] = 0;
  }
  // The unselected pairs' terms, token by token (one pass over the scores).
  const terms = hostKernel(gapTermsOp, problem.host).run({
    scores,
    k,
    slots: out,
    tokenPrices: p,
    expertPrices: q,
  }, {});
  let gap = 0;
  for (let i = 0; i < tokens; i++) gap += terms[i];
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
