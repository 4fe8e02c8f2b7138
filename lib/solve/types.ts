/**
 * Types of the exact balanced assignment: options, solver names, result.
 *
 * @module
 */

/** The exact solvers: `"ssp"` (specialised), `"glpk"` (glpk.js), `"highs"` (HiGHS). */
export type AssignmentSolver = "ssp" | "glpk" | "highs";

/** The solver names accepted by the options, `"auto"` picking `"ssp"`. */
export const ASSIGNMENT_SOLVERS: readonly ("auto" | AssignmentSolver)[] = [
  "auto",
  "ssp",
  "glpk",
  "highs",
];

/** Options of the exact balanced assignment. */
export interface BalancedAssignmentOptions {
  /** Experts per token (`K`), `1 <= k <= experts`. */
  k: number;
  /**
   * Tokens an expert may take (`C`). Default `ceil(tokens * k / experts *
   * capacityFactor)`. Give `capacity` or `capacityFactor`, not both.
   */
  capacity?: number;
  /** Multiplies the balanced load `tokens * k / experts`. Default `1`. */
  capacityFactor?: number;
  /**
   * Which exact solver: `"auto"` (default: `"ssp"`, the fastest), `"ssp"`,
   * `"glpk"` or `"highs"`. The synchronous entry point takes `"auto"` and
   * `"ssp"` only.
   */
  solver?: "auto" | AssignmentSolver;
  /**
   * Starting expert prices for `"ssp"` (`experts` finite entries), for
   * example the optimal prices of the previous batch. Any prices lead to
   * the same optimum; prices near it make the repair short. Default: two
   * price steps on a sample of one token in four (its exact prices when it
   * has few tokens per expert). The LP solvers ignore it.
   */
  expertPrices?: ArrayLike<number>;
  /**
   * Seconds the solve may take, in `[0.001, 2000000]`. Default: no limit.
   * glpk.js gets it as `tmlim`, HiGHS as `time_limit`; `"ssp"` checks it
   * between its shortest-path phases. A solve that reaches it throws an
   * `Error` named `"TimeLimitError"`, never a non-optimal assignment.
   */
  timeLimit?: number;
  /**
   * Where the passes over the scores run: the check of the input (the
   * scoreScan op, every solver) and `"ssp"`'s selections of each token's
   * top-k under the prices (the rowSelect and rowReselect ops): `"wasm"` (default:
   * WebAssembly SIMD where this engine runs it, else TypeScript) or
   * `"cpu"` (TypeScript, the reference). The same answers either way.
   */
  host?: "cpu" | "wasm";
}

/**
 * An optimal balanced assignment with the prices that prove it optimal.
 *
 * Primal: maximise `sum_ij s[i][j] x[i][j]` subject to `sum_j x[i][j] = k`
 * for every token, `sum_i x[i][j] <= C` for every expert, `x in {0, 1}`.
 * Dual (LP relaxation; `p` free because every token takes exactly `k`):
 * minimise `D(p, q) = k * sum_i p[i] + C * sum_j q[j] +
 * sum_ij max(0, s[i][j] - p[i] - q[j])` over `q >= 0`. Weak duality gives
 * `D(p, q) >= objective` for any such prices, so `dualityGap = D(p, q) -
 * objective` (computed here from the prices, never read from a solver)
 * bounds how far the assignment can be from the optimum.
 */
export interface BalancedAssignment {
  /**
   * Selected experts, `Int32Array` (tokens x k), row-major; each token's
   * experts in decreasing score order, ties to the lowest expert index.
   */
  readonly experts: Int32Array;
  /** Tokens per expert, `Int32Array` (experts), each at most `capacity`. */
  readonly loads: Int32Array;
  /** Sum of the selected scores, in float64. */
  readonly objective: number;
  /** Expert prices `q >= 0`, `Float64Array` (experts); `0` where load < capacity. */
  readonly expertPrices: Float64Array;
  /** Token prices `p`, `Float64Array` (tokens): each token's k-th best `s - q`. */
  readonly tokenPrices: Float64Array;
  /** `D(p, q) - objective` from the returned prices: `>= 0`, `0` at the optimum. */
  readonly dualityGap: number;
  /** The solver that produced the assignment. */
  readonly solver: AssignmentSolver;
  /** Experts per token (`k`). */
  readonly k: number;
  /** The capacity `C` used. */
  readonly capacity: number;
}
