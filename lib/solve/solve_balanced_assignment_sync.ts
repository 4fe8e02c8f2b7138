/**
 * The exact balanced assignment, one solve in order: what
 * {@linkcode solveBalancedAssignmentSync} (solver `"ssp"`) does with a
 * batch of scores, from the problem to the certificate. The formulas are
 * those of docs/algorithms.md section 5.
 *
 * **1. The problem.** Scores `s` (`N x E`, row-major, `-Infinity` masks a
 * pair), `k` experts per token and a capacity `C` per expert (default
 * `ceil(N * k / E * capacityFactor)`). Maximise the sum of the selected
 * scores with every token on exactly `k` distinct experts and every expert
 * on at most `C` tokens. The constraint matrix is totally unimodular, so
 * the LP relaxation is integral and its dual,
 * `D(p, q) = k * sum_i p[i] + C * sum_j q[j] + sum_ij max(0, s[i][j] - p[i] - q[j])`
 * over token prices `p` and expert prices `q >= 0`, has the same optimum.
 * Every infeasible case (`N * k > E * C`, a token with fewer than `k`
 * unmasked experts, NaN) is refused before any work.
 *
 * **2. Warm start from a token sample.** Optimal expert prices are
 * quantiles of the score distribution, so those of a sample are close to
 * those of the batch. The solver takes one token in four, starts that
 * sample the same way (recursively), runs two of the price steps below on
 * it at the same capacity per token (no repair: the sample's prices differ
 * from the batch's by its sampling noise anyway; a sample with fewer than
 * 64 token slots per expert is solved exactly instead, as steps leave it
 * far off), and starts from its prices. When the sample would hold fewer
 * than 512 tokens (or fewer than `E`), it starts from `q = 0`. `options.expertPrices` replaces the
 * sample: the previous batch's optimal prices are the closest start in a
 * loop over batches. Any start reaches the same optimum; a good one only
 * makes the repair short. While the excess of step 3 is large (over
 * `8 * N / E` units), up to three exact Jacobi steps on all prices at once
 * cut it (as in Quantile Balancing: an expert `x` tokens over raises its
 * price by the `x`-th smallest margin of its holders, one `d` short lowers
 * it by the `d`-th smallest gap of the tokens it lacks): each costs one
 * more pass over the scores (step 3's, which also lists the experts near
 * each token's top, where the margins and gaps are read) and removes most
 * of a sampled start's excess, whose repair would cost `O(E^2)` per few
 * units.
 *
 * **3. Top-k under the prices.** Each token takes its top-k of
 * `s[i][j] - q[j]` (ties to the lowest expert), found in one branch-free
 * pass per row that keeps the few values above a running guess of the
 * row's (k+1)-th and ranks them; the experts just below the top-k stay
 * listed with their scores (after a small price step the next top-k is
 * ranked from these lists, reading a score only where a price cut could
 * lift an expert not listed). Unused capacity
 * `U = E * C - N * k` becomes a dummy token of score 0 whose units sit on
 * the cheapest experts, so that every expert must end with exactly `C`
 * units. This start satisfies reduced-cost optimality: no single move of
 * a token or a dummy unit gains anything at prices `q`. Experts holding
 * more than `C` units have an excess, those with fewer a deficit.
 *
 * **4. The expert graph of cheapest moves.** Moving token `i` from expert
 * `a` to expert `b` costs `s[i][a] - s[i][b]` (raw), or that plus
 * `q[b] - q[a]` once reduced by the prices. Contracted to the experts,
 * the residual graph has `E` nodes and an edge `a -> b` whose cost is the
 * cheapest such move; the raw costs do not depend on the prices, so the
 * `E x E` table survives every price change and is repaired only where
 * tokens move. Each pair keeps its two cheapest moves; a pair whose
 * candidates are unknown keeps a lower bound of its cost, recomputed only
 * when the bound would matter. The table is built from the tokens nearest
 * the margin and, for each, the experts step 3 listed near its top; the
 * others only bound it. A dummy unit moves at cost 0.
 *
 * **5. Successive shortest paths.** Each phase runs Dijkstra from every
 * excess expert over the reduced costs (dense, `O(E^2)`) until every
 * deficit expert is settled, and lowers each price by its distance: every
 * reduced cost stays `>= 0` and the shortest paths become tight (reduced
 * cost 0). Depth-first searches then move units along tight paths from
 * excess to deficit experts until none is left. A move keeps reduced-cost
 * optimality (its reverse costs 0), so when no excess remains the
 * assignment and `q` satisfy complementary slackness: it is optimal.
 * Finally the prices shift so that every expert with free capacity is at
 * 0 and none is negative.
 *
 * **6. The certificate and the duality gap.** No solver is trusted. The
 * assignment is checked (distinct, unmasked experts, loads within `C`),
 * token prices are set to `p[i] = min over i's experts of s[i][j] - q[j]`,
 * and `dualityGap = D(p, q) - objective` is summed from non-negative terms
 * (`(C - c[j]) * q[j]` per expert, `max(0, s[i][j] - p[i] - q[j])` per
 * pair left out). Weak duality makes it an upper bound on how far the
 * assignment is from the optimum: `dualityGap <= 1e-9 * |objective|`
 * proves it optimal. {@linkcode solveBalancedAssignment} certifies glpk.js
 * and HiGHS answers the same way.
 *
 * Cost: `O(N * E)` for the top-k and the table build, plus `O(E^2)` per
 * shortest-path phase and the table repairs where tokens move; the warm
 * start keeps the phases few. Timings against HiGHS and glpk.js:
 * bench/RESULTS.md (`deno task bench solve`).
 *
 * **Worked example.** Four tokens, three experts, `k = 1`, so
 * `C = ceil(4 / 3) = 2` and `U = 6 - 4 = 2` dummy units:
 *
 * ```text
 *            expert 0  expert 1  expert 2
 * token 0     0.875     0.5       0.25
 * token 1     0.75      0.625     0.125
 * token 2     0.625     0.25      0.5
 * token 3     0.5       0.3125    0.125
 * ```
 *
 * 1. Feasible: `N * k = 4 <= E * C = 6`.
 * 2. The sample (one token) is too small: `q = [0, 0, 0]`.
 * 3. Every token's top-1 is expert 0: loads `[4, 0, 0]`, score 2.75. The
 *    two dummy units go to expert 1 (the first cheapest with room), so
 *    the units are `[4, 2, 0]`: expert 0 has an excess of 2, expert 2 a
 *    deficit of 2.
 * 4. Moves out of expert 0: to expert 1 costs `0.375, 0.125, 0.375,
 *    0.1875` for tokens 0 to 3 (cheapest: token 1, 0.125); to expert 2
 *    costs `0.625, 0.625, 0.125, 0.375` (cheapest: token 2, 0.125). Out
 *    of expert 1, a dummy unit moves at 0.
 * 5. Dijkstra from expert 0: distances `[0, 0.125, 0.125]`, so
 *    `q = [0, -0.125, -0.125]`. Tight paths: expert 0 to 1 (token 1) then
 *    1 to 2 (a dummy unit); then expert 0 to 2 (token 2). No excess is
 *    left: experts `[0, 1, 2, 0]`, loads `[2, 1, 1]`, objective
 *    `0.875 + 0.625 + 0.5 + 0.5 = 2.5`. Shifted so that the experts with
 *    room are at 0: `q = [0.125, 0, 0]`.
 * 6. `p = [0.75, 0.625, 0.5, 0.375]`; `D = 1 * 2.25 + 2 * 0.125 + 0 = 2.5`,
 *    the objective: the gap is 0.
 *
 * By hand, any `q[0]` from 0.125 (tokens 1 and 2 must not prefer expert 0:
 * `0.75 - q[0] <= 0.625`, `0.625 - q[0] <= 0.5`) to 0.1875 (token 3 must
 * keep it: `0.5 - q[0] >= 0.3125`), with `q[1] = q[2] = 0` (room left),
 * proves the same optimum; the example checks the answer against a brute
 * force over all `3^4` assignments.
 *
 * @example A solve of the worked example, checked by brute force and by its own prices
 * ```ts
 * import { route, solveBalancedAssignmentSync } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = [
 *   [0.875, 0.5, 0.25],
 *   [0.75, 0.625, 0.125],
 *   [0.625, 0.25, 0.5],
 *   [0.5, 0.3125, 0.125],
 * ];
 * const scores = { data: new Float32Array(s.flat()), tokens: 4, experts: 3 };
 * const k = 1, capacity = 2;
 *
 * // Brute force: every assignment of one expert per token within capacity.
 * let best = -Infinity, argbest: number[] = [];
 * for (let code = 0; code < 3 ** 4; code++) {
 *   const pick = [0, 1, 2, 3].map((i) => Math.floor(code / 3 ** i) % 3);
 *   const loads = [0, 1, 2].map((j) => pick.filter((e) => e === j).length);
 *   if (loads.some((c) => c > capacity)) continue;
 *   const value = pick.reduce((sum, e, i) => sum + s[i][e], 0);
 *   if (value > best) [best, argbest] = [value, pick];
 * }
 * assert.equal(best, 2.5);
 *
 * // Step 3's start: plain top-1 overloads expert 0.
 * assert.deepEqual([...route(scores, { k }).loads], [4, 0, 0]);
 *
 * const a = solveBalancedAssignmentSync(scores, { k });
 * assert.equal(a.capacity, capacity);
 * assert.deepEqual([...a.experts], argbest);
 * assert.deepEqual([...a.experts], [0, 1, 2, 0]);
 * assert.equal(a.objective, best);
 *
 * // The prices: within the interval found by hand.
 * const q = a.expertPrices;
 * assert.ok(q[0] >= 0.125 && q[0] <= 0.1875);
 * assert.deepEqual([q[1], q[2]], [0, 0]);
 *
 * // The certificate, recomputed from the prices alone: D(p, q) = objective.
 * const p = s.map((row, i) => row[a.experts[i]] - q[a.experts[i]]);
 * let dual = k * p.reduce((x, y) => x + y) + capacity * (q[0] + q[1] + q[2]);
 * for (let i = 0; i < 4; i++) {
 *   for (let j = 0; j < 3; j++) dual += Math.max(0, s[i][j] - p[i] - q[j]);
 * }
 * assert.ok(Math.abs(dual - a.objective) < 1e-12);
 * assert.ok(a.dualityGap <= 1e-9 * a.objective);
 *
 * // Optimal prices as the start: top-1 of s - q is already the optimum.
 * const warm = solveBalancedAssignmentSync(scores, { k, expertPrices: [0.15, 0, 0] });
 * assert.deepEqual([...warm.experts], argbest);
 * ```
 *
 * @module
 */
import type { ScoreMatrix } from "../types.ts";
import { resolveProblem } from "./_problem.ts";
import { solveSsp } from "./_solve_ssp.ts";
import type { BalancedAssignment, BalancedAssignmentOptions } from "./types.ts";

/**
 * Solves the balanced assignment exactly, synchronously, with the
 * specialised solver `"ssp"`: maximise the sum of selected scores with
 * every token on exactly `k` distinct experts and every expert on at most
 * `capacity` tokens, and return prices that prove it optimal.
 *
 * The algorithm (docs/algorithms.md section 5): starting expert prices `q` come
 * from `options.expertPrices` or from price steps on a sample of one
 * token in four (started the same way, recursively); each token takes its
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
  try {
    if (problem.solver !== "ssp") {
      throw new RangeError(
        `options.solver must be "auto" or "ssp" in the synchronous solver: current value is "${problem.solver}"`,
      );
    }
    return solveSsp(problem);
  } finally {
    problem.release();
  }
}
