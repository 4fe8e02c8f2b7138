// The residual graph of the balanced assignment contracted to the experts.
// A token sits between the experts it holds and those it does not, so the
// cheapest residual path from expert a to expert b through one token is the
// cheapest move of a token from a to b: raw cost s[i][a] - s[i][b], and
// `s[i][a] - q[a] - (s[i][b] - q[b])` once reduced by the expert prices.
// The raw cost never depends on the prices, so the E x E table of cheapest
// moves survives every price update and only changes where tokens move.

/** Cheapest token move per expert pair, kept up to date as tokens move. */
export interface ExpertGraph {
  /** Scores, tokens x experts, row-major. */
  readonly s: Float32Array;
  readonly tokens: number;
  readonly experts: number;
  readonly k: number;
  /** `member[i * E + j] = 1` when token i holds expert j. */
  readonly member: Uint8Array;
  /** The k experts of each token, any order (tokens x k). */
  readonly slots: Int32Array;
  /** Tokens held by each expert. */
  readonly loads: Int32Array;
  /** The tokens each expert holds, first `loads[j]` entries, any order. */
  readonly holders: Int32Array[];
  /** `cost[a * E + b]`: cheapest raw move from a to b (`Infinity`: none). */
  readonly cost: Float64Array;
  /** The token that realises `cost` (-1: none). */
  readonly arg: Int32Array;
  /** Pairs whose cheapest token moved away: recomputed when next read. */
  readonly stale: Uint8Array;
}

/**
 * Builds the graph for an assignment given as `slots` (tokens x k). No
 * expert may later hold more than `max(its load now, capacity)` tokens.
 */
export function buildExpertGraph(
  s: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  slots: Int32Array,
  capacity: number,
): ExpertGraph {
  const E = experts;
  const member = new Uint8Array(tokens * E);
  const loads = new Int32Array(E);
  for (let i = 0; i < tokens; i++) {
    for (let r = 0; r < k; r++) {
      const j = slots[i * k + r];
      member[i * E + j] = 1;
      loads[j]++;
    }
  }
  const holders = Array.from(
    { length: E },
    (_, j) => new Int32Array(Math.max(loads[j], capacity)),
  );
  const fill = new Int32Array(E);
  const cost = new Float64Array(E * E).fill(Infinity);
  const arg = new Int32Array(E * E).fill(-1);
  // The row with the token's own experts at -Infinity, so that a pair
  // (a, b) with b already held costs +Infinity and never wins.
  const free = new Float64Array(E);
  for (let i = 0; i < tokens; i++) {
    const row = i * E, base = i * k;
    for (let b = 0; b < E; b++) free[b] = s[row + b];
    for (let r = 0; r < k; r++) {
      const a = slots[base + r];
      free[a] = -Infinity;
      holders[a][fill[a]++] = i;
    }
    for (let r = 0; r < k; r++) {
      const a = slots[base + r];
      const sa = s[row + a], pair = a * E;
      for (let b = 0; b < E; b++) {
        const c = sa - free[b];
        if (c < cost[pair + b]) {
          cost[pair + b] = c;
          arg[pair + b] = i;
        }
      }
    }
  }
  return {
    s,
    tokens,
    experts,
    k,
    member,
    slots: slots.slice(),
    loads,
    holders,
    cost,
    arg,
    stale: new Uint8Array(E * E),
  };
}

/** The cheapest raw move from a to b, recomputing the pair if stale. */
export function moveCost(g: ExpertGraph, a: number, b: number): number {
  const E = g.experts, pair = a * E + b;
  if (g.stale[pair]) {
    const { s, member } = g;
    const held = g.holders[a], n = g.loads[a];
    let best = Infinity, who = -1;
    for (let h = 0; h < n; h++) {
      const i = held[h], row = i * E;
      if (!member[row + b]) {
        const c = s[row + a] - s[row + b];
        if (c < best || (c === best && i < who)) {
          best = c;
          who = i;
        }
      }
    }
    g.cost[pair] = best;
    g.arg[pair] = who;
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
  const { s, member, slots, cost, arg, stale, k } = g;
  const E = g.experts, row = i * E;
  member[row + a] = 0;
  member[row + b] = 1;
  for (let r = i * k; r < (i + 1) * k; r++) {
    if (slots[r] === a) slots[r] = b;
  }
  const from = g.holders[a], n = --g.loads[a];
  let h = 0;
  while (from[h] !== i) h++;
  from[h] = from[n];
  g.holders[b][g.loads[b]++] = i;
  // Pairs that lose token i as a candidate: (a, x) and (x, b).
  for (let x = 0, pair = a * E; x < E; x++, pair++) {
    if (arg[pair] === i) stale[pair] = 1;
  }
  for (let x = 0, pair = b; x < E; x++, pair += E) {
    if (arg[pair] === i) stale[pair] = 1;
  }
  // Pairs that gain it: (b, x) for x not held, (x, a) for x held.
  const sb = s[row + b], sa = s[row + a];
  for (let x = 0; x < E; x++) {
    if (member[row + x]) {
      const pair = x * E + a, c = s[row + x] - sa;
      if (!stale[pair] && c < cost[pair]) {
        cost[pair] = c;
        arg[pair] = i;
      }
    } else {
      const pair = b * E + x, c = sb - s[row + x];
      if (!stale[pair] && c < cost[pair]) {
        cost[pair] = c;
        arg[pair] = i;
      }
    }
  }
}
