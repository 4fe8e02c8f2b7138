// Successive shortest paths on the expert graph (see _expert_graph.ts).
//
// The problem is a transportation problem; unused capacity U = E*C - N*k
// becomes a dummy token that may sit on any expert at score 0, so every
// expert must end with exactly C units (tokens plus dummy units). Start
// from any prices q: every token takes its top-k of s - q and the dummy
// units sit on the cheapest experts, which satisfies reduced-cost
// optimality (every residual move costs >= 0 once reduced by q). Experts
// holding more than C units have excess, those with fewer a deficit.
//
// Each phase runs Dijkstra from all excess experts over the E x E graph of
// cheapest moves and lowers every price by its distance, which keeps every
// reduced cost >= 0 and makes every shortest path tight (reduced cost 0).
// Then depth-first searches move units along tight paths from excess to
// deficit experts until none is left (a move keeps reduced-cost
// optimality: its reverse costs 0). When no excess is left the assignment
// and q satisfy complementary slackness, so it is optimal; the caller
// proves it with the duality gap.
//
// The graph keeps the two cheapest moves of each pair and, where those are
// unknown, a lower bound (see _expert_graph.ts). Dijkstra treats a bound as
// a tentative distance and recomputes the pairs into an expert only when
// that expert is the next to settle and a bound still undercuts its exact
// distance; the searches recompute a pair only when its bound could be
// tight. Both are rare.
import {
  buildExpertGraph,
  type ExpertGraph,
  moveCost,
  moveToken,
} from "./_expert_graph.ts";
import { placeDummy, shiftPrices } from "./_ssp_setup.ts";
import { priceSteps } from "./_price_steps.ts";
import type { HostBackend } from "../ops/host.ts";

/** Dual steps on the starting prices at most (see _price_steps.ts). */
const STEPS = 3;
/**
 * Steps run while the excess exceeds STEP_PAYS * tokens / experts units:
 * a step costs about one pass over the scores (the selection under the new
 * prices), the repair of one unit grows with the experts (O(E^2) phases of
 * a few units each).
 */
const STEP_PAYS = 8;

/** Thrown by {@linkcode successiveShortestPaths} past its deadline. */
export class TimeLimitReached extends Error {}

/** Settings of {@linkcode successiveShortestPaths}. */
export interface SspOptions {
  /** `performance.now()` past which it throws {@linkcode TimeLimitReached}. */
  deadline?: number;
  /** Dual steps on the starting prices at most (default 3). */
  steps?: number;
  /**
   * The largest magnitude of an unmasked score, or a bound above it, for
   * the rounding tolerance (relative to it and to the prices: scores of
   * 1e-40 are solved as exactly as scores of 1); scanned from `s` when
   * absent.
   */
  scale?: number;
  /** Where the row selections run (default `"wasm"`; the same answers). */
  host?: HostBackend;
}

/** An optimal assignment (`slots`, tokens x k) and expert prices. */
export interface SspResult {
  slots: Int32Array;
  prices: Float64Array;
}

