// The top-K inner loop of the route op's CPU kernel (route.ts) without
// groups: keys in float64, top k by (key descending, index ascending), the
// same answers as the grouped path's full scan with one group. A threshold guessed from the previous
// rows keeps most entries out of the selection: the entries that pass it
// are collected without a branch, then the exact top k is taken among
// them (_route_candidates.ts); a row where fewer than k pass is scanned
// in full. No row copy, no allocation per token.
import {
  type CandidateScratch,
  candidateScratch,
  selectCandidates,
} from "./_route_candidates.ts";
import { insert, trackRowValue } from "../select/top.ts";

/** Settings of {@linkcode routeRows}, already validated. */
export interface RowSettings {
  /** Per-expert bias (experts), or `undefined` for none. */
  bias: Float64Array | undefined;
  /** Select on `s * b` instead of `s + b`. */
  multiply: boolean;
  /** Normalise the weights over the selected experts. */
  normalize: boolean;
  /** Factor on the weights. */
  scale: number;
  /** Groups of group-limited routing (1 or absent: off). */
  groups?: number;
  /** Groups kept; all when absent. */
  topGroups?: number;
  /**
   * Top keys of a group summed into its score; absent:
   * `max(1, floor(k / topGroups))`, at most the group size.
   */
  perGroup?: number;
}

/**
 * Makes a router of row ranges of one batch (`data`, tokens x `E`) that
 * routes rows `[from, to)` into `outE`, `outW` (tokens x `k`), adds their
 * counts to `loads` and returns the flat index of the first NaN or
 * `+Infinity` score met, or -1; `undefined` where it cannot route them.
 */
export type RowRouterMaker = (
  data: Float32Array,
  E: number,
  k: number,
  s: RowSettings,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
) => ((from: number, to: number) => number) | undefined;

/**
 * Running state of {@linkcode routeRows} between calls on the same batch:
 * candidate scratch, and a running mean and mean deviation of the rows'
 * k-th largest keys (`NaN` before the first row).
 */
export interface RowState extends CandidateScratch {
  stats: Float64Array;
}

/** A fresh {@linkcode RowState} for `experts` experts. */
export function rowState(experts: number): RowState {
  return { ...candidateScratch(experts), stats: new Float64Array([NaN, 0]) };
}

/**
 * Running mean deviations below the running mean of the k-th largest keys
 * at which the candidate threshold sits: fewer candidates against more
 * rows that fall back to the full scan.
 */
const MARGIN = 3;
/** The same for the second threshold, among the candidates. */
const NEAR_MARGIN = 1;

/**
 * Routes rows `[from, to)` of `data` (tokens x experts) into `outE` and
 * `outW` (tokens x k) and adds their counts to `loads`. `topV`, `topI`
 * are scratch of length `k`; `state` carries the guessed threshold from
 * one block of rows to the next. Returns the flat index of the first NaN
 * or `+Infinity` score met (routing stops there), or -1: the scores need
 * no separate validating pass. With `next` (tokens; `k < E`, `topV` and
 * `topI` of length `k + 1`), the top `k + 1` are selected, the first `k`
 * written as without it, the `(k+1)`-th key into `next[i]`, and the
 * state tracks the `(k+1)`-th keys.
 */
export function routeRows(
  data: Float32Array,
  E: number,
  k: number,
  s: RowSettings,
  from: number,
  to: number,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
  topV: Float64Array,
  topI: Int32Array,
  state: RowState = rowState(E),
  next?: Float64Array,
): number {
  const bias = s.bias;
  // Keys selected a row: k + 1 with `next`.
  const take = next ? k + 1 : k;
  const last = take - 1;
  const { candI, stats } = state;
  // Candidates of one row: entries whose key is not below a guessed
  // threshold `g`, a running mean of the rows' k-th largest keys less
  // MARGIN running mean deviations. When at least k entries pass, the top
  // k are among them and the exact selection runs on the candidates only;
  // otherwise the row is scanned in full. Either way the answer is exact.
  for (let i = from; i < to; i++) {
    const base = i * E;
    let c = 0;
    const g = stats[0] - MARGIN * stats[1];
    if (g > -Infinity && !s.multiply) {
      // Branch-free: every index is written and the count moves by the
      // test's outcome, since a branch on a test that passes at random
      // places would mispredict at each candidate. `!(v < g)` lets NaN
      // through with +Infinity; both are caught among the candidates.
      if (bias === undefined) {
        for (let j = 0; j < E; j++) {
          candI[c] = j;
          c += Number(!(data[base + j] < g));
        }
      } else {
        for (let j = 0; j < E; j++) {
          candI[c] = j;
          c += Number(!(data[base + j] + bias[j] < g));
        }
      }
    }
    const bad = c >= take
      ? selectCandidates(
        data,
        base,
        bias,
        state,
        c,
        stats[0] - NEAR_MARGIN * stats[1],
        take,
        topV,
        topI,
      )
      : scanRow(data, base, E, take, s, topV, topI);
    if (bad >= 0) return bad;
    trackRowValue(stats, topV[last]);
    if (next) next[i] = topV[k];
    writeSelection(
      data,
      base,
      topI,
      k,
      i * k,
      outE,
      outW,
      loads,
      s.normalize,
      s.scale,
    );
  }
  return -1;
}

