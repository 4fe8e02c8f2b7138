// Order statistics of a row (a token over experts): the top `rank` by
// insertion into a descending list, with an optional branch-free
// pre-filter that guesses the row's threshold from the rows before it.
// Shared by the routing kernels, the price-based balancers and the exact
// solver. No allocation inside; callers own the scratch.

/**
 * Inserts `v` (expert `j`) at position `p` or above in the descending list,
 * dropping the entry at `p`; equal values stay ahead. Returns the last
 * entry of the list afterwards.
 */
export function insert(
  topV: Float64Array,
  topI: Int32Array,
  p: number,
  v: number,
  j: number,
): number {
  const last = topV.length - 1;
  while (p > 0 && v > topV[p - 1]) {
    topV[p] = topV[p - 1];
    topI[p] = topI[p - 1];
    p--;
  }
  topV[p] = v;
  topI[p] = j;
  return topV[last];
}

/**
 * Scratch and running guess of {@linkcode rowTop}'s pre-filter, kept from
 * row to row: candidate values and experts, and a running mean and mean
 * deviation of the rows' `rank`-th largest values (`NaN` before the first).
 */
export interface RowFilter {
  candV: Float64Array;
  candI: Int32Array;
  stats: Float64Array;
  /** Candidates placed at their rank, by {@linkcode rankTop}. */
  rankV: Float64Array;
  rankI: Int32Array;
}

/**
 * Adds a row's `rank`-th value `v` to the running mean and mean deviation
 * in `stats` (`[mean, deviation]`, mean `NaN` before the first row), from
 * which the pre-filters of the row selections guess the next row's
 * threshold. Values that are not finite are left out.
 */
export function trackRowValue(stats: Float64Array, v: number): void {
  if (!Number.isFinite(v)) return;
  if (stats[0] !== stats[0]) stats[0] = v;
  const d = v - stats[0];
  stats[0] += d / 16;
  stats[1] += (Math.abs(d) - stats[1]) / 16;
}

/** A fresh {@linkcode RowFilter} for rows of `experts` values. */
export function rowFilter(experts: number): RowFilter {
  return {
    candV: new Float64Array(experts),
    candI: new Int32Array(experts),
    stats: new Float64Array([NaN, 0]),
    rankV: new Float64Array(experts),
    rankI: new Int32Array(experts),
  };
}

/**
 * Above this many entries {@linkcode rankTop} inserts instead of ranking:
 * ranking costs the square of the count.
 */
const MAX_RANKED = 24;

/**
 * The top `k` of the `n >= k` entries `keys`, `idx` (indices ascending)
 * into `topV`, `topI`, ties to the lowest index. Up to `MAX_RANKED`
 * entries, each entry's rank is the number of entries ahead of it,
 * counted without a branch (the ranks are a permutation of `0 .. n - 1`),
 * since a data-dependent branch mispredicts about half the time on
 * uniform-like values; above, insertion.
 */
export function rankTop(
  keys: Float64Array,
  idx: Int32Array,
  n: number,
  k: number,
  scratch: { rankV: Float64Array; rankI: Int32Array },
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
  const { rankI, rankV } = scratch;
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

/**
 * The `rank` largest of `data[base + j] - shift[j]` over `j < experts`,
 * best first, into `topV` (values) and `topI` (experts): insertion, where
 * a later value enters only when strictly larger, so ties keep the lowest
 * expert index. Cost `O(experts * rank)` at worst, usually `O(experts)`:
 * most values fail the first comparison with the current `rank`-th.
 * Returns the `rank`-th largest. Needs `rank <= experts`.
 *
 * With a `filter`, one branch-free pass first collects the values at or
 * above a guess of the row's `rank`-th largest (the running mean of the
 * previous rows' less two mean deviations) and the insertion runs on
 * those alone when at least `rank` pass; the answer is the same.
 */
export function rowTop(
  data: Float32Array,
  base: number,
  experts: number,
  shift: Float64Array,
  rank: number,
  topV: Float64Array,
  topI: Int32Array,
  filter?: RowFilter,
): number {
  if (filter !== undefined) {
    const { candV, candI, stats } = filter;
    const guess = stats[0] - 2 * stats[1];
    let c = 0;
    if (guess > -Infinity) {
      for (let j = 0; j < experts; j++) {
        candI[c] = j;
        c += Number(data[base + j] - shift[j] >= guess);
      }
    }
    // The candidates' values, recomputed: one store per value scanned.
    for (let r = 0; r < c; r++) {
      const j = candI[r];
      candV[r] = data[base + j] - shift[j];
    }
    if (c >= rank) {
      rankTop(candV, candI, c, rank, filter, topV, topI);
    } else fullRow(data, base, experts, shift, rank, topV, topI);
    const v = topV[rank - 1];
    trackRowValue(stats, v);
    return v;
  }
  fullRow(data, base, experts, shift, rank, topV, topI);
  return topV[rank - 1];
}

/** {@linkcode rowTop} without a filter: every value is considered. */
function fullRow(
  data: Float32Array,
  base: number,
  experts: number,
  shift: Float64Array,
  rank: number,
  topV: Float64Array,
  topI: Int32Array,
): void {
  let n = 0;
  for (let j = 0; j < experts; j++) {
    const v = data[base + j] - shift[j];
    if (n < rank) insert(topV, topI, n++, v, j);
    else if (v > topV[rank - 1]) insert(topV, topI, rank - 1, v, j);
  }
}
