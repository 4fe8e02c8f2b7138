// The WebAssembly SIMD twins of coordinateRounds (lib/ops/_dual.ts),
// shared by the "wasm" kernels of the BIP round and the Quantile step, and
// of Quantile's route that keeps a[i] (lib/ops/quantile_step.ts): the
// scores go into the instance's memory a block of rows at a time (a block
// stays in cache while lib/wasm/src/dual.c lists its candidates; several
// rounds copy them once), the column candidates and token prices stay
// there between blocks. The same order statistics of the same float64
// values as the TypeScript kernels: the same prices, bit for bit, the same
// bounds and row filter.
import type { Routing, ScoreMatrix } from "../types.ts";
import { badScore } from "../validate.ts";
import type { WasmRuntime } from "../wasm/runtime.ts";
import type { ColumnBounds, DualScratch } from "./_dual.ts";

/** Bytes of scores copied per block (about what stays in a core's L2). */
const BLOCK_BYTES = 65536;

/**
 * Up to this many bytes of scores, several rounds copy the scores once
 * into the instance's memory and read them there, round after round.
 */
const WHOLE_BYTES = 1 << 26;

/** The row filter's two numbers (lib/select/top.ts): mean, deviation. */
const STATS = 2;

/** The regions one call uses, reserved before any view is taken. */
interface DualRegions {
  block: number;
  p: number;
  q: number;
  lower: number;
  count: number;
  col: number;
  stats: number;
  top: number;
  idx: number;
  last: number;
  slack: number;
  tmp: number;
  thr: number;
  state: number;
}

function reserveRegions(
  rt: WasmRuntime,
  blockRows: number,
  N: number,
  E: number,
  S: number,
  k: number,
): DualRegions {
  return {
    block: rt.reserve("dual.block", blockRows * E * 4),
    p: rt.reserve("dual.p", N * 8),
    q: rt.reserve("dual.q", E * 8),
    lower: rt.reserve("dual.lower", E * 8),
    count: rt.reserve("dual.count", E * 4),
    col: rt.reserve("dual.col", S * E * 8),
    stats: rt.reserve("dual.stats", STATS * 8),
    top: rt.reserve("dual.top", (k + 1) * 8),
    idx: rt.reserve("dual.idx", 2 * (E + 4) * 4),
    last: rt.reserve("dual.last", E * 8),
    slack: rt.reserve("dual.slack", E * 8),
    tmp: rt.reserve("dual.tmp", 2 * N * 8),
    thr: rt.reserve("dual.thr", (3 * E + 4) * 4),
    state: rt.reserve("dual.state", 2 * 8),
  };
}

/**
 * {@linkcode coordinateRounds} (lib/ops/_dual.ts) on the WebAssembly
 * runtime `rt`: the same arguments and results, with the token prices
 * written to `p` (tokens) and the row filter's running guess read from and
 * written back to `stats` (its two numbers), as the TypeScript kernel
 * carries them in its scratch.
 */
