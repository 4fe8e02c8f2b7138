// Dual steps on the starting prices, before the exact repair. Any prices
// are a valid start for the shortest-path solver (each token takes its
// top-k of s - q); prices with less excess make the repair short, and the
// repair's phases cost O(E^2) each. One step is an exact Jacobi step on
// every expert at once, as in Quantile Balancing (docs/algorithms.md
// section 7): an expert with `x` tokens too many raises its price by the
// x-th smallest margin of its holders (so that, alone, it would shed
// exactly x), one with `d` too few lowers it by the d-th smallest gap of
// the tokens it lacks (so that, alone, it would gain d). Moved together the
// steps overshoot a little; two or three of them cut the excess of a
// sampled start about tenfold. Margins and gaps come from the row
// selection (_row_select.ts) without reading the scores again; the gaps
// only from the experts listed near each token's top, so a step may fall
// short for an expert few tokens rank near their top (any step is a valid
// start; the repair is exact). After a step that was small (the excess
// before it within 4 times `enough`) the next selection starts from each
// token's stored list instead of its row of scores (see reselectRows).
import { selectAscending } from "../select/order.ts";
import { reselectRows, type RowSelection, selectRows } from "./_row_select.ts";
import type { HostBackend } from "../ops/host.ts";

/** Gaps kept per expert short of tokens: larger deficits take a partial step. */
const GAP_CAP = 48;

/**
 * Runs up to `rounds` steps on `q` (in place), stopping early when the
 * excess of the top-k under `q` is at most `enough` units, and returns
 * the row selection under the final `q` (see {@linkcode selectRows}).
 */
export function priceSteps(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  capacity: number,
  q: Float64Array,
  rounds: number,
  enough: number,
  host: HostBackend = "wasm",
): RowSelection {
  return steps(s, tokens, E, k, capacity, q, rounds, enough, true, host)!;
}

/**
 * Runs `rounds` steps on `q` (in place), fewer when the excess falls to
 * zero, without the selection under the final `q`: prices for a start.
 */
export function stepPrices(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  capacity: number,
  q: Float64Array,
  rounds: number,
  host: HostBackend = "wasm",
): void {
  steps(s, tokens, E, k, capacity, q, rounds, 0, false, host);
}

/** {@linkcode priceSteps}; the final selection only if `last`. */
function steps(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  capacity: number,
  q: Float64Array,
  rounds: number,
  enough: number,
  last: boolean,
  host: HostBackend,
): RowSelection | null {
  const loads = new Int32Array(E);
  // Margins of the holders of each expert with too many tokens.
  const start = new Int32Array(E + 1);
  const fill = new Int32Array(E), bump = new Int32Array(E);
  // The smallest gaps of each expert with too few, sorted, first `count`;
  // `limit[j]`: the largest kept once `want[j]` are (else Infinity).
  const gaps = new Float64Array(E * GAP_CAP);
  const count = new Int32Array(E);
  const want = new Int32Array(E);
  const limit = new Float64Array(E);
  const step = new Float64Array(E);
  const old = new Float64Array(E);
  let sel: RowSelection | undefined;
  let excess = 0;
  for (let round = 0;; round++) {
    // After a small step most tokens keep their experts: select again from
    // the lists; after a large one (a start far off), afresh.
    sel = sel === undefined || k >= E || excess > 4 * enough
      ? selectRows(s, tokens, E, k, q, host)
      : reselectRows(s, tokens, E, k, sel, old, q, host);
    if (round >= rounds || k >= E) return last ? sel : null;
    const { slots, vals, free, list, listV } = sel;
    loads.fill(0);
    for (let x = 0; x < slots.length; x++) loads[slots[x]]++;
    excess = 0;
    for (let j = 0; j < E; j++) {
      if (loads[j] > capacity) excess += loads[j] - capacity;
    }
    if (excess <= enough) return sel;
    // Holders' margins, bucketed by expert (only for experts over).
    start[0] = 0;
    for (let j = 0; j < E; j++) {
      start[j + 1] = start[j] + (loads[j] > capacity ? loads[j] : 0);
    }
    // Without a branch: the holders of an expert not over write to a last
    // slot that is never read.
    const margins = new Float64Array(start[E] + 1);
    for (let j = 0; j < E; j++) {
      const over = loads[j] > capacity;
      fill[j] = over ? start[j] : start[E];
      bump[j] = over ? 1 : 0;
    }
    for (let i = 0; i < tokens; i++) {
      const f = free[i];
      for (let r = i * k; r < i * k + k; r++) {
        const j = slots[r];
        margins[fill[j]] = vals[r] - f;
        fill[j] += bump[j];
      }
    }
    step.fill(0);
    for (let j = 0; j < E; j++) {
      if (loads[j] <= capacity) continue;
      step[j] = selectAscending(
        margins,
        start[j],
        start[j + 1],
        loads[j] - capacity - 1,
      );
    }
    // Gaps p[i] - (s[i][j] - q[j]) > 0 of the tokens an expert lacks, p[i]
    // the token's k-th value, from the listed experts.
    for (let j = 0; j < E; j++) {
      want[j] = loads[j] < capacity
        ? Math.min(GAP_CAP, capacity - loads[j])
        : 0;
      count[j] = 0;
      limit[j] = want[j] > 0 ? Infinity : -Infinity;
    }
    for (let i = 0; i < tokens; i++) {
      const pi = vals[i * k + k - 1];
      for (let x = sel.start[i]; x < sel.start[i + 1]; x++) {
        const j = list[x], g = pi - listV[x];
        if (!(g < limit[j] && g > 0)) continue;
        const base = j * GAP_CAP, n = count[j], w = want[j];
        let at = n < w ? n : n - 1;
        while (at > 0 && gaps[base + at - 1] > g) {
          gaps[base + at] = gaps[base + at - 1];
          at--;
        }
        gaps[base + at] = g;
        if (n < w) count[j] = n + 1;
        if (count[j] === w) limit[j] = gaps[base + w - 1];
      }
    }
    for (let j = 0; j < E; j++) {
      if (count[j] > 0) step[j] = -gaps[j * GAP_CAP + count[j] - 1];
    }
    old.set(q);
    for (let j = 0; j < E; j++) {
      if (Number.isFinite(step[j])) q[j] += step[j];
    }
    if (!last && round + 1 >= rounds) return null;
  }
}
