// The residual graph of the balanced assignment contracted to the experts.
// A token sits between the experts it holds and those it does not, so the
// cheapest residual path from expert a to expert b through one token is the
// cheapest move of a token from a to b: raw cost s[i][a] - s[i][b], and
// `s[i][a] - q[a] - (s[i][b] - q[b])` once reduced by the expert prices.
// The raw cost never depends on the prices, so the E x E table of cheapest
// moves survives every price update and only changes where tokens move.
//
// Each pair keeps its two cheapest moves. When the cheapest token moves
// away the second takes its place; when both are gone the pair is marked
// stale and keeps the old second cost, which stays a lower bound of the
// true one (the candidates since then are the old ones less some, plus
// arrivals, and an arrival below the bound is the exact minimum). The
// solver recomputes a stale pair only where the bound is not enough.
import { selectAscending } from "../select/order.ts";
import type { RowSelection } from "./_row_select.ts";

/** Cheapest token move per expert pair, kept up to date as tokens move. */
export interface ExpertGraph {
  /** Scores, tokens x experts, row-major. */
  readonly s: Float32Array;
  readonly tokens: number;
  readonly experts: number;
  readonly k: number;
  /** Words of {@linkcode ExpertGraph.heldBits} per token: `ceil(E / 32)`. */
  readonly words: number;
  /** Bit `j & 31` of word `i * words + (j >>> 5)`: token i holds expert j. */
  readonly heldBits: Int32Array;
  /** The k experts of each token, any order (tokens x k). */
  readonly slots: Int32Array;
  /**
   * `where[i * k + r]`: the place of token i among the holders of expert
   * `slots[i * k + r]` (entry `first[j] + where` of `holders`).
   */
  readonly where: Int32Array;
  /** Tokens held by each expert. */
  readonly loads: Int32Array;
  /** Expert j's holders start at entry `first[j]` of `holders` and `held`. */
  readonly first: Int32Array;
  /** The tokens each expert holds, `loads[j]` entries from `first[j]`, any order. */
  readonly holders: Int32Array;
  /** The score of each entry of `holders` on its expert. */
  readonly held: Float32Array;
  /** `cost[a * E + b]`: cheapest raw move from a to b (`Infinity`: none). */
  readonly cost: Float64Array;
  /** The token that realises `cost` (-1: none). */
  readonly arg: Int32Array;
  /** Pairs whose cheapest token moved away: `cost` is a lower bound. */
  readonly stale: Uint8Array;
  /** The second cheapest move of each pair, exact where `arg2 >= 0`. */
  readonly cost2: Float64Array;
  /** The token that realises `cost2`, or -1 where `cost2` is a lower bound. */
  readonly arg2: Int32Array;
}

/**
 * The share of (token, held expert) pairs whose moves enter the table at
 * the build; the others only bound it (see {@linkcode buildExpertGraph}).
 */
const BUILD_SHARE = 0.15;

/**
 * Builds the graph for the assignment of a row selection under `q` (each
 * token on its top-k of `s - q`, best value left out `free[i]`; see
 * _row_select.ts). No expert may later hold more than `max(its load now,
 * capacity)` tokens.
 *
 * Only tokens near the margin enter the table. Every move of token i from
 * a held a to a free b costs at least `m + q[a] - q[b]`, where the margin
 * `m = s[i][a] - q[a] - free[i]`; so with the pairs of margin below a
 * cut-off `cut` in the table, every pair's cheapest and second cheapest
 * moves are exact up to `cut + q[a] - q[b]`, and that bound stands in for
 * the rest (a stale pair, or an unknown second), which the solver
 * recomputes only if it ever needs them.
 */
