// Turns a solver's assignment and expert prices into the public result and
// computes the duality gap from those prices alone, so that no solver's own
// optimality claim is trusted.
import type { AssignmentSolver, BalancedAssignment } from "./types.ts";
import type { Problem } from "./_problem.ts";
import { hostKernel } from "../ops/host.ts";
import {
  certificateRowsOp,
  invalidSlot,
  PRICE_LIMIT,
} from "../ops/certificate_rows.ts";
import "../ops/certificate_rows_wasm.ts";

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
  // The first slot that names no expert, one its token already holds or
  // a masked pair, in slot order (the kernel reads the scores only for
  // slots that name distinct experts).
  const bad = invalidSlot(slots, tokens, experts, k);
  const rows = bad < 0
    ? hostKernel(certificateRowsOp, problem.host).run(
      { scores, k, slots, expertPrices: q },
      {},
    )
    : undefined;
  let first = -1;
  if (rows === undefined) {
    // A masked pair before the first slot naming no expert (or one twice).
    first = maskedSlot(data, slots, experts, k, 0, bad);
    if (first < 0) first = bad;
  } else if (rows.masked >= 0) {
    const i = rows.masked;
    first = maskedSlot(data, slots, experts, k, i * k, (i + 1) * k);
  }
  if (first >= 0) {
    throw new Error(
      `${solver} gave token ${Math.floor(first / k)} an invalid expert ${
        slots[first]
      }`,
    );
  }
  const { loads, objective, terms, tokenPrices: p, experts: out } = rows!;
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

/**
 * The first slot in `[from, end)` (flat indices into `slots`, tokens x k,
 * naming experts) whose pair is masked (a `-Infinity` score), or -1.
 */
function maskedSlot(
  data: Float32Array,
  slots: Int32Array,
  experts: number,
  k: number,
  from: number,
  end: number,
): number {
  for (let x = from; x < end; x++) {
    if (data[Math.floor(x / k) * experts + slots[x]] === -Infinity) return x;
  }
  return -1;
}
