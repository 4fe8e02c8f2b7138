// The exact solver's row selection op (lib/solve/_ssp.ts, docs/algorithms.md
// section 5, step 3) and its production CPU kernel: one pass over the
// scores under expert prices `q` giving each token's top-k of s - q (ties
// to the lowest expert), the best value it leaves out, and the other
// experts near its top with their values and scores. The price steps take
// their margins and gaps from these lists and the table of cheapest moves
// takes its targets from them, so neither reads the scores again.
import { checkInteger, checkObject, checkScores, show } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { insert, trackRowValue } from "../select/top.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** Above this many candidates a row selects by insertion, not by rank. */
const MAX_RANKED = 24;

/** The selection of every row, see {@linkcode rowSelectOp}. */
export interface RowSelection {
  /** Each token's top-k experts of `s - q`, best first (tokens x k). */
  slots: Int32Array;
  /** Their values of `s - q` (tokens x k). */
  vals: Float64Array;
  /** Their scores `s` (tokens x k). */
  held: Float32Array;
  /** The largest value a token leaves out (its (k+1)-th; `-Infinity` when k = E). */
  free: Float64Array;
  /**
   * Token i's list holds every expert outside its top-k whose value is at
   * least `floor[i]` (and maybe some below).
   */
  floor: Float64Array;
  /**
   * Token i's list: entries `start[i]` to `start[i + 1]` of `list`,
   * `listV`, `listS`, which hold `start[tokens]` entries.
   */
  start: Int32Array;
  /** Experts outside the top-k near the top of each row. */
  list: Int32Array;
  /** Their values of `s - q`. */
  listV: Float64Array;
  /** Their scores `s`. */
  listS: Float32Array;
}

/** A selection's lists while rows are added (see {@linkcode RowSelection}). */
export interface SelectionLists {
  list: Int32Array;
  listV: Float64Array;
  listS: Float32Array;
}

/** Lists with room for `size` entries. */
export function newLists(size: number): SelectionLists {
  return {
    list: new Int32Array(size),
    listV: new Float64Array(size),
    listS: new Float32Array(size),
  };
}

/**
 * Lists twice the size that `n` entries and `c` more need, holding the
 * first `n` entries of `lists`.
 */
export function grownLists(
  lists: SelectionLists,
  n: number,
  c: number,
): SelectionLists {
  const grown = newLists(2 * (n + c));
  grown.list.set(lists.list.subarray(0, n));
  grown.listV.set(lists.listV.subarray(0, n));
  grown.listS.set(lists.listS.subarray(0, n));
  return grown;
}

/** A selection's per-token arrays for `tokens` tokens of `k` experts. */
function newRows(tokens: number, k: number) {
  return {
    slots: new Int32Array(tokens * k),
    vals: new Float64Array(tokens * k),
    held: new Float32Array(tokens * k),
    free: new Float64Array(tokens),
    floor: new Float64Array(tokens),
    start: new Int32Array(tokens + 1),
  };
}

/** The first `n` entries of `lists` (views, no copy). */
export function firstEntries(
  lists: SelectionLists,
  n: number,
): SelectionLists {
  return {
    list: lists.list.subarray(0, n),
    listV: lists.listV.subarray(0, n),
    listS: lists.listS.subarray(0, n),
  };
}

/** What the row selection op's validator takes. */
export interface RowSelectRequest {
  /** Scores, `tokens x experts`, no NaN or `+Infinity` (`-Infinity` masks a pair). */
  scores: ScoreMatrix;
  /** Experts per token, `1 <= k <= experts`. */
  k: number;
  /** Expert prices `q` (experts), finite. */
  prices: ArrayLike<number>;
}

/** Checked arguments of every row selection kernel. */
export interface RowSelectArgs {
  scores: ScoreMatrix;
  k: number;
  prices: Float64Array;
}