/** Scratch of one solve: the graph, dummy units, prices, search state. */
interface State {
  g: ExpertGraph;
  capacity: number;
  dummy: Float64Array;
  q: Float64Array;
  /** Reduced costs up to `tight` count as 0 (rounding of the prices). */
  tight: number;
  dist: Float64Array;
  /** Per open expert: its distance, or a lower bound of it if `pending`. */
  key: Float64Array;
  pending: Uint8Array;
  /** Experts settled in the current Dijkstra, in order. */
  order: Int32Array;
  settled: Uint8Array;
  /** Experts not yet settled in the current Dijkstra, first entries. */
  open: Int32Array;
  /** Per phase: experts from which no tight path reaches a deficit. */
  dead: Uint8Array;
  onPath: Uint8Array;
  path: Int32Array;
  cursor: Int32Array;
  hopToken: Int32Array;
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
  options: SspOptions = {},
): SspResult | null {
  const { deadline, steps = STEPS, host = "wasm" } = options;
  const E = experts;
  const enough = Math.floor(STEP_PAYS * tokens / E);
  const sel = priceSteps(s, tokens, E, k, capacity, q, steps, enough, host);
  const g = buildExpertGraph(s, tokens, E, k, sel, capacity, q);
  let scale = options.scale ?? 0;
  if (options.scale === undefined) {
    for (let i = 0; i < s.length; i++) {
      if (s[i] !== -Infinity) scale = Math.max(scale, Math.abs(s[i]));
    }
  }
  // Reduced costs s - q are rounded at the larger of the scores and the
  // prices (a start may be far from the scores).
  for (let j = 0; j < E; j++) scale = Math.max(scale, Math.abs(q[j]));
  const st: State = {
    g,
    capacity,
    dummy: placeDummy(g, capacity, q),
    q,
    tight: 1e-13 * scale,
    dist: new Float64Array(E),
    key: new Float64Array(E),
    pending: new Uint8Array(E),
    order: new Int32Array(E),
    settled: new Uint8Array(E),
    open: new Int32Array(E),
    dead: new Uint8Array(E),
    onPath: new Uint8Array(E),
    path: new Int32Array(E + 1),
    cursor: new Int32Array(E + 1),
    hopToken: new Int32Array(E),
  };
  let excess = 0;
  for (let j = 0; j < E; j++) excess += Math.max(0, surplus(st, j));
  while (excess > 0) {
    if (deadline !== undefined && performance.now() > deadline) {
      throw new TimeLimitReached();
    }
    if (!lowerPrices(st)) return null;
    st.dead.fill(0);
    for (let a = 0; a < E; a++) {
      while (surplus(st, a) > 0 && !st.dead[a]) {
        const moved = augmentFrom(st, a);
        if (moved === 0) break;
        excess -= moved;
      }
    }
  }
  return { slots: g.slots, prices: shiftPrices(g, st.dummy, capacity, q) };
}

/** Units on expert j beyond the capacity (negative: a deficit). */
function surplus(st: State, j: number): number {
  return st.g.loads[j] + st.dummy[j] - st.capacity;
}

/**
 * Dijkstra from every excess expert (dense, O(E^2)) until every deficit
 * expert is settled, then `q -= dist` (experts not settled by the last
 * distance settled). Stale costs serve as lower bounds: an expert reached
 * through one is pending, and only when it is the next to settle are the
 * stale pairs into it that could still shorten its distance recomputed
 * (lazily, as in A* with a consistent bound). Experts never settled never
 * cost a recompute. Returns false when some deficit expert is unreachable
 * (infeasible masks).
 */
function lowerPrices(st: State): boolean {
  const { dist, key, pending, order, open, q, g, dummy, capacity } = st;
  const { cost, stale, loads } = g;
  const E = g.experts;
  let a = -1, deficits = 0, n = 0, done = 0;
  for (let j = 0; j < E; j++) {
    const over = loads[j] + dummy[j] - capacity;
    dist[j] = key[j] = over > 0 ? 0 : Infinity;
    pending[j] = 0;
    if (over > 0 && a < 0) a = j;
    else open[n++] = j;
    if (over < 0) deficits++;
  }
  let far = 0;
  // Each pass settles `a`, relaxes the row over the experts still open and
  // picks the next `a` in the same loop. Once every deficit expert is
  // settled the rest are left at `far`, which keeps every reduced cost
  // non-negative (an open expert's key, its distance or a lower bound of
  // it, is at least `far`).
  while (a >= 0) {
    const da = dist[a];
    order[done++] = a;
    far = da;
    if (loads[a] + dummy[a] < capacity && --deficits === 0) break;
    // A dummy unit moves at 0: costs, and bounds, at or above 0 are then 0
    // exactly.
    const row = a * E, qa = q[a], cap = dummy[a] > 0 ? 0 : Infinity;
    let at = -1, best = Infinity;
    for (let t = 0; t < n; t++) {
      const b = open[t];
      const stored = cost[row + b];
      const w = (stored < cap ? stored : cap) + q[b] - qa;
      const d = da + (w > 0 ? w : 0);
      if (d < dist[b]) {
        if (stale[row + b] === 1 && stored < cap) {
          if (d < key[b]) {
            key[b] = d;
            pending[b] = 1;
          }
        } else {
          dist[b] = d;
          if (d <= key[b]) {
            key[b] = d;
            pending[b] = 0;
          }
        }
      }
      if (key[b] < best) {
        best = key[b];
        at = t;
      }
    }
    // The next to settle holds a bound: make it exact, then pick again.
    while (at >= 0 && pending[open[at]]) {
      resolve(st, open[at], done);
      at = -1;
      best = Infinity;
      for (let t = 0; t < n; t++) {
        if (key[open[t]] < best) {
          best = key[open[t]];
          at = t;
        }
      }
    }
    if (at < 0) break;
    a = open[at];
    open[at] = open[--n];
  }
  const settled = st.settled;
  settled.fill(0);
  for (let x = 0; x < done; x++) settled[order[x]] = 1;
  for (let j = 0; j < E; j++) q[j] -= settled[j] ? dist[j] : far;
  return deficits === 0;
}