export function buildExpertGraph(
  s: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  sel: RowSelection,
  capacity: number,
  q: Float64Array,
): ExpertGraph {
  const { slots, vals, free, floor: listed, start, list, listV, listS } = sel;
  const E = experts, words = (E + 31) >>> 5;
  const heldBits = new Int32Array(tokens * words);
  const loads = new Int32Array(E);
  for (let x = 0; x < tokens * k; x++) loads[slots[x]]++;
  // Room for max(load, capacity) holders per expert, one after another.
  const first = new Int32Array(E + 1);
  for (let j = 0; j < E; j++) {
    first[j + 1] = first[j] + Math.max(loads[j], capacity);
  }
  const holders = new Int32Array(first[E]);
  const held = new Float32Array(first[E]);
  const fill = new Int32Array(E);
  const where = new Int32Array(tokens * k);
  const cost = new Float64Array(E * E).fill(Infinity);
  const arg = new Int32Array(E * E).fill(-1);
  const cost2 = new Float64Array(E * E).fill(Infinity);
  const arg2 = new Int32Array(E * E).fill(-1);
  const cut = marginCut(tokens, k, vals, free);
  // The largest magnitude in the margins, for their rounding error.
  let size = Number.isFinite(cut) ? Math.abs(cut) : 0;
  for (let j = 0; j < E; j++) size = Math.max(size, 2 * Math.abs(q[j]));
  // Experts a token does not hold whose value of s - q is within the cut
  // of its lowest held one: the only targets of its moves below the cut.
  const near = new Int32Array(E);
  const nearS = new Float32Array(E);
  for (let i = 0; i < tokens; i++) {
    const row = i * E, base = i * k, bits = i * words;
    for (let r = 0; r < k; r++) {
      const a = slots[base + r], sa = sel.held[base + r];
      heldBits[bits + (a >>> 5)] |= 1 << (a & 31);
      const h = fill[a]++;
      where[base + r] = h;
      held[first[a] + h] = sa;
      holders[first[a] + h] = i;
      size = Math.max(size, Math.abs(sa));
    }
    if (free[i] > -Infinity) size = Math.max(size, Math.abs(free[i]));
    // The token's lowest held value: the selection is best first.
    const low = vals[base + k - 1];
    if (!(low - free[i] < cut)) continue;
    // A move a -> b below the cut has s[i][b] - q[b] > s[i][a] - q[a] - cut
    // >= low - cut; the margin below covers rounding (extra targets only
    // enter the table above their bound, where the bound replaces them).
    const floor = low - cut - 1e-9 * (Math.abs(low) + Math.abs(cut));
    let m = 0;
    if (floor >= listed[i]) {
      // The selection lists every expert not held above `floor`.
      for (let x = start[i]; x < start[i + 1]; x++) {
        near[m] = list[x];
        nearS[m] = listS[x];
        m += Number(listV[x] > floor);
      }
    } else {
      for (let b = 0; b < E; b++) {
        const mine = (heldBits[bits + (b >>> 5)] >>> (b & 31)) & 1;
        near[m] = b;
        nearS[m] = s[row + b];
        m += Number(s[row + b] - q[b] > floor) & (mine ^ 1);
      }
    }
    for (let r = 0; r < k; r++) {
      if (!(vals[base + r] - free[i] < cut)) continue;
      const a = slots[base + r], sa = sel.held[base + r], pair = a * E;
      for (let t = 0; t < m; t++) {
        const b = near[t], c = sa - nearS[t];
        if (c < cost2[pair + b]) {
          if (c < cost[pair + b]) {
            cost2[pair + b] = cost[pair + b];
            arg2[pair + b] = arg[pair + b];
            cost[pair + b] = c;
            arg[pair + b] = i;
          } else {
            cost2[pair + b] = c;
            arg2[pair + b] = i;
          }
        }
      }
    }
  }
  const stale = new Uint8Array(E * E);
  if (cut < Infinity) {
    // The bound loses a little more than the rounding of the margins: with
    // ties, a token left out can realise it exactly.
    const slack = 1e-12 * size;
    for (let a = 0; a < E; a++) {
      for (let b = 0, pair = a * E; b < E; b++, pair++) {
        const bound = cut + q[a] - q[b] - slack;
        if (cost[pair] > bound) {
          cost[pair] = bound;
          arg[pair] = -1;
          stale[pair] = 1;
        }
        if (cost2[pair] > bound) {
          cost2[pair] = Math.max(bound, cost[pair]);
          arg2[pair] = -1;
        }
      }
    }
  }
  return {
    s,
    tokens,
    experts,
    k,
    words,
    heldBits,
    slots: slots.slice(),
    where,
    loads,
    first,
    holders,
    held,
    cost,
    arg,
    stale,
    cost2,
    arg2,
  };
}

/** Whether token i holds expert j. */
function holds(g: ExpertGraph, i: number, j: number): boolean {
  return ((g.heldBits[i * g.words + (j >>> 5)] >>> (j & 31)) & 1) !== 0;
}

/** The cheapest raw move from a to b, recomputing the pair if stale. */
export function moveCost(g: ExpertGraph, a: number, b: number): number {
  const E = g.experts, pair = a * E + b;
  if (g.stale[pair]) {
    const { s } = g;
    const word = b >>> 5, bit = b & 31;
    const who = g.holders, sa = g.held, from = g.first[a];
    const to = from + g.loads[a];
    let best = Infinity, arg = -1, next = Infinity, arg2 = -1;
    for (let h = from; h < to; h++) {
      const i = who[h], c = sa[h] - s[i * E + b];
      if (c < next) {
        // Token i may hold b too: no move.
        if ((g.heldBits[i * g.words + word] >>> bit) & 1) continue;
        if (c < best) {
          next = best;
          arg2 = arg;
          best = c;
          arg = who[h];
        } else {
          next = c;
          arg2 = who[h];
        }
      }
    }
    g.cost[pair] = best;
    g.arg[pair] = best < Infinity ? arg : -1;
    g.cost2[pair] = next;
    g.arg2[pair] = next < Infinity ? arg2 : -1;
    g.stale[pair] = 0;
  }
  return g.cost[pair];
}

