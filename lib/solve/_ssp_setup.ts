// The start and the finish of the shortest-path solver: the top-k routing
// under the starting prices, the dummy units of unused capacity, and the
// final shift of the prices to the dual's normal form.
import type { ExpertGraph } from "./_expert_graph.ts";
import { insert } from "../route/_route_candidates.ts";

/**
 * Each token's top-k of `s - q`, ties to the lowest expert index, and in
 * `free[i]` the largest value of `s - q` the token leaves out (its
 * (k+1)-th; `-Infinity` when k = E).
 */
export function topKSlots(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  q: Float64Array,
  free: Float64Array,
): Int32Array {
  const slots = new Int32Array(tokens * k);
  // The list holds k + 1 entries: the last is the best one left out.
  const val = new Float64Array(k + 1), idx = new Int32Array(k + 1);
  const candV = new Float64Array(E), candI = new Int32Array(E);
  const fill = Math.min(E, k + 1);
  // Candidates: entries at or above a guess of the row's (k+1)-th value
  // (a running mean of the past rows' less two mean deviations). When at
  // least k + 1 pass, the list is exact from them alone (ties keep the
  // index order); otherwise the row is scanned in full.
  let mean = NaN, dev = 0;
  for (let i = 0; i < tokens; i++) {
    const row = i * E, guess = mean - 2 * dev;
    let c = 0;
    if (guess > -Infinity) {
      for (let j = 0; j < E; j++) {
        const v = s[row + j] - q[j];
        if (v >= guess) {
          candV[c] = v;
          candI[c++] = j;
        }
      }
    }
    val[k] = -Infinity;
    if (c >= fill) {
      for (let r = 0; r < fill; r++) insert(val, idx, r, candV[r], candI[r]);
      let th = val[k];
      for (let r = fill; r < c; r++) {
        if (candV[r] > th) th = insert(val, idx, k, candV[r], candI[r]);
      }
    } else {
      for (let j = 0; j < fill; j++) {
        insert(val, idx, j, s[row + j] - q[j], j);
      }
      let th = val[k];
      for (let j = fill; j < E; j++) {
        const v = s[row + j] - q[j];
        if (v > th) th = insert(val, idx, k, v, j);
      }
    }
    for (let r = 0; r < k; r++) slots[i * k + r] = idx[r];
    const last = val[k];
    free[i] = last;
    if (last > -Infinity) {
      if (mean !== mean) mean = last;
      const d = last - mean;
      mean += d / 16;
      dev += (Math.abs(d) - dev) / 16;
    }
  }
  return slots;
}

/**
 * Spreads the dummy units over the cheapest experts (the only place where
 * they satisfy reduced-cost optimality): first into their free capacity,
 * the rest onto the first of them.
 */
export function placeDummy(
  g: ExpertGraph,
  capacity: number,
  q: Float64Array,
): Float64Array {
  const E = g.experts;
  const dummy = new Float64Array(E);
  let left = E * capacity - g.tokens * g.k, qmin = Infinity, first = -1;
  for (let j = 0; j < E; j++) {
    if (q[j] < qmin) {
      qmin = q[j];
      first = j;
    }
  }
  for (let j = 0; j < E && left > 0; j++) {
    if (q[j] !== qmin) continue;
    const room = Math.min(left, Math.max(0, capacity - g.loads[j]));
    dummy[j] = room;
    left -= room;
  }
  dummy[first] += left;
  return dummy;
}

/**
 * Shifts the prices so that experts with free capacity (those holding
 * dummy units, all at the lowest price) are at 0 and none is negative.
 */
export function shiftPrices(
  g: ExpertGraph,
  dummy: Float64Array,
  capacity: number,
  q: Float64Array,
): Float64Array {
  let base = Infinity;
  for (let j = 0; j < g.experts; j++) {
    if (dummy[j] > 0 || g.loads[j] < capacity) base = Math.min(base, q[j]);
  }
  if (base === Infinity) { for (const v of q) base = Math.min(base, v); }
  const out = new Float64Array(g.experts);
  for (let j = 0; j < g.experts; j++) {
    out[j] = Math.max(0, q[j] - base);
    if (g.loads[j] < capacity) out[j] = 0;
  }
  return out;
}
