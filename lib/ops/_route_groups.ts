// The group-limited (node-limited, DeepSeek-V3) rows of the route op's CPU
// kernel: the experts split into `groups` equal groups, a group scored by
// the sum of its `perGroup` largest keys, the `topGroups` best groups kept
// (ties to the lowest group), then the top k of the kept groups (ties to
// the lowest expert). Float64 keys, no row copy, no sorting, no
// allocation per token.
//
// Like the ungrouped rows (_route_rows.ts), one branch-free pass collects
// the entries at or above a threshold guessed from the previous rows.
// Every group's top `perGroup` among its candidates is then exact when it
// holds at least `perGroup` candidates; a group with fewer is bounded
// above by its candidates plus the threshold in place of each missing
// value (floating-point addition is monotone, so the bound holds for the
// computed sum too). A bounded group is scanned exactly only when its
// bound reaches the `topGroups`-th best exact score; otherwise it ranks
// strictly below `topGroups` exact groups and cannot be kept. The top k of
// the kept groups are among their candidates when at least k of them are;
// a row where they are not (or where fewer than k entries pass) is routed
// by the reference: the biased row copied, dropped groups set to
// -Infinity, a full top-k scan.
import { insert, rankTop, trackRowValue } from "../select/top.ts";
import { type RowSettings, writeSelection } from "./_route_rows.ts";

/**
 * Scratch of {@linkcode routeGroupedRows}, kept from row to row (and from
 * block to block of one batch): candidates, per-group tops and scores,
 * the reference's row copy, and the running mean and mean deviation of
 * the value the threshold had to stay below (`NaN` before the first row).
 */
export interface GroupState {
  groups: number;
  topGroups: number;
  /** Keys summed into a group's score. */
  perGroup: number;
  candI: Int32Array;
  candV: Float64Array;
  /** Candidates of the kept groups. */
  keptI: Int32Array;
  keptV: Float64Array;
  /** Those of them at or above the second threshold. */
  nearI: Int32Array;
  nearV: Float64Array;
  rankI: Int32Array;
  rankV: Float64Array;
  /** Where each group's candidates end in `candI`. */
  ends: Int32Array;
  /** Candidates counted into each group's top (at most `perGroup`). */
  count: Int32Array;
  /** The `perGroup` largest candidates of each group, descending (groups x perGroup). */
  top: Float64Array;
  /** Group scores: exact, or an upper bound while `exact` is 0. */
  score: Float64Array;
  exact: Uint8Array;
  /** Rank of each exact group (score descending, group ascending). */
  rank: Int32Array;
  keep: Uint8Array;
  /** Scratch of the branch-free group tops. */
  pick: Float64Array;
  /** The reference's biased row. */
  row: Float64Array;
  stats: Float64Array;
  /** The same for the k-th key, behind the second threshold. */
  near: Float64Array;
}

/** A fresh {@linkcode GroupState} for the shape. */
export function groupState(
  experts: number,
  groups: number,
  topGroups: number,
  perGroup: number,
): GroupState {
  return {
    groups,
    topGroups,
    perGroup,
    candI: new Int32Array(experts),
    candV: new Float64Array(experts),
    keptI: new Int32Array(experts),
    keptV: new Float64Array(experts),
    nearI: new Int32Array(experts),
    nearV: new Float64Array(experts),
    rankI: new Int32Array(experts),
    rankV: new Float64Array(experts),
    ends: new Int32Array(groups),
    count: new Int32Array(groups),
    top: new Float64Array(groups * perGroup),
    score: new Float64Array(groups),
    exact: new Uint8Array(groups),
    rank: new Int32Array(groups),
    keep: new Uint8Array(groups),
    pick: new Float64Array(3),
    row: new Float64Array(experts),
    stats: new Float64Array([NaN, 0]),
    near: new Float64Array([NaN, 0]),
  };
}

/** Running mean deviations below the running mean at which the threshold sits. */
const MARGIN = 2;

/** The same for the second threshold, on the k-th key. */
const NEAR_MARGIN = 1;

/** What {@linkcode groupedRow} returns when the row needs the reference. */
const FALLBACK = -2;

