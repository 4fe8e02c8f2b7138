// The start and the finish of the shortest-path solver: the top-k routing
// under the starting prices, the dummy units of unused capacity, and the
// final shift of the prices to the dual's normal form.
import type { ExpertGraph } from "./_expert_graph.ts";
import { selectRows } from "./_row_select.ts";

/**
 * Each token's top-k of `s - q`, best first, ties to the lowest expert
 * index, and in `free[i]` the largest value of `s - q` the token leaves out
 * (its (k+1)-th; `-Infinity` when k = E): the assignment of
 * {@linkcode selectRows}.
 */
export function topKSlots(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  q: Float64Array,
  free: Float64Array,
): Int32Array {
  const sel = selectRows(s, tokens, E, k, q);
  free.set(sel.free);
  return sel.slots;
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