/**
 * The row selection: for every token, its top-k of `s[i][j] - q[j]`
 * (float64, best first, ties to the lowest expert), the largest value it
 * leaves out (`free`), and a list of the other experts at or above
 * `floor[i]`, a guess of its (k+1)-th value: the running mean of the rows
 * before less two mean deviations (lib/select/top.ts trackRowValue), four
 * deviations lower where fewer than k + 1 experts reach it, else the whole
 * row (`floor` `-Infinity`). A list is in rank order (best first) where
 * at most 24 experts reach the guess, else in expert order. Deterministic:
 * the same scores and prices give the same lists.
 *
 * Backends: `"cpu"` (the reference) and `"wasm"` (WebAssembly SIMD, the
 * same answers bit for bit).
 */
export const rowSelectOp = defineOp<
  RowSelectRequest,
  RowSelectArgs,
  RowSelection
>({
  name: "rowSelect",
  summary:
    "each token's top-k of s - q, its (k+1)-th value and the experts near its top",
  validate: checkRowSelect,
});

function checkRowSelect(request: RowSelectRequest): RowSelectArgs {
  checkObject("request", request);
  const scores = checkScores("scores", request.scores);
  const k = checkInteger("k", request.k, 1);
  if (k > scores.experts) {
    throw new RangeError(
      `k must be at most the number of experts (${scores.experts}): current value is ${k}`,
    );
  }
  const q = request.prices;
  if (
    q === null || typeof q !== "object" || typeof q.length !== "number" ||
    q.length !== scores.experts
  ) {
    throw new TypeError(
      `prices must hold one number per expert (${scores.experts}): current value is ${
        show(q)
      }`,
    );
  }
  const prices = Float64Array.from(q);
  for (let j = 0; j < prices.length; j++) {
    if (!Number.isFinite(prices[j])) {
      throw new RangeError(
        `prices must be finite: entry ${j} is ${prices[j]}`,
      );
    }
  }
  return { scores, k, prices };
}

/**
 * The production CPU kernel of {@linkcode rowSelectOp} (the reference). A
 * branch-free pass collects the values at or above the guess and ranks
 * those few.
 */
export function rowSelectCpu(args: RowSelectArgs): RowSelection {
  const { scores: { data: s, tokens, experts: E }, k, prices: q } = args;
  const { slots, vals, held, free, floor, start } = newRows(tokens, k);
  let { list, listV, listS } = newLists(tokens * 8 + E);
  const candV = new Float64Array(E), candI = new Int32Array(E);
  const rankV = new Float64Array(E), rankI = new Int32Array(E);
  const top = Math.min(k + 1, E);
  const topV = new Float64Array(top), topI = new Int32Array(top);
  const mark = new Uint8Array(E);
  const stats = new Float64Array([NaN, 0]);
  let n = 0;
  for (let i = 0; i < tokens; i++) {
    const row = i * E, base = i * k;
    let g = stats[0] - 2 * stats[1];
    if (!(g > -Infinity)) g = -Infinity;
    let c = 0;
    for (let j = 0; j < E; j++) {
      candI[c] = j;
      c += Number(s[row + j] - q[j] >= g);
    }
    if (c < top) {
      // The guess was too high for this row: lower it once, then take all.
      g -= 4 * stats[1] + 1e-300;
      c = 0;
      if (g > -Infinity) {
        for (let j = 0; j < E; j++) {
          candI[c] = j;
          c += Number(s[row + j] - q[j] >= g);
        }
      }
      if (c < top) {
        g = -Infinity;
        for (let j = 0; j < E; j++) candI[j] = j;
        c = E;
      }
    }
    for (let r = 0; r < c; r++) candV[r] = s[row + candI[r]] - q[candI[r]];
    floor[i] = g;
    if (n + c > list.length) {
      ({ list, listV, listS } = grownLists({ list, listV, listS }, n, c));
    }
    if (c <= MAX_RANKED) {
      // Each candidate's rank: larger values, and equal values at lower
      // experts, go ahead (no data-dependent branch).
      for (let r = 0; r < c; r++) {
        const v = candV[r];
        let rank = 0;
        for (let x = 0; x < r; x++) rank += Number(candV[x] >= v);
        for (let x = r + 1; x < c; x++) rank += Number(candV[x] > v);
        rankV[rank] = v;
        rankI[rank] = candI[r];
      }
      for (let r = 0; r < k; r++) {
        slots[base + r] = rankI[r];
        vals[base + r] = rankV[r];
      }
      for (let r = k; r < c; r++, n++) {
        list[n] = rankI[r];
        listV[n] = rankV[r];
        listS[n] = s[row + rankI[r]];
      }
      free[i] = top > k ? rankV[k] : -Infinity;
    } else {
      let th = -Infinity;
      for (let r = 0; r < c; r++) {
        const v = candV[r];
        if (r < top) th = insert(topV, topI, r, v, candI[r]);
        else if (v > th) th = insert(topV, topI, top - 1, v, candI[r]);
      }
      for (let r = 0; r < k; r++) {
        slots[base + r] = topI[r];
        vals[base + r] = topV[r];
        mark[topI[r]] = 1;
      }
      for (let r = 0; r < c; r++) {
        list[n] = candI[r];
        listV[n] = candV[r];
        listS[n] = s[row + candI[r]];
        n += 1 - mark[candI[r]];
      }
      for (let r = 0; r < k; r++) mark[topI[r]] = 0;
      free[i] = top > k ? topV[k] : -Infinity;
    }
    for (let r = base; r < base + k; r++) held[r] = s[row + slots[r]];
    start[i + 1] = n;
    trackRowValue(stats, free[i]);
  }
  const lists = firstEntries({ list, listV, listS }, n);
  return { slots, vals, held, free, floor, start, ...lists };
}

