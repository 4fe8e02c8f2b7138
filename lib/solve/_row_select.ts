// One pass over the scores under expert prices `q` for the exact solver
// (the rowSelect op, lib/ops/row_select.ts): each token's top-k of s - q
// (ties to the lowest expert), the best value it leaves out, and the other
// experts near its top with their values. The price steps take their
// margins and gaps from these lists and the table of cheapest moves takes
// its targets from them, so neither reads the scores again (at 16384 x 256
// each pass over them is a trip through 16 MiB of memory). After a small
// price step, reselectRows ranks the lists again instead.
import { insert } from "../select/top.ts";
import type { HostBackend } from "../ops/host.ts";
import { hostKernel } from "../ops/host.ts";
import {
  firstEntries,
  grownLists,
  newLists,
  type RowSelection,
  rowSelectOp,
} from "../ops/row_select.ts";
import "../ops/row_select_wasm.ts";

export type { RowSelection };

/** Above this many candidates a row selects by insertion, not by rank. */
const MAX_RANKED = 24;

/**
 * Selects every row of `s` (`tokens x E`) under the prices `q` with the
 * row selection op's kernel on `host` (the same answers on either): see
 * {@linkcode rowSelectOp}.
 */
export function selectRows(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  q: Float64Array,
  host: HostBackend = "wasm",
): RowSelection {
  return hostKernel(rowSelectOp, host).run({
    scores: { data: s, tokens, experts: E },
    k,
    prices: q,
  }, {});
}

/**
 * The selection under new prices `q` from `prev`, the selection of the same
 * scores under `old` (k < E), reading only a few scores. Every expert
 * outside a token's old top-k and list was below `prev.floor[i]` under
 * `old`, so under `q` it is below `prev.floor[i] - (q[j] - old[j])`: the
 * held and listed experts are ranked again from their stored scores, and
 * an unlisted expert's score is read only where that bound reaches a lower
 * bound of the new (k+1)-th value. The top-k, values, scores and `free`
 * are those {@linkcode selectRows} gives under `q`; each list holds every
 * expert at or above its floor, as there.
 */
export function reselectRows(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  prev: RowSelection,
  old: Float64Array,
  q: Float64Array,
): RowSelection {
  const slots = new Int32Array(tokens * k);
  const vals = new Float64Array(tokens * k);
  const held = new Float32Array(tokens * k);
  const free = new Float64Array(tokens);
  const floor = new Float64Array(tokens);
  const start = new Int32Array(tokens + 1);
  let { list, listV, listS } = newLists(prev.start[tokens] + E);
  // Experts by decreasing bound: the largest price cut first.
  const delta = new Float64Array(E);
  let spread = 1;
  for (let j = 0; j < E; j++) {
    delta[j] = q[j] - old[j];
    spread = Math.max(spread, Math.abs(q[j]) + Math.abs(old[j]));
  }
  const byCut = Int32Array.from({ length: E }, (_, j) => j)
    .sort((a, b) => delta[a] - delta[b] || a - b);
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
