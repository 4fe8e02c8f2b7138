// The exact top k among a row's candidates (entries that passed the row
// kernel's guessed threshold, see _route_rows.ts), with as few
// data-dependent branches as possible: on uniform-like scores each one
// mispredicts about half the time, and that, not the arithmetic, is what
// the selection costs.
import { rankTop } from "../select/top.ts";

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