/**
 * Routes rows `[from, to)` of `data` (tokens x experts) with groups into
 * `outE`, `outW` (tokens x k) and adds their counts to `loads`; `topV`,
 * `topI` are scratch of length `k`. Returns the flat index of the first
 * NaN or `+Infinity` score met (routing stops there), or -1.
 */
export function routeGroupedRows(
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
  state: GroupState,
): number {
  const bias = s.bias;
  const { candI, ends, stats, groups } = state;
  const size = E / groups;
  for (let i = from; i < to; i++) {
    const base = i * E;
    let c = 0;
    const g = stats[0] - MARGIN * stats[1];
    if (g > -Infinity && !s.multiply) {
      // Branch-free, as in _route_rows.ts; NaN and +Infinity pass. Group
      // q's candidates end at ends[q].
      for (let q = 0, lo = base; q < groups; q++, lo += size) {
        const hi = lo + size;
        if (bias === undefined) {
          for (let x = lo; x < hi; x++) {
            candI[c] = x - base;
            c += Number(!(data[x] < g));
          }
        } else {
          for (let x = lo, j = x - base; x < hi; x++, j++) {
            candI[c] = j;
            c += Number(!(data[x] + bias[j] < g));
          }
        }
        ends[q] = c;
      }
    }
    let bad = c >= k
      ? groupedRow(data, base, E, k, bias, state, g, topV, topI)
      : FALLBACK;
    if (bad === FALLBACK) {
      bad = referenceRow(data, base, E, k, s, state, topV, topI);
    }
    if (bad >= 0) return bad;
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
 * One row from its candidates (keys at or above `g`, or NaN/+Infinity;
 * group q's end at `ends[q]`).
 * Returns -1 when routed (selection in `topV`, `topI`), the flat index of
 * a NaN or `+Infinity` score, or {@linkcode FALLBACK}.
 */
function groupedRow(
  data: Float32Array,
  base: number,
  E: number,
  k: number,
  bias: Float64Array | undefined,
  st: GroupState,
  g: number,
  topV: Float64Array,
  topI: Int32Array,
): number {
  const { candI, candV, ends, top, score, exact, rank } = st;
  const { groups, topGroups } = st;
  const P = st.perGroup;
  const size = E / groups;
  // Keys of the candidates, and each group's P largest among them: the
  // values are those of the reference's insertion whatever the order of
  // equal values. Up to two, kept without a branch: the new pair is read
  // from `pick` at indices computed from the two comparisons.
  let bounded = 0;
  if (P <= 2) {
    const pick = st.pick;
    for (let q = 0, r = 0; q < groups; q++) {
      const end = ends[q], at = q * P;
      const n = Math.min(P, end - r);
      let a = -Infinity, b = -Infinity;
      for (; r < end; r++) {
        const j = candI[r];
        const x = data[base + j];
        if (!(x < Infinity)) return base + j;
        const v = bias === undefined ? x : x + bias[j];
        candV[r] = v;
        // v > a implies v > b: the index is 0 (keep b), 1 (v) or 2 (a).
        const above = Number(v > a), second = Number(v > b);
        pick[0] = b;
        pick[1] = v;
        pick[2] = a;
        b = pick[above + second];
        a = pick[2 - above];
      }
      top[at] = a;
      if (P === 2) top[at + 1] = b;
      // The score as the reference sums it (0 + a + b), or the bound with
      // g for each missing value; no NaN: candidates are finite.
      score[q] = P === 1
        ? (n === 1 ? a : g)
        : n === 2
        ? a + b
        : n === 1
        ? a + g
        : g + g;
      exact[q] = n === P ? 1 : 0;
      bounded += n === P ? 0 : 1;
    }
  } else {
    const bad = groupTops(data, base, bias, st);
    if (bad >= 0) return bad;
    bounded = groupScores(st, g);
  }
  // Rank the exact groups; scan a bounded group exactly while its bound
  // reaches the topGroups-th best exact score, then rank again.
  if (bounded === 0) rankAll(score, rank, groups);
  else {
    for (;;) {
      const cut = rankGroups(score, exact, rank, groups, topGroups);
      if (bounded === 0) break;
      let worst = -1;
      for (let q = 0; q < groups; q++) {
        if (!exact[q] && (worst < 0 || score[q] > score[worst])) worst = q;
      }
      if (score[worst] < cut) break;
      scanGroup(data, base, bias, worst, size, P, st);
      bounded--;
    }
  }
  // The top k among the kept groups' candidates; among those at or above
  // a second, tighter guess (of the k-th key) when at least k are.
  const { keptI, keptV, nearI, nearV, near: nearStats } = st;
  const nearG = nearStats[0] - NEAR_MARGIN * nearStats[1];
  let m = 0, n = 0;
  for (let q = 0; q < groups; q++) {
    if (rank[q] >= topGroups) continue;
    for (let r = q === 0 ? 0 : ends[q - 1]; r < ends[q]; r++) {
      const v = candV[r];
      keptI[m] = nearI[n] = candI[r];
      keptV[m++] = nearV[n] = v;
      n += Number(v >= nearG);
    }
  }
  if (m < k) return FALLBACK;
  if (n >= k) rankTop(nearV, nearI, n, k, st, topV, topI);
  else rankTop(keptV, keptI, m, k, st, topV, topI);
  // The value the threshold had to stay at or below: the k-th key, and
  // the P-th key of every kept group.
  let need = topV[k - 1];
  trackRowValue(nearStats, need);
  for (let q = 0; q < groups; q++) {
    if (rank[q] < topGroups && top[q * P + P - 1] < need) {
      need = top[q * P + P - 1];
    }
  }
  trackRowValue(st.stats, need);
  return -1;
}

/**
 * The keys of the candidates into `candV` and each group's `perGroup`
 * largest among them into `top` by insertion, as the reference's group
 * scan (equal values keep their order); their number into `count`.
 * Returns the flat index of a NaN or `+Infinity` score, or -1.
 */
function groupTops(
  data: Float32Array,
  base: number,
  bias: Float64Array | undefined,
  st: GroupState,
): number {
  const { candI, candV, ends, count, top, groups } = st;
  const P = st.perGroup;
  for (let q = 0, r = 0; q < groups; q++) {
    const end = ends[q], at = q * P;
    let n = 0;
    for (; r < end; r++) {
      const j = candI[r];
      const x = data[base + j];
      if (!(x < Infinity)) return base + j;
      const v = bias === undefined ? x : x + bias[j];
      candV[r] = v;
      let p = n;
      if (n === P) {
        if (!(v > top[at + P - 1])) continue;
        p--;
      } else n++;
      while (p > 0 && v > top[at + p - 1]) {
        top[at + p] = top[at + p - 1];
        p--;
      }
      top[at + p] = v;
    }
    count[q] = n;
  }
  return -1;
}

/** {@linkcode rankGroups} when every group is exact. */
function rankAll(score: Float64Array, rank: Int32Array, groups: number): void {
  for (let q = 0; q < groups; q++) {
    const v = score[q];
    let r = 0;
    for (let p = 0; p < q; p++) r += Number(score[p] >= v);
    for (let p = q + 1; p < groups; p++) r += Number(score[p] > v);
    rank[q] = r;
  }
}

/**
 * Exact scores of the groups with `perGroup` candidates (summed as the
 * reference sums them); an upper bound of the others, each missing value
 * being below `g`. Returns the number of bounded groups.
 */
function groupScores(st: GroupState, g: number): number {
  const { count, top, score, exact, groups } = st;
  const P = st.perGroup;
  let bounded = 0;
  for (let q = 0; q < groups; q++) {
    const at = q * P, n = count[q];
    let sum = 0;
    for (let r = 0; r < P; r++) sum += r < n ? top[at + r] : g;
    exact[q] = n >= P ? 1 : 0;
    bounded += n >= P ? 0 : 1;
    score[q] = sum !== sum ? -Infinity : sum;
  }
  return bounded;
}

/**
 * Ranks the exact groups by (score descending, group ascending) into
 * `rank` without a branch (a bounded group gets rank `groups`); returns
 * the score of rank `topGroups - 1`, or -Infinity when fewer are exact.
 */
function rankGroups(
  score: Float64Array,
  exact: Uint8Array,
  rank: Int32Array,
  groups: number,
  topGroups: number,
): number {
  let cut = -Infinity;
  for (let q = 0; q < groups; q++) {
    const v = score[q];
    let r = 0;
    for (let p = 0; p < q; p++) r += exact[p] & Number(score[p] >= v);
    for (let p = q + 1; p < groups; p++) r += exact[p] & Number(score[p] > v);
    r = exact[q] ? r : groups;
    rank[q] = r;
    if (r === topGroups - 1) cut = v;
  }
  return cut;
}

/**
 * The sum of the `P` largest keys `src[off + j]` (plus `bias[j]`) over
 * `j` in `[from, to)`, ranked by insertion into `top[at, at + P)`; a NaN
 * sum scores `-Infinity`. The one group score of the exact paths.
 */
function topKeySum(
  src: Float32Array | Float64Array,
  off: number,
  bias: Float64Array | undefined,
  from: number,
  to: number,
  P: number,
  top: Float64Array,
  at: number,
): number {
  let n = 0;
  for (let j = from; j < to; j++) {
    const v = bias === undefined ? src[off + j] : src[off + j] + bias[j];
    if (n === P) {
      if (!(v > top[at + P - 1])) continue;
      n--;
    }
    let p = n;
    while (p > 0 && v > top[at + p - 1]) {
      top[at + p] = top[at + p - 1];
      p--;
    }
    top[at + p] = v;
    n++;
  }
  let sum = 0;
  for (let r = 0; r < P; r++) sum += top[at + r];
  return sum !== sum ? -Infinity : sum;
}

/** Scores group `q` exactly from all its keys, as the reference does. */
function scanGroup(
  data: Float32Array,
  base: number,
  bias: Float64Array | undefined,
  q: number,
  size: number,
  P: number,
  st: GroupState,
): void {
  st.score[q] = topKeySum(
    data,
    base,
    bias,
    q * size,
    (q + 1) * size,
    P,
    st.top,
    q * P,
  );
  st.exact[q] = 1;
}

/**
 * The reference for one row: the biased row copied, every group scored,
 * all but the `topGroups` best set to -Infinity, then the top k by
 * insertion over the whole row. Returns the flat index of a NaN or
 * `+Infinity` score, or -1.
 */
function referenceRow(
  data: Float32Array,
  base: number,
  E: number,
  k: number,
  s: RowSettings,
  st: GroupState,
  topV: Float64Array,
  topI: Int32Array,
): number {
  const { row, groups, topGroups, score, keep, top } = st;
  const P = st.perGroup;
  const bias = s.bias;
  for (let j = 0; j < E; j++) {
    const x = data[base + j];
    if (x !== x || x === Infinity) return base + j;
  }
  if (bias !== undefined) {
    if (s.multiply) {
      for (let j = 0; j < E; j++) row[j] = data[base + j] * bias[j];
    } else for (let j = 0; j < E; j++) row[j] = data[base + j] + bias[j];
  } else {
    for (let j = 0; j < E; j++) row[j] = data[base + j];
  }
  const size = E / groups;
  for (let q = 0; q < groups; q++) {
    score[q] = topKeySum(
      row,
      0,
      undefined,
      q * size,
      (q + 1) * size,
      P,
      top,
      q * P,
    );
  }
  keep.fill(0);
  for (let t = 0; t < topGroups; t++) {
    let best = -1;
    for (let q = 0; q < groups; q++) {
      if (!keep[q] && (best < 0 || score[q] > score[best])) best = q;
    }
    keep[best] = 1;
  }
  for (let q = 0; q < groups; q++) {
    if (!keep[q]) row.fill(-Infinity, q * size, (q + 1) * size);
  }
  // Top k by insertion: later entries enter only when strictly larger.
  for (let j = 0; j < k; j++) insert(topV, topI, j, row[j], j);
  let th = topV[k - 1];
  for (let j = k; j < E; j++) {
    if (row[j] > th) th = insert(topV, topI, k - 1, row[j], j);
  }
  let need = th;
  for (let q = 0; q < groups; q++) {
    if (keep[q] && top[q * P + P - 1] < need) need = top[q * P + P - 1];
  }
  if (!s.multiply) {
    trackRowValue(st.near, th);
    trackRowValue(st.stats, need);
  }
  return -1;
}