/**
 * Writes one token's `k` selected experts (`topI`) at `o` in `outE`, their
 * gate weights from the unbiased scores (`-Infinity` as 0; normalised to
 * sum `scale` when `normalize`, else times `scale`) in `outW`, and counts
 * them in `loads`.
 */
export function writeSelection(
  data: Float32Array,
  base: number,
  topI: Int32Array,
  k: number,
  o: number,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
  normalize: boolean,
  scale: number,
): void {
  let sum = 0;
  for (let r = 0; r < k; r++) {
    const j = topI[r];
    const x = data[base + j];
    const w = x > -Infinity ? x : 0;
    outE[o + r] = j;
    outW[o + r] = w;
    sum += w;
    loads[j]++;
  }
  if (normalize && sum > 0) {
    const f = scale / sum;
    for (let r = 0; r < k; r++) outW[o + r] *= f;
  } else if (scale !== 1) {
    for (let r = 0; r < k; r++) outW[o + r] *= scale;
  }
}

/**
 * The full scan of one row (the first k fill the list, then a threshold).
 * Returns the flat index of the row's first NaN or `+Infinity` score, or
 * -1: the one the candidates' path (and the other kernels) report.
 */
function scanRow(
  data: Float32Array,
  base: number,
  E: number,
  k: number,
  s: RowSettings,
  topV: Float64Array,
  topI: Int32Array,
): number {
  const bias = s.bias;
  const last = k - 1;
  for (let j = 0; j < k; j++) {
    const x = data[base + j];
    if (x !== x || x === Infinity) return base + j;
    insert(
      topV,
      topI,
      j,
      bias === undefined ? x : s.multiply ? x * bias[j] : x + bias[j],
      j,
    );
  }
  // One loop per bias mode keeps the scan free of other branches. A NaN
  // key fails `v > th` and is caught by the else branch; a key of
  // +Infinity enters the list and is checked there.
  let th = topV[last];
  if (bias === undefined) {
    for (let j = k; j < E; j++) {
      const v = data[base + j];
      if (v > th) th = insert(topV, topI, last, v, j);
      else if (v !== v) return firstBad(data, base, j);
    }
  } else if (!s.multiply) {
    for (let j = k; j < E; j++) {
      const v = data[base + j] + bias[j];
      if (v > th) th = insert(topV, topI, last, v, j);
      else if (v !== v) return firstBad(data, base, j);
    }
  } else {
    for (let j = k; j < E; j++) {
      const x = data[base + j];
      const v = x * bias[j];
      if (v > th) th = insert(topV, topI, last, v, j);
      else if (x !== x || x === Infinity) return firstBad(data, base, j);
    }
  }
  // A +Infinity enters the list (the lowest index first) unless k of them
  // are in: the first found is the row's first.
  for (let r = 0; r < k; r++) {
    const x = data[base + topI[r]];
    if (x === Infinity) return base + topI[r];
  }
  return -1;
}

/**
 * The flat index of the first NaN or `+Infinity` of the row at `base`, at
 * or before entry `j` (which holds one): a `+Infinity` met before a NaN
 * is in the list, not yet reported.
 */
function firstBad(data: Float32Array, base: number, j: number): number {
  for (let r = 0; r < j; r++) {
    const x = data[base + r];
    if (x !== x || x === Infinity) return base + r;
  }
  return base + j;
}
