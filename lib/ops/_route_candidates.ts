// The exact top k among a row's candidates (entries that passed the row
// kernel's guessed threshold, see _route_rows.ts), with as few
// data-dependent branches as possible: on uniform-like scores each one
// mispredicts about half the time, and that, not the arithmetic, is what
// the selection costs.
import { insert } from "../select/top.ts";

/** Scratch of {@linkcode selectCandidates}, `experts` entries each. */
export interface CandidateScratch {
  /** Indices of the candidates, ascending (written by the row kernel). */
  candI: Int32Array;
  /** Keys of the candidates. */
  candV: Float64Array;
  /** Candidates at or above the second, tighter threshold. */
  nearI: Int32Array;
  nearV: Float64Array;
  /** Candidates placed at their rank. */
  rankI: Int32Array;
  rankV: Float64Array;
}

/** Allocates a {@linkcode CandidateScratch} for `experts` experts. */
export function candidateScratch(experts: number): CandidateScratch {
  return {
    candI: new Int32Array(experts),
    candV: new Float64Array(experts),
    nearI: new Int32Array(experts),
    nearV: new Float64Array(experts),
    rankI: new Int32Array(experts),
    rankV: new Float64Array(experts),
  };
}

/**
 * Above this many candidates (ties, flat scores) ranking costs more than
 * insertion: its cost grows with the square of the count.
 */
const MAX_RANKED = 24;

/**
 * The exact top k (`topV`, `topI`, best first, ties to the lowest index)
 * among the `c >= k` candidates `sc.candI` of the row at `base`, whose keys
 * (`s + b`, or `s` without a bias) it computes. The candidates at or above
 * `near` are kept apart; when at least k of them are, the top k are among
 * them and only they are ranked. Returns the flat index of the first NaN
 * or `+Infinity` candidate, or -1.
 */
export function selectCandidates(
  data: Float32Array,
  base: number,
  bias: Float64Array | undefined,
  sc: CandidateScratch,
  c: number,
  near: number,
  k: number,
  topV: Float64Array,
  topI: Int32Array,
): number {
  const { candI, candV, nearI, nearV } = sc;
  let n = 0;
  for (let r = 0; r < c; r++) {
    const j = candI[r];
    const x = data[base + j];
    if (!(x < Infinity)) return base + j;
    const v = bias === undefined ? x : x + bias[j];
    candV[r] = v;
    nearV[n] = v;
    nearI[n] = j;
    n += Number(v >= near);
  }
  if (n >= k) rankTop(nearV, nearI, n, k, sc, topV, topI);
  else rankTop(candV, candI, c, k, sc, topV, topI);
  return -1;
}

/**
 * The top k of the `n >= k` entries `keys`, `idx` (indices ascending) into
 * `topV`, `topI`. Each entry's rank is the number of entries ahead of it,
 * counted without a branch; the ranks are a permutation of `0 .. n - 1`.
 * Above `MAX_RANKED` entries, insertion instead.
 */
export function rankTop(
  keys: Float64Array,
  idx: Int32Array,
  n: number,
  k: number,
  sc: Pick<CandidateScratch, "rankI" | "rankV">,
  topV: Float64Array,
  topI: Int32Array,
): void {
  if (n > MAX_RANKED) {
    let th = -Infinity;
    for (let r = 0; r < n; r++) {
      const v = keys[r];
      if (r < k) th = insert(topV, topI, r, v, idx[r]);
      else if (v > th) th = insert(topV, topI, k - 1, v, idx[r]);
    }
    return;
  }
  const { rankI, rankV } = sc;
  for (let r = 0; r < n; r++) {
    const v = keys[r];
    let rank = 0;
    // Ahead of entry r: larger keys, and equal keys at lower indices.
    for (let q = 0; q < r; q++) rank += Number(keys[q] >= v);
    for (let q = r + 1; q < n; q++) rank += Number(keys[q] > v);
    rankV[rank] = v;
    rankI[rank] = idx[r];
  }
  for (let r = 0; r < k; r++) {
    topV[r] = rankV[r];
    topI[r] = rankI[r];
  }
}