/** What the row reselection op's validator takes. */
export interface RowReselectRequest {
  /** The scores `prev` was selected from. */
  scores: ScoreMatrix;
  /** Experts per token, `1 <= k < experts`. */
  k: number;
  /** The selection of `scores` under `old` (a {@linkcode rowSelectOp} or reselection result). */
  prev: RowSelection;
  /** The prices `prev` was selected under (experts), finite. */
  old: ArrayLike<number>;
  /** The new prices (experts), finite. */
  prices: ArrayLike<number>;
}

/** Checked arguments of every row reselection kernel. */
export interface RowReselectArgs {
  scores: ScoreMatrix;
  k: number;
  prev: RowSelection;
  old: Float64Array;
  prices: Float64Array;
}

/**
 * The selection under new prices `q` from `prev`, the selection of the same
 * scores under `old` (k < E), reading only a few scores. Every expert
 * outside a token's old top-k and list was below `prev.floor[i]` under
 * `old`, so under `q` it is below `prev.floor[i] - (q[j] - old[j])`: the
 * held and listed experts are ranked again from their stored scores, and
 * an unlisted expert's score is read only where that bound reaches a lower
 * bound of the new (k+1)-th value. The top-k, values, scores and `free`
 * are those {@linkcode rowSelectOp} gives under `q`; each list holds every
 * expert at or above its floor, as there.
 *
 * Backends: `"cpu"` (the reference) and `"wasm"` (WebAssembly, the same
 * answers bit for bit).
 */
export const rowReselectOp = defineOp<
  RowReselectRequest,
  RowReselectArgs,
  RowSelection
>({
  name: "rowReselect",
  summary: "the row selection under new prices, from the one under old prices",
  validate: checkRowReselect,
});

function checkRowReselect(request: RowReselectRequest): RowReselectArgs {
  const { scores, k, prices } = checkRowSelect(request);
  if (k >= scores.experts) {
    throw new RangeError(
      `k must be below the number of experts (${scores.experts}) to reselect: current value is ${k}`,
    );
  }
  const old = checkRowSelect({ scores, k, prices: request.old }).prices;
  const prev = checkObject("prev", request.prev);
  const N = scores.tokens, n = prev.start?.[N];
  const shapes: [string, unknown, number][] = [
    ["slots", prev.slots, N * k],
    ["held", prev.held, N * k],
    ["floor", prev.floor, N],
    ["start", prev.start, N + 1],
    ["list", prev.list, n],
    ["listS", prev.listS, n],
  ];
  for (const [name, a, length] of shapes) {
    const arr = a as ArrayLike<number> | undefined;
    if (arr === undefined || arr === null || !(arr.length >= length)) {
      throw new TypeError(
        `prev.${name} must hold ${length} entries for ${N} tokens: current value is ${
          show(a)
        }`,
      );
    }
  }
  return { scores, k, prev, old, prices };
}