/**
 * Recomputes the stale pairs from the first `done` settled experts into
 * `b` whose bound is below b's exact tentative distance, and makes b's key
 * that distance.
 */
function resolve(st: State, b: number, done: number): void {
  const { dist, key, pending, order, q, g, dummy } = st;
  const { cost, stale } = g;
  const E = g.experts, qb = q[b];
  let db = dist[b];
  for (let x = 0; x < done; x++) {
    const a = order[x], pair = a * E + b;
    if (!stale[pair]) continue;
    const dummyHere = dummy[a] > 0;
    let raw = cost[pair];
    if (dummyHere && raw >= 0) continue;
    let w = raw + qb - q[a];
    if (!(dist[a] + (w > 0 ? w : 0) < db)) continue;
    raw = moveCost(g, a, b);
    if (dummyHere && raw > 0) raw = 0;
    w = raw + qb - q[a];
    const d = dist[a] + (w > 0 ? w : 0);
    if (d < db) db = d;
  }
  dist[b] = key[b] = db;
  pending[b] = 0;
}

/**
 * Finds a tight path from excess expert `source` to a deficit expert by
 * depth-first search and moves units along it. Returns the units moved
 * (0: none found; the experts searched are marked dead for this phase).
 */
function augmentFrom(st: State, source: number): number {
  const { g, dead, onPath, path, cursor, hopToken, dummy, tight, q } = st;
  const { cost, stale } = g;
  const E = g.experts;
  let depth = 0;
  path[0] = source;
  onPath[source] = 1;
  let found = false;
  // Iterative DFS; cursor[d] is the next successor of path[d] to try.
  cursor[0] = 0;
  while (depth >= 0) {
    const a = path[depth];
    let b = cursor[depth];
    const row = a * E, limit = q[a] + tight, dummyHere = dummy[a] > 0;
    for (; b < E; b++) {
      if (dead[b] || onPath[b]) continue;
      let raw = cost[row + b];
      if (dummyHere && raw > 0) raw = 0;
      if (raw + q[b] > limit) continue;
      if (!stale[row + b]) break;
      raw = moveCost(g, a, b);
      if (dummyHere && raw > 0) raw = 0;
      if (raw + q[b] <= limit) break;
    }
    if (b === E) {
      dead[a] = 1;
      onPath[a] = 0;
      depth--;
      if (depth >= 0) cursor[depth]++;
      continue;
    }
    cursor[depth] = b;
    path[++depth] = b;
    onPath[b] = 1;
    cursor[depth] = 0;
    if (surplus(st, b) < 0) {
      found = true;
      break;
    }
  }
  for (let d = 0; d <= Math.max(depth, 0); d++) onPath[path[d]] = 0;
  if (!found) return 0;
  // Record the tokens before moving any: every move edits the table, but
  // the recorded moves (distinct tokens, a simple path) stay valid together.
  let units = Math.min(surplus(st, source), -surplus(st, path[depth]));
  for (let h = 0; h < depth; h++) {
    const a = path[h], b = path[h + 1];
    const raw = moveCost(g, a, b);
    if (dummy[a] > 0 && raw >= 0) {
      hopToken[h] = -1;
      units = Math.min(units, dummy[a]);
    } else {
      hopToken[h] = g.arg[a * E + b];
      units = 1;
    }
  }
  for (let h = depth - 1; h >= 0; h--) {
    const a = path[h], b = path[h + 1], i = hopToken[h];
    if (i < 0) {
      dummy[a] -= units;
      dummy[b] += units;
    } else moveToken(g, i, a, b);
  }
  return units;
}
