// Exact coordinate minimisation of the balanced-assignment dual
// (docs/algorithms.md section 5), shared by BIP-Based Balancing (T rounds,
// clipped at 0) and Quantile Balancing (one round, unclipped).
import type { ScoreMatrix } from "../types.ts";
import {
  type RowFilter,
  rowFilter,
  rowTop,
  selectAscending,
} from "../select/mod.ts";

/** Scratch buffers for {@linkcode coordinateRounds}, sized for one batch shape. */
export interface DualScratch {
  /** Token prices `p` (tokens). */
  p: Float64Array;
  /**
   * `s[i][j] - p[i]`, column-major (experts x `stride`), for the column
   * selections. The stride is `tokens + 8`: with a power-of-two stride the
   * strided writes of the transpose all fall in the same cache sets, which
   * made it 15 times slower.
   */
  col: Float64Array;
  /** Column stride of `col`. */
  stride: number;
  /** The `k + 1` largest of one row, and their experts. */
  top: Float64Array;
  topI: Int32Array;
  /** The pre-filter of the row selections, carried from row to row. */
  filter: RowFilter;
  /** Candidates per expert (experts). */
  count: Int32Array;
  /** Candidate lower bound per expert (experts). */
  lower: Float64Array;
  /** Experts whose column is redone in full (experts). */
  redoI: Int32Array;
  /** The column candidates of one row (experts). */
  colI: Int32Array;
}

/** Whether `scratch` is sized for a batch of this shape. */
export function dualScratchFits(
  scratch: DualScratch,
  tokens: number,
  experts: number,
  k: number,
): boolean {
  return scratch.p.length === tokens && scratch.stride === tokens + 8 &&
    scratch.col.length === scratch.stride * experts &&
    scratch.top.length === k + 1 && scratch.count.length === experts;
}