/** Moves token i from expert a to expert b and repairs the table. */
export function moveToken(
  g: ExpertGraph,
  i: number,
  a: number,
  b: number,
): void {
  const { s, heldBits, slots, where, cost2, k } = g;
  const E = g.experts, row = i * E, sa = s[row + a], sb = s[row + b];
  const bits = i * g.words;
  heldBits[bits + (a >>> 5)] &= ~(1 << (a & 31));
  heldBits[bits + (b >>> 5)] |= 1 << (b & 31);
  const r = slotOf(slots, i, k, a);
  slots[r] = b;
  // Token i leaves place h of a's holders; the last holder takes it.
  const { holders, held, first } = g;
  const n = --g.loads[a], h = where[r];
  const last = holders[first[a] + n];
  if (last !== i) {
    holders[first[a] + h] = last;
    held[first[a] + h] = held[first[a] + n];
    where[slotOf(slots, last, k, a)] = h;
  }
  const m = g.loads[b]++;
  where[r] = m;
  held[first[b] + m] = sb;
  holders[first[b] + m] = i;
  // Pairs that lose token i as a candidate: (a, x) and (x, b).
  for (let x = 0, pair = a * E; x < E; x++, pair++) drop(g, pair, i);
  for (let x = 0, pair = b; x < E; x++, pair += E) drop(g, pair, i);
  // Pairs that gain it: (b, x) for x not held, (x, a) for x held.
  for (let x = 0, pair = b * E; x < E; x++, pair++) {
    const c = sb - s[row + x];
    if (c < cost2[pair] && !holds(g, i, x)) gain(g, pair, i, c);
  }
  // (b, a) came with the first loop: a is no longer held.
  for (let t = i * k; t < i * k + k; t++) {
    if (slots[t] === b) continue;
    const pair = slots[t] * E + a, c = s[row + slots[t]] - sa;
    if (c < cost2[pair]) gain(g, pair, i, c);
  }
}

/**
 * Token i is no longer a candidate of the pair: the second cheapest move
 * takes the first place, or the pair turns stale with the second's lower
 * bound (the remaining candidates' minimum is at least the old second).
 */
function drop(g: ExpertGraph, pair: number, i: number): void {
  if (g.arg[pair] === i) {
    g.cost[pair] = g.cost2[pair];
    g.arg[pair] = g.arg2[pair];
    if (g.arg2[pair] < 0) g.stale[pair] = 1;
    g.arg2[pair] = -1;
  } else if (g.arg2[pair] === i) g.arg2[pair] = -1;
}

/**
 * Token i becomes a candidate of the pair at cost `c`, below the second
 * cheapest move or its bound. A cost below a lower bound of all the other
 * candidates is exact, so a stale pair or an unknown second becomes known.
 */
function gain(g: ExpertGraph, pair: number, i: number, c: number): void {
  const { cost, arg, cost2, arg2, stale } = g;
  if (c < cost[pair]) {
    // The old first (or its bound) becomes the second (or its bound).
    cost2[pair] = cost[pair];
    arg2[pair] = stale[pair] ? -1 : arg[pair];
    cost[pair] = c;
    arg[pair] = i;
    stale[pair] = 0;
  } else if (!stale[pair]) {
    cost2[pair] = c;
    arg2[pair] = i;
  }
}

/** The position of expert a among token i's k slots. */
function slotOf(slots: Int32Array, i: number, k: number, a: number): number {
  let r = i * k;
  while (slots[r] !== a) r++;
  return r;
}

/**
 * The margin below which a (token, held expert) pair enters the table: the
 * BUILD_SHARE quantile of the margins of a stride sample of the tokens
 * (`Infinity`, all enter, when it is not finite).
 */
function marginCut(
  tokens: number,
  k: number,
  vals: Float64Array,
  free: Float64Array,
): number {
  const stride = Math.max(1, Math.floor(tokens / 256));
  const m = new Float64Array(Math.ceil(tokens / stride) * k);
  for (let i = 0, x = 0; i < tokens; i += stride) {
    for (let r = 0; r < k; r++) m[x++] = vals[i * k + r] - free[i];
  }
  const cut = selectAscending(
    m,
    0,
    m.length,
    Math.floor(BUILD_SHARE * m.length),
  );
  return Number.isFinite(cut) ? cut : Infinity;
}