/**
 * The price changes of a reselection: `delta[j] = q[j] - old[j]`, the
 * experts by increasing change (the largest cut first, ties by index),
 * and the largest `|q[j]| + |old[j]|` (at least 1), the scale of the
 * floors' rounding tolerance.
 */
export function priceCuts(
  old: Float64Array,
  q: Float64Array,
): { delta: Float64Array; spread: number; byCut: Int32Array } {
  const E = q.length;
  const delta = new Float64Array(E);
  let spread = 1;
  for (let j = 0; j < E; j++) {
    delta[j] = q[j] - old[j];
    spread = Math.max(spread, Math.abs(q[j]) + Math.abs(old[j]));
  }
  const byCut = Int32Array.from({ length: E }, (_, j) => j)
    .sort((a, b) => delta[a] - delta[b] || a - b);
  return { delta, spread, byCut };
}

/**
 * The production CPU kernel of {@linkcode rowReselectOp} (the reference):
 * the held and listed experts ranked again from their stored scores, an
 * unlisted expert's score read only where a price cut could lift it.
 */
export function rowReselectCpu(args: RowReselectArgs): RowSelection {
  const {
    scores: { data: s, tokens, experts: E },
    k,
    prev,
    old,
    prices: q,
  } = args;
  const { slots, vals, held, free, floor, start } = newRows(tokens, k);
  let { list, listV, listS } = newLists(prev.start[tokens] + E);
  // Experts by decreasing bound: the largest price cut first.
  const { delta, spread, byCut } = priceCuts(old, q);
  const candV = new Float64Array(E), candI = new Int32Array(E);
  const candS = new Float32Array(E);
  const rankV = new Float64Array(E), rankI = new Int32Array(E);
  const rankS = new Float32Array(E);
  const byV = new Float64Array(E), byS = new Float32Array(E);
  // `taken[r] === i + 1`: rank r is given in row i.
  const taken = new Int32Array(E);
  const top = k + 1;
  const topV = new Float64Array(top), topI = new Int32Array(top);
  const mark = new Uint8Array(E);
  let n = 0;
  for (let i = 0; i < tokens; i++) {
    const row = i * E, base = i * k;
    let c = 0, low = Infinity, high = -Infinity;
    for (let r = base; r < base + k; r++) {
      const j = prev.slots[r], v = prev.held[r] - q[j];
      candI[c] = j;
      candS[c] = prev.held[r];
      candV[c++] = v;
      if (v < low) low = v;
    }
    for (let x = prev.start[i]; x < prev.start[i + 1]; x++) {
      const j = prev.list[x], v = prev.listS[x] - q[j];
      candI[c] = j;
      candS[c] = prev.listS[x];
      candV[c++] = v;
      if (v > high) high = v;
    }
    // A lower bound of the new (k+1)-th value: the least of k + 1
    // candidates (the held ones and the best listed one).
    const bar = Math.min(low, high);
    const was = prev.floor[i];
    let cap = -Infinity;
    if (was > -Infinity) {
      for (let r = 0; r < c; r++) mark[candI[r]] = 1;
      const tol = 1e-12 * (Math.abs(was) + spread);
      for (let t = 0; t < E; t++) {
        const j = byCut[t];
        if (mark[j]) continue;
        const bound = was - delta[j] + tol;
        if (bound < bar) {
          cap = bound;
          break;
        }
        mark[j] = 1;
        candI[c] = j;
        candS[c] = s[row + j];
        candV[c++] = s[row + j] - q[j];
      }
      for (let r = 0; r < c; r++) mark[candI[r]] = 0;
    }
    if (n + c > list.length) {
      ({ list, listV, listS } = grownLists({ list, listV, listS }, n, c));
    }
    floor[i] = cap;
    let best = -Infinity;
    for (let r = k; r < c; r++) if (candV[r] > best) best = candV[r];
    if (low > best) {
      // Usually the held experts still lead: order them (best first, ties
      // to the lowest expert) and list the others.
      for (let r = 1; r < k; r++) {
        const v = candV[r], j = candI[r], sc = candS[r];
        let at = r;
        while (
          at > 0 &&
          (candV[at - 1] < v || (candV[at - 1] === v && candI[at - 1] > j))
        ) {
          candV[at] = candV[at - 1];
          candI[at] = candI[at - 1];
          candS[at] = candS[at - 1];
          at--;
        }
        candV[at] = v;
        candI[at] = j;
        candS[at] = sc;
      }
      for (let r = 0; r < k; r++) {
        slots[base + r] = candI[r];
        vals[base + r] = candV[r];
        held[base + r] = candS[r];
      }
      free[i] = best;
      for (let r = k; r < c; r++) {
        list[n] = candI[r];
        listV[n] = candV[r];
        listS[n] = candS[r];
        n += Number(candV[r] >= cap);
      }
    } else if (c <= MAX_RANKED) {
      // Ranks: larger values go ahead. Two equal values get the same rank:
      // then, rarely, rank again with equal values at lower experts ahead.
      let tied = 0;
      for (let r = 0; r < c; r++) {
        const v = candV[r];
        let rank = 0;
        for (let x = 0; x < c; x++) rank += Number(candV[x] > v);
        tied |= Number(taken[rank] === i + 1);
        taken[rank] = i + 1;
        rankV[rank] = v;
        rankI[rank] = candI[r];
        rankS[rank] = candS[r];
      }
      for (let r = 0; r < c && tied; r++) {
        const v = candV[r], j = candI[r];
        let rank = 0;
        for (let x = 0; x < c; x++) {
          rank += Number(candV[x] > v) +
            Number(candV[x] === v) * Number(candI[x] < j);
        }
        rankV[rank] = v;
        rankI[rank] = j;
        rankS[rank] = candS[r];
      }
      for (let r = 0; r < k; r++) {
        slots[base + r] = rankI[r];
        vals[base + r] = rankV[r];
        held[base + r] = rankS[r];
      }
      free[i] = rankV[k];
      // The list keeps what lies at or above its floor.
      for (let r = k; r < c; r++) {
        list[n] = rankI[r];
        listV[n] = rankV[r];
        listS[n] = rankS[r];
        n += Number(rankV[r] >= cap);
      }
    } else {
      // Many candidates: insert them in expert order (ties to the lowest).
      for (let r = 0; r < c; r++) {
        const j = candI[r];
        mark[j] = 1;
        byV[j] = candV[r];
        byS[j] = candS[r];
      }
      let th = -Infinity, m = 0;
      for (let j = 0; j < E; j++) {
        if (!mark[j]) continue;
        const v = byV[j];
        if (m < top) th = insert(topV, topI, m++, v, j);
        else if (v > th) th = insert(topV, topI, top - 1, v, j);
      }
      for (let r = 0; r < k; r++) {
        const j = topI[r];
        slots[base + r] = j;
        vals[base + r] = topV[r];
        held[base + r] = byS[j];
        mark[j] = 0;
      }
      free[i] = topV[k];
      for (let r = 0; r < c; r++) {
        const j = candI[r];
        list[n] = j;
        listV[n] = byV[j];
        listS[n] = byS[j];
        n += mark[j] & Number(byV[j] >= cap);
        mark[j] = 0;
      }
    }
    start[i + 1] = n;
  }
  const lists = firstEntries({ list, listV, listS }, n);
  return { slots, vals, held, free, floor, start, ...lists };
}

registerKernel({
  op: rowReselectOp,
  backend: "cpu",
  run: rowReselectCpu,
  callers: ["solveBalancedAssignmentSync()", "exact balancer route()"],
});

registerKernel({
  op: rowSelectOp,
  backend: "cpu",
  run: rowSelectCpu,
  callers: ["solveBalancedAssignmentSync()", "exact balancer route()"],
});