/** Allocates (or reuses, when the shape matches) the scratch for a batch. */
export function dualScratch(
  tokens: number,
  experts: number,
  k: number,
  reuse?: DualScratch,
): DualScratch {
  if (reuse && dualScratchFits(reuse, tokens, experts, k)) return reuse;
  return {
    p: new Float64Array(tokens),
    col: new Float64Array((tokens + 8) * experts),
    stride: tokens + 8,
    top: new Float64Array(k + 1),
    topI: new Int32Array(k + 1),
    filter: rowFilter(experts),
    count: new Int32Array(experts),
    lower: new Float64Array(experts),
    redoI: new Int32Array(experts),
    colI: new Int32Array(experts),
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
 * each followed by `max(0, .)` when `clip` is `true` (the dual of "at most
 * K experts per token": `p, q >= 0`); `"experts"` clips `q` only (the dual
 * of "exactly K": `p` free); `false` clips neither.
 * When `k >= experts` the (K+1)-th largest does not exist and `p = 0`
 * (clipped) ; when `capacity >= tokens` no expert constraint can bind and
 * `q = 0`. Unclipped rounds need `k < experts` and `capacity < tokens`.
 * With `pReady`, the first round takes `scratch.p` as already computed
 * from `q` (a caller that routed the batch by `s - q` found it on the way).
 * Cost `O(rounds * tokens * experts)` (expected, quickselect).
 */
export function coordinateRounds(
  scores: ScoreMatrix,
  k: number,
  capacity: number,
  q: Float64Array,
  rounds: number,
  clip: boolean | "experts",
  scratch: DualScratch,
  bounds?: ColumnBounds,
  pReady = false,
): void {
  const { data, tokens: N, experts: E } = scores;
  const { p, col, top, topI, filter, stride: S } = scratch;
  const { count, lower, redoI, colI } = scratch;
  const clipP = clip === true, clipQ = clip !== false;
  for (let t = 0; t < rounds; t++) {
    const needP = k < E && !(pReady && t === 0);
    if (k >= E) p.fill(0);
    if (capacity >= N) {
      if (needP) tokenPrices(data, N, E, k, q, clipP, p, scratch);
      q.fill(0);
      continue;
    }
    // Column-major copy so each expert's selection runs on a contiguous
    // run; with bounds, only the values at or above the expert's lower
    // bound are kept (the candidates). Each row is copied right after its
    // token price is found, while it is in cache.
    for (let j = 0; j < E; j++) {
      lower[j] = bounds ? bounds.last[j] - bounds.slack[j] : -Infinity;
      if (!(lower[j] > -Infinity)) lower[j] = -Infinity;
      count[j] = 0;
    }
    for (let i = 0; i < N; i++) {
      const base = i * E;
      if (needP) {
        const v = rowTop(data, base, E, q, k + 1, top, topI, filter);
        p[i] = clipP && !(v > 0) ? 0 : v;
      }
      // The row's column candidates first, without a branch (a list
      // written in place), then appended to their columns: the scattered
      // writes are for the few candidates only.
      const pi = p[i];
      let n = 0;
      for (let j = 0; j < E; j++) {
        colI[n] = j;
        n += Number(data[base + j] - pi >= lower[j]);
      }
      for (let r = 0; r < n; r++) {
        const j = colI[r];
        col[j * S + count[j]++] = data[base + j] - pi;
      }
    }
    // Columns with too few candidates (the bound was too high) are redone
    // in full, all in one pass over the rows.
    const rank = capacity + 1;
    let redo = 0;
    for (let j = 0; j < E; j++) if (count[j] < rank) redoI[redo++] = j;
    if (redo > 0) {
      for (let i = 0; i < N; i++) {
        const base = i * E, pi = p[i];
        for (let r = 0; r < redo; r++) {
          const j = redoI[r];
          col[j * S + i] = data[base + j] - pi;
        }
      }
      for (let r = 0; r < redo; r++) count[redoI[r]] = N;
    }
    for (let j = 0; j < E; j++) {
      const lo = j * S;
      // The rank largest values are all at or above the bound.
      const v = selectAscending(col, lo, lo + count[j], count[j] - rank);
      if (bounds) {
        if (count[j] === N) {
          // Bound for next time: down to the (C+1+spare)-th largest,
          // `spare` candidates to spare (spareCandidates). The prefix
          // [lo, lo + N - rank) holds the smaller values after the
          // selection.
          const below = N - rank;
          const r2 = below - spareCandidates(capacity);
          bounds.slack[j] = r2 >= 0
            ? v - selectAscending(col, lo, lo + below, r2)
            : Infinity;
        }
        bounds.last[j] = v;
      }
      q[j] = clipQ && !(v > 0) ? 0 : v;
    }
  }
}

/** The token-price step alone: `p[i] = (k+1)-th largest of s[i][j] - q[j]`. */
function tokenPrices(
  data: Float32Array,
  N: number,
  E: number,
  k: number,
  q: Float64Array,
  clip: boolean,
  p: Float64Array,
  scratch: DualScratch,
): void {
  const { top, topI, filter } = scratch;
  for (let i = 0; i < N; i++) {
    const v = rowTop(data, i * E, E, q, k + 1, top, topI, filter);
    p[i] = clip && !(v > 0) ? 0 : v;
  }
}

// Candidates a column keeps beyond its C+1 largest when its slack is
// measured: a quarter of C (at least one). Speed only: fewer candidates
// are fewer stores and a shorter selection, and a column that falls short
// is redone in full. At DeepSeek-V3's shape (16384 x 256, k = 8, 200
// batches of the V3 preset's workload, BIP and Quantile alternating with
// the other choices in one process) a BIP batch took 0.955 the time of
// C spare (the first choice) with C/2, 0.908 with C/4, 0.878 with C/8;
// of 600 rounds x 256 column selections, 0, 13 and 158 were redone
// (bench/RESULTS.md). The same in dual.c.
const SPARE_DIVISOR = 4;

/** The spare candidates of a column of capacity `capacity`. */
function spareCandidates(capacity: number): number {
  return Math.max(1, Math.floor(capacity / SPARE_DIVISOR));
}

/**
 * Per-layer memory of the column selections: the last `(C+1)`-th largest
 * of each expert and a slack below it. The next round keeps only the values
 * above `last - slack` as candidates (exactness is kept: when fewer than
 * `C+1` pass, the column is redone in full and the slack re-measured).
 * Across batches and rounds the prices move little, so the candidates are
 * about `C + spareCandidates(C)` of `N` values.
 */
export interface ColumnBounds {
  /** Last unclipped `(C+1)`-th largest per expert (experts). */
  last: Float64Array;
  /** Distance below `last` that candidates may lie (experts); `Infinity` at first. */
  slack: Float64Array;
}

/** Fresh bounds for `experts` experts: everything is a candidate. */
export function columnBounds(experts: number): ColumnBounds {
  return {
    last: new Float64Array(experts),
    slack: new Float64Array(experts).fill(Infinity),
  };
}
