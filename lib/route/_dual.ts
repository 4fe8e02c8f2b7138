// Exact coordinate minimisation of the balanced-assignment dual
// (ALGORITHMS.md section 4), shared by BIP-Based Balancing (T rounds,
// clipped at 0) and Quantile Balancing (one round, unclipped).
import type { ScoreMatrix } from "../types.ts";
import { rowRankLargest, selectAscending } from "./_select.ts";

/** Scratch buffers for {@linkcode coordinateRounds}, sized for one batch shape. */
export interface DualScratch {
  /** Token prices `p` (tokens). */
  p: Float64Array;
  /** `s[i][j] - p[i]`, column-major (experts x tokens), for the column selections. */
  col: Float64Array;
  /** The `k + 1` largest of one row. */
  top: Float64Array;
}

/** Allocates (or reuses, when the shape matches) the scratch for a batch. */
export function dualScratch(
  tokens: number,
  experts: number,
  k: number,
  reuse?: DualScratch,
): DualScratch {
  if (
    reuse && reuse.p.length === tokens &&
    reuse.col.length === tokens * experts && reuse.top.length === k + 1
  ) {
    return reuse;
  }
  return {
    p: new Float64Array(tokens),
    col: new Float64Array(tokens * experts),
    top: new Float64Array(k + 1),
  };
}

/**
 * Runs `rounds` rounds of exact coordinate minimisation of the dual
 * `K * sum_i p[i] + C * sum_j q[j] + sum_ij max(0, s[i][j] - p[i] - q[j])`,
 * updating the expert prices `q` in place (token prices end in
 * `scratch.p`). One round:
 *
 * - `p[i] = (K+1)-th largest of s[i][j] - q[j] over j`;
 * - `q[j] = (C+1)-th largest of s[i][j] - p[i] over i`;
 *
 * each followed by `max(0, .)` when `clip` is set (the dual's `p, q >= 0`).
 * When `k >= experts` the (K+1)-th largest does not exist and `p = 0`
 * (clipped) ; when `capacity >= tokens` no expert constraint can bind and
 * `q = 0`. Unclipped rounds need `k < experts` and `capacity < tokens`.
 * Cost `O(rounds * tokens * experts)` (expected, quickselect).
 */
export function coordinateRounds(
  scores: ScoreMatrix,
  k: number,
  capacity: number,
  q: Float64Array,
  rounds: number,
  clip: boolean,
  scratch: DualScratch,
): void {
  const { data, tokens: N, experts: E } = scores;
  const { p, col, top } = scratch;
  for (let t = 0; t < rounds; t++) {
    if (k >= E) p.fill(0);
    else {
      for (let i = 0; i < N; i++) {
        const v = rowRankLargest(data, i * E, E, q, k + 1, top);
        p[i] = clip && !(v > 0) ? 0 : v;
      }
    }
    if (capacity >= N) {
      q.fill(0);
      continue;
    }
    // Column-major copy so each expert's selection runs on a contiguous run.
    for (let i = 0; i < N; i++) {
      const base = i * E, pi = p[i];
      for (let j = 0, o = i; j < E; j++, o += N) col[o] = data[base + j] - pi;
    }
    const m = N - capacity - 1;
    for (let j = 0; j < E; j++) {
      const v = selectAscending(col, j * N, (j + 1) * N, m);
      q[j] = clip && !(v > 0) ? 0 : v;
    }
  }
}