export function coordinateRoundsWasm(
  rt: WasmRuntime,
  scores: ScoreMatrix,
  k: number,
  capacity: number,
  q: Float64Array,
  rounds: number,
  clip: boolean | "experts",
  p: Float64Array,
  stats: Float64Array,
  bounds?: ColumnBounds,
  pReady = false,
): void {
  const { data, tokens: N, experts: E } = scores;
  const S = N + 8;
  const blockRows = Math.max(1, Math.floor(BLOCK_BYTES / 4 / E));
  const at = reserveRegions(rt, blockRows, N, E, S, k);
  // Scores in the runtime's memory (a shared heap's) are read in place;
  // else, for several rounds, copied into it once, not once per round (and
  // per full column pass).
  const inPlace = rt.holds(data.buffer);
  const whole = inPlace
    ? data.byteOffset
    : rounds > 1 && N * E * 4 <= WHOLE_BYTES
    ? rt.reserve("dual.scores", N * E * 4)
    : -1;
  const x = rt.exports;
  const rows = x.moelab_dual_rows, redoRows = x.moelab_dual_redo;
  const columns = x.moelab_dual_columns;
  const clipP = clip === true, clipQ = clip !== false;
  const wq = rt.f64(at.q, E), wp = rt.f64(at.p, N);
  const lower = rt.f64(at.lower, E), count = rt.i32(at.count, E);
  const wstats = rt.f64(at.stats, STATS);
  const block = rt.f32(at.block, blockRows * E);
  const redoI = rt.i32(at.idx, E);
  const last = rt.f64(at.last, E), slack = rt.f64(at.slack, E);
  const thresholds = rt.f64(at.state, 2);
  if (whole >= 0 && !inPlace) rt.f32(whole, N * E).set(data);
  /** Where rows `i0 ..` are in the instance's memory: copied, or in place. */
  const rowsAt = (i0: number, n: number): number => {
    if (whole >= 0) return whole + i0 * E * 4;
    block.set(data.subarray(i0 * E, (i0 + n) * E));
    return at.block;
  };
  wq.set(q);
  wstats.set(stats.subarray(0, STATS));
  if (pReady) wp.set(p.subarray(0, N));
  for (let t = 0; t < rounds; t++) {
    const needP = k < E && !(pReady && t === 0);
    if (k >= E) wp.fill(0);
    const cols = capacity < N;
    if (!needP && !cols) {
      wq.fill(0);
      continue;
    }
    for (let j = 0; j < E; j++) {
      lower[j] = bounds ? bounds.last[j] - bounds.slack[j] : -Infinity;
      if (!(lower[j] > -Infinity)) lower[j] = -Infinity;
      count[j] = 0;
    }
    // New prices and bounds: the float32 thresholds are made anew.
    thresholds[0] = NaN;
    thresholds[1] = 0;
    for (let i0 = 0; i0 < N; i0 += blockRows) {
      const n = Math.min(blockRows, N - i0);
      rows(
        rowsAt(i0, n),
        n,
        E,
        k + 1,
        at.q,
        Number(needP),
        Number(clipP),
        at.p + i0 * 8,
        at.stats,
        Number(cols),
        at.lower,
        at.col,
        S,
        at.count,
        at.top,
        at.idx,
        at.thr,
        at.state,
      );
    }
    if (!cols) {
      wq.fill(0);
      continue;
    }
    // Columns with too few candidates are redone in full, in one more
    // pass over the rows (the idx region holds their list).
    const rank = capacity + 1;
    let redo = 0;
    for (let j = 0; j < E; j++) if (count[j] < rank) redoI[redo++] = j;
    if (redo > 0) {
      for (let i0 = 0; i0 < N; i0 += blockRows) {
        const n = Math.min(blockRows, N - i0);
        const rowAt = rowsAt(i0, n);
        redoRows(rowAt, n, E, at.p + i0 * 8, at.idx, redo, at.col, S, i0);
      }
      for (let r = 0; r < redo; r++) count[redoI[r]] = N;
    }
    if (bounds) {
      last.set(bounds.last);
      slack.set(bounds.slack);
    }
    columns(
      at.col,
      S,
      E,
      N,
      capacity,
      at.count,
      Number(bounds !== undefined),
      at.last,
      at.slack,
      at.q,
      Number(clipQ),
      at.tmp,
    );
    if (bounds) {
      bounds.last.set(last);
      bounds.slack.set(slack);
    }
  }
  q.set(wq);
  if (rounds > 0) p.set(wp);
  stats.set(wstats);
}

/** Float64 entries of the route kernel's running state (route.c ST_SIZE). */
const ROUTE_STATE = 8;

/** Where the routing of a batch reads and writes in the instance. */
interface RouteRegions {
  block: number;
  p: number;
  stats: number;
  experts: number;
  weights: number;
  loads: number;
}

/**
 * One block's call: `n` rows at `rows`, their a[i] at `p`; the index in
 * the block of a bad score, or -1.
 */
type RouteBlock = (rows: number, n: number, p: number) => number;

/**
 * The blocks of a batch's routing: `start` with the prices, then one
 * `block` per block of rows. A maker reserves its regions at once and
 * takes views only when called.
 */
type RouteBlocks = (
  rt: WasmRuntime,
  E: number,
  k: number,
  at: RouteRegions,
  normalize: boolean,
) => { start(q: Float64Array): void; block: RouteBlock };

/**
 * Blocks routed by route.c's moelab_route_rows_next (every price finite):
 * the bias `-q` (s - q and s + (-q) are the same float64) in a region of
 * its own, the kernel's state NaN-filled for the batch. Reserves its
 * regions; views come later.
 */
const routeKernelBlocks: RouteBlocks = (rt, E, k, at, normalize) => {
  const x = rt.exports;
  const bias = rt.reserve("dual.route.bias", E * 8);
  const state = rt.reserve("dual.route.state", ROUTE_STATE * 8);
  const scratch = rt.reserve(
    "dual.route.scratch",
    x.moelab_route_scratch_bytes(E, k + 1, 1, 1),
  );
  return {
    start(q) {
      const minus = rt.f64(bias, E);
      for (let j = 0; j < E; j++) minus[j] = -q[j];
      rt.f64(state, ROUTE_STATE).fill(NaN);
    },
    block: (rows, n, p) =>
      x.moelab_route_rows_next(
        rows,
        n,
        E,
        k,
        bias,
        Number(normalize),
        p,
        at.stats,
        at.experts,
        at.weights,
        at.loads,
        state,
        scratch,
      ),
  };
};

