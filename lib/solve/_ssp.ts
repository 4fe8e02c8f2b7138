// Successive shortest paths on the expert graph (see _expert_graph.ts).
//
// The problem is a transportation problem; unused capacity U = E*C - N*k
// becomes a dummy token that may sit on any expert at score 0, so every
// expert must end with exactly C units (tokens plus dummy units). Start
// from any prices q: every token takes its top-k of s - q and the dummy
// units sit on the cheapest experts, which satisfies reduced-cost
// optimality (every residual move costs >= 0 once reduced by q). Experts
// holding more than C units have excess, those with fewer a deficit. Each
// round runs Dijkstra from all excess experts over the E x E graph of
// cheapest moves, raises the prices of the experts settled before the
// nearest deficit expert (which keeps every reduced cost >= 0 and makes the
// path tight), and moves one unit along that path. When no excess is left
// the assignment and q satisfy complementary slackness: it is optimal.
import {
  buildExpertGraph,
  type ExpertGraph,
  moveCost,
  moveToken,
} from "./_expert_graph.ts";

/** An optimal assignment (`slots`, tokens x k) and expert prices. */
export interface SspResult {
  slots: Int32Array;
  prices: Float64Array;
}

/**
 * Solves the balanced assignment exactly from the starting prices `q`
 * (modified in place). Returns null when masked scores make it infeasible.
 */
export function successiveShortestPaths(
  s: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  capacity: number,
  q: Float64Array,
): SspResult | null {
  const E = experts;
  const g = buildExpertGraph(s, tokens, E, k, topKSlots(s, tokens, E, k, q));
  const dummy = placeDummy(g, capacity, q);
  const dist = new Float64Array(E);
  const pred = new Int32Array(E);
  const viaDummy = new Uint8Array(E);
  const settled = new Uint8Array(E);
  const order = new Int32Array(E);
  const hopToken = new Int32Array(E);
  let excess = 0;
  for (let j = 0; j < E; j++) {
    excess += Math.max(0, g.loads[j] + dummy[j] - capacity);
  }
  while (excess > 0) {
    dist.fill(Infinity);
    settled.fill(0);
    for (let j = 0; j < E; j++) {
      pred[j] = -1;
      if (g.loads[j] + dummy[j] > capacity) dist[j] = 0;
    }
    let target = -1, nSettled = 0;
    for (;;) {
      let a = -1, da = Infinity;
      for (let j = 0; j < E; j++) {
        if (!settled[j] && dist[j] < da) {
          da = dist[j];
          a = j;
        }
      }
      if (a < 0) return null;
      if (g.loads[a] + dummy[a] < capacity) {
        target = a;
        break;
      }
      settled[a] = 1;
      order[nSettled++] = a;
      const qa = q[a];
      for (let b = 0; b < E; b++) {
        if (settled[b] || b === a) continue;
        let raw = moveCost(g, a, b), useDummy = 0;
        if (dummy[a] > 0 && raw >= 0) {
          raw = 0;
          useDummy = 1;
        }
        if (raw === Infinity) continue;
        const w = raw + q[b] - qa;
        const d = da + (w > 0 ? w : 0);
        if (d < dist[b]) {
          dist[b] = d;
          pred[b] = a;
          viaDummy[b] = useDummy;
        }
      }
    }
    const D = dist[target];
    for (let r = 0; r < nSettled; r++) {
      const v = order[r];
      q[v] += D - dist[v];
    }
    // Record the path's tokens before moving any: each move changes the
    // table, but the recorded moves stay valid together (distinct tokens).
    let units = excess, hops = 0;
    for (let b = target; pred[b] >= 0; b = pred[b]) {
      const a = pred[b];
      if (viaDummy[b]) {
        units = Math.min(units, dummy[a]);
        hopToken[hops++] = -1;
      } else {
        units = 1;
        hopToken[hops++] = g.arg[a * E + b];
      }
    }
    let source = target;
    while (pred[source] >= 0) source = pred[source];
    units = Math.min(
      units,
      g.loads[source] + dummy[source] - capacity,
      capacity - g.loads[target] - dummy[target],
    );
    hops = 0;
    for (let b = target; pred[b] >= 0; b = pred[b]) {
      const a = pred[b], i = hopToken[hops++];
      if (i < 0) {
        dummy[a] -= units;
        dummy[b] += units;
      } else moveToken(g, i, a, b);
    }
    excess -= units;
  }
  return { slots: g.slots, prices: shiftPrices(g, dummy, capacity, q) };
}

/** Each token's top-k of `s - q`, ties to the lowest expert index. */
function topKSlots(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  q: Float64Array,
): Int32Array {
  const slots = new Int32Array(tokens * k);
  const val = new Float64Array(k);
  for (let i = 0; i < tokens; i++) {
    const row = i * E, base = i * k;
    let n = 0;
    for (let j = 0; j < E; j++) {
      const v = s[row + j] - q[j];
      if (n === k && !(v > val[k - 1])) continue;
      let at = n < k ? n++ : k - 1;
      while (at > 0 && val[at - 1] < v) {
        val[at] = val[at - 1];
        slots[base + at] = slots[base + at - 1];
        at--;
      }
      val[at] = v;
      slots[base + at] = j;
    }
  }
  return slots;
}

/**
 * Spreads the dummy units over the cheapest experts (the only place where
 * they satisfy reduced-cost optimality): first into their free capacity,
 * the rest onto the first of them.
 */
function placeDummy(
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
function shiftPrices(
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