/**
 * Blocks routed by dual.c's moelab_dual_route_rows, whose float64 listing
 * takes prices of any value. Reserves its regions; views come later.
 */
const dualRouteBlocks: RouteBlocks = (rt, E, k, at, normalize) => {
  const more = {
    q: rt.reserve("dual.q", E * 8),
    top: rt.reserve("dual.top", (k + 1) * 8),
    topI: rt.reserve("dual.route.topI", (k + 1) * 4),
    cand: rt.reserve("dual.route.cand", E * 8),
    candI: rt.reserve("dual.route.candI", E * 4),
    idx: rt.reserve("dual.idx", (E + 4) * 4),
    thr: rt.reserve("dual.thr", (2 * E + 4) * 4),
    state: rt.reserve("dual.state", 2 * 8),
  };
  return {
    start(q) {
      rt.f64(more.q, E).set(q);
      rt.f64(more.state, 2)[0] = NaN;
    },
    block: (rows, n, p) =>
      rt.exports.moelab_dual_route_rows(
        rows,
        n,
        E,
        k,
        more.q,
        p,
        at.stats,
        at.experts,
        at.weights,
        at.loads,
        Number(normalize),
        more.top,
        more.topI,
        more.cand,
        more.candI,
        more.idx,
        more.thr,
        more.state,
      ),
  };
};

/**
 * {@linkcode routeKeepingNext} (lib/ops/quantile_step.ts) on the
 * WebAssembly runtime `rt`: the same routing (experts, weights, loads) and
 * the same `(k+1)`-th values in `scratch.p`, bit for bit, and the row
 * filter's guess carried in `scratch.filter.stats` as there. Needs
 * `k < experts`. Throws the route op's RangeError on a NaN or `+Infinity`
 * score. With every price finite, the route op's kernel selects the top
 * `k + 1` (route.c moelab_route_rows_next); else dual.c's route.
 */
export function routeKeepingNextWasm(
  rt: WasmRuntime,
  scores: ScoreMatrix,
  k: number,
  q: Float64Array,
  out: Routing,
  scratch: DualScratch,
  normalize: boolean,
): void {
  const { data, tokens: N, experts: E } = scores;
  const blockRows = Math.max(1, Math.floor(BLOCK_BYTES / 4 / E));
  const at: RouteRegions = {
    block: rt.reserve("dual.block", blockRows * E * 4),
    p: rt.reserve("dual.p", N * 8),
    stats: rt.reserve("dual.stats", STATS * 8),
    experts: rt.reserve("dual.route.experts", blockRows * k * 4),
    weights: rt.reserve("dual.route.weights", blockRows * k * 4),
    loads: rt.reserve("dual.route.loads", E * 4),
  };
  const finite = q.subarray(0, E).every(Number.isFinite);
  const blocks = (finite ? routeKernelBlocks : dualRouteBlocks)(
    rt,
    E,
    k,
    at,
    normalize,
  );
  const block = rt.f32(at.block, blockRows * E);
  const wstats = rt.f64(at.stats, STATS), loads = rt.i32(at.loads, E);
  const outE = rt.i32(at.experts, blockRows * k);
  const outW = rt.f32(at.weights, blockRows * k);
  blocks.start(q);
  wstats.set(scratch.filter.stats.subarray(0, STATS));
  loads.fill(0);
  // Scores in the runtime's memory (a shared heap's): read in place.
  const inPlace = rt.holds(data.buffer);
  for (let i0 = 0; i0 < N; i0 += blockRows) {
    const n = Math.min(blockRows, N - i0);
    if (!inPlace) block.set(data.subarray(i0 * E, (i0 + n) * E));
    const bad = blocks.block(
      inPlace ? data.byteOffset + i0 * E * 4 : at.block,
      n,
      at.p + i0 * 8,
    );
    if (bad >= 0) throw badScore("scores", scores, i0 * E + bad);
    out.experts.set(outE.subarray(0, n * k), i0 * k);
    out.weights.set(outW.subarray(0, n * k), i0 * k);
  }
  out.loads.set(loads);
  scratch.p.set(rt.f64(at.p, N));
  scratch.filter.stats.set(wstats);
}
