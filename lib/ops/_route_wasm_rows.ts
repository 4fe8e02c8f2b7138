// The rows of the route op's WebAssembly SIMD kernel (lib/wasm/src/route.c)
// on this thread's instance: blocks of rows copied into the instance's
// memory (a block stays in cache while the kernel reads it), routed there,
// the experts and weights copied out. Used by the "wasm" kernel
// (route_wasm.ts) on the calling thread and by the routing workers
// (_route_worker.ts), each on its own instance. Scores that live in the
// shared heap (lib/wasm/runtime.ts sharedWasmHeap) are routed in place
// instead (`heapBlocks`): every thread's instance of the threads module
// runs on that memory, reads the rows where they are and writes the
// experts and weights into regions of the same memory.
import {
  type SharedWasmHeap,
  sharedWasmHeap,
  type SharedWasmInstance,
  sharedWasmInstance,
  type WasmFunction,
  wasmRuntime,
} from "../wasm/runtime.ts";
import type { RowRouterMaker, RowSettings } from "./_route_rows.ts";

/** Bytes of scores copied into the instance's memory per kernel call. */
const BLOCK_BYTES = 1 << 16;

/** Float64 entries of the kernel's running state (route.c ST_SIZE). */
export const STATE_SIZE = 8;

/** The kernel's group arguments: groups, kept groups, keys per group score. */
export function groupArgs(
  E: number,
  k: number,
  s: RowSettings,
): [groups: number, topGroups: number, perGroup: number] {
  const groups = s.groups ?? 1;
  const topGroups = s.topGroups ?? groups;
  const perGroup = s.perGroup ??
    Math.max(1, Math.min(E / groups, Math.floor(k / topGroups)));
  return [groups, topGroups, perGroup];
}

/**
 * Addresses, in a shared heap, of one in-place routing job: the scores
 * (tokens x E), the experts and weights out (tokens x k), the bias (E
 * float64, zeros for none), and this thread's loads (E int32, zeroed),
 * running state (`STATE_SIZE` float64, NaN-filled) and kernel scratch.
 */
export interface HeapJob {
  scores: number;
  experts: number;
  weights: number;
  bias: number;
  loads: number;
  state: number;
  scratch: number;
}

/** The kernel's numeric settings, resolved once per batch. */
export interface KernelSettings {
  multiply: number;
  normalize: number;
  scale: number;
  groups: number;
  topGroups: number;
  perGroup: number;
}

/**
 * `s` with a multiplicative bias only where there is a bias (the kernel
 * multiplies by the bias it is handed, zeros for none).
 */
export function biasedSettings(s: RowSettings): RowSettings {
  return { ...s, multiply: s.multiply && s.bias !== undefined };
}

/** {@linkcode KernelSettings} of `s` (`s.multiply` taken as it is). */
export function kernelSettings(
  E: number,
  k: number,
  s: RowSettings,
): KernelSettings {
  const [groups, topGroups, perGroup] = groupArgs(E, k, s);
  return {
    multiply: s.multiply ? 1 : 0,
    normalize: s.normalize ? 1 : 0,
    scale: s.scale,
    groups,
    topGroups,
    perGroup,
  };
}

/**
 * One call of the kernel (route.c moelab_route_rows) on `rows` rows at
 * `at.scores`, its outputs at `at.experts` and `at.weights`, counts added
 * to `at.loads`: the kernel's index of a bad score, or -1.
 */
function routeRowsAt(
  rt: { exports: Readonly<Record<string, WasmFunction>> },
  at: HeapJob,
  rows: number,
  E: number,
  k: number,
  ks: KernelSettings,
): number {
  return rt.exports.moelab_route_rows(
    at.scores,
    rows,
    E,
    k,
    at.bias,
    ks.multiply,
    ks.normalize,
    ks.scale,
    ks.groups,
    ks.topGroups,
    ks.perGroup,
    at.experts,
    at.weights,
    at.loads,
    at.state,
    at.scratch,
  );
}

/**
 * Routes blocks of `blockRows` rows of `[0, tokens)` claimed from
 * `counter[cell]` (Atomics.add) in place in the shared heap, on this
 * thread's instance `rt`; the counts go to the job's loads. Returns the
 * flat index of the first NaN or `+Infinity` score met (the lowest of its
 * row), or -1. `s.multiply` is taken as it is (the bias is the job's).
 */
export function heapBlocks(
  counter: Int32Array,
  cell: number,
  blockRows: number,
  rt: SharedWasmInstance,
  job: HeapJob,
  tokens: number,
  E: number,
  k: number,
  s: RowSettings,
): number {
  const ks = kernelSettings(E, k, s);
  for (;;) {
    const lo = Atomics.add(counter, cell, 1) * blockRows;
    if (lo >= tokens) return -1;
    const found = routeRowsAt(
      rt,
      {
        ...job,
        scores: job.scores + 4 * lo * E,
        experts: job.experts + 4 * lo * k,
        weights: job.weights + 4 * lo * k,
      },
      Math.min(tokens - lo, blockRows),
      E,
      k,
      ks,
    );
    if (found >= 0) return lo * E + found;
  }
}

/**
 * A router of row ranges of one batch whose scores live in this thread's
 * shared heap ({@linkcode sharedWasmHeap}), like {@linkcode wasmRowRouter}
 * but in place: this thread's instance of the threads module reads the
 * rows where they are, and writes the experts and weights into a region of
 * the heap freed before the call returns. `undefined` where `data` is not
 * in that heap or the heap cannot hold the region.
 */
export const heapRowRouter: RowRouterMaker = (
  data,
  E,
  k,
  s,
  outE,
  outW,
  loads,
) => {
  if (!(data.buffer instanceof SharedArrayBuffer)) return undefined;
  const heap = sharedWasmHeap();
  if (heap === undefined || !heap.holds(data.buffer)) return undefined;
  const rt = sharedWasmInstance(heap.memory);
  if (rt === undefined) return undefined;
  const ks = kernelSettings(E, k, biasedSettings(s));
  const state = new Float64Array(STATE_SIZE).fill(NaN);
  return (from, to) => {
    const rows = to - from;
    const region = heapJobs(
      heap,
      rt,
      data.byteOffset + 4 * from * E,
      rows,
      E,
      k,
      ks,
      s.bias,
      1,
    );
    if (region === undefined) {
      throw new RangeError(
        `the shared WebAssembly heap cannot hold the routing of ${rows} rows`,
      );
    }
    try {
      const [job] = region.jobs;
      new Float64Array(heap.memory.buffer, job.state, STATE_SIZE).set(state);
      const found = routeRowsAt(rt, job, rows, E, k, ks);
      state.set(new Float64Array(heap.memory.buffer, job.state, STATE_SIZE));
      if (found >= 0) return from * E + found;
      copyOutOfHeap(heap, region.jobs, rows, E, k, outE, outW, from, loads);
      return -1;
    } finally {
      heap.free(region.base);
    }
  };
};

/**
 * One region of the shared heap for routing `rows` rows in place on `t`
 * threads, allocated and laid out: the experts and weights out (unless
 * `outputs` gives their addresses in the heap: then written there), the
 * bias (zeros for none: x + 0 orders as x), and for each thread its job's
 * loads (zeroed), running state (NaN-filled) and kernel scratch; every
 * job reads the scores from `scores` (a byte address in the heap). The
 * caller frees `base`. `undefined` where the heap cannot hold it.
 */
export function heapJobs(
  heap: SharedWasmHeap,
  rt: SharedWasmInstance,
  scores: number,
  rows: number,
  E: number,
  k: number,
  ks: KernelSettings,
  bias: Float64Array | undefined,
  t: number,
  outputs?: { experts: number; weights: number },
): { base: number; jobs: HeapJob[] } | undefined {
  const scratchBytes = align16(
    rt.exports.moelab_route_scratch_bytes(E, k, ks.groups, ks.perGroup),
  );
  const outBytes = outputs ? 0 : align16(4 * rows * k);
  const biasBytes = align16(8 * E);
  const loadsBytes = align16(4 * E);
  const threadBytes = loadsBytes + 8 * STATE_SIZE + scratchBytes;
  const base = heap.alloc(2 * outBytes + biasBytes + t * threadBytes);
  if (base === undefined) return undefined;
  const memory = heap.memory.buffer;
  const experts = outputs?.experts ?? base;
  const weights = outputs?.weights ?? base + outBytes;
  const biasAt = base + 2 * outBytes;
  const biasView = new Float64Array(memory, biasAt, E);
  if (bias) biasView.set(bias);
  else biasView.fill(0);
  const jobs = Array.from({ length: t }, (_, w): HeapJob => {
    const loads = biasAt + biasBytes + w * threadBytes;
    const state = loads + loadsBytes;
    new Int32Array(memory, loads, E).fill(0);
    new Float64Array(memory, state, STATE_SIZE).fill(NaN);
    return {
      scores,
      experts,
      weights,
      bias: biasAt,
      loads,
      state,
      scratch: state + 8 * STATE_SIZE,
    };
  });
  return { base, jobs };
}

/**
 * Copies the experts and weights of `rows` rows routed in the heap by
 * `jobs` ({@linkcode heapJobs}) into `outE`, `outW` from row `from`
 * (nothing where the jobs wrote them there), and adds every job's loads
 * to `loads`.
 */
export function copyOutOfHeap(
  heap: SharedWasmHeap,
  jobs: HeapJob[],
  rows: number,
  E: number,
  k: number,
  outE: Int32Array,
  outW: Float32Array,
  from: number,
  loads: Int32Array,
): void {
  const memory = heap.memory.buffer;
  const e = new Int32Array(memory, jobs[0].experts, rows * k);
  const w = new Float32Array(memory, jobs[0].weights, rows * k);
  if (!inPlace(heap, e, outE, from * k)) outE.set(e, from * k);
  if (!inPlace(heap, w, outW, from * k)) outW.set(w, from * k);
  for (const job of jobs) {
    const counts = new Int32Array(memory, job.loads, E);
    for (let j = 0; j < E; j++) loads[j] += counts[j];
  }
}

/**
 * Whether `a`, in the heap, is `b` from entry `at` on: `b` in the heap too
 * (a view taken before the memory grew included), at the same address.
 */
function inPlace(
  heap: SharedWasmHeap,
  a: Int32Array | Float32Array,
  b: Int32Array | Float32Array,
  at: number,
): boolean {
  return heap.holds(b.buffer) &&
    a.byteOffset === b.byteOffset + at * b.BYTES_PER_ELEMENT;
}

function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

/**
 * A router of row ranges of one batch on this thread's WebAssembly
 * instance, like `rowRouter` (_route_blocks.ts): each call routes rows
 * `[from, to)` of `data` (tokens x `E`) into `outE`, `outW` (tokens x `k`),
 * adds their counts to `loads`, and returns the flat index of the first
 * NaN or `+Infinity` score met (the lowest of its row), or -1; the running
 * threshold carries from one call to the next. `undefined` where the
 * engine cannot run the module.
 */
export const wasmRowRouter: RowRouterMaker = (
  data,
  E,
  k,
  s,
  outE,
  outW,
  loads,
) => {
  const rt = wasmRuntime();
  if (rt === undefined) return undefined;
  const blockRows = Math.max(1, Math.floor(BLOCK_BYTES / (4 * E)));
  // A multiplicative bias only where there is one.
  const ks = kernelSettings(E, k, biasedSettings(s));
  const at = {
    scores: rt.reserve("route.scores", 4 * blockRows * E),
    experts: rt.reserve("route.experts", 4 * blockRows * k),
    weights: rt.reserve("route.weights", 4 * blockRows * k),
    loads: rt.reserve("route.loads", 4 * E),
    bias: rt.reserve("route.bias", 8 * E),
    state: rt.reserve("route.state", 8 * STATE_SIZE),
    scratch: rt.reserve(
      "route.scratch",
      rt.exports.moelab_route_scratch_bytes(E, k, ks.groups, ks.perGroup),
    ),
  };
  // The bias as float64 (zeros for none: x + 0 orders as x).
  const bias = rt.f64(at.bias, E);
  if (s.bias) bias.set(s.bias);
  else bias.fill(0);
  rt.f64(at.state, STATE_SIZE).fill(NaN);
  let buffer: ArrayBufferLike | undefined;
  let scoresIn!: Float32Array, expertsOut!: Int32Array;
  let weightsOut!: Float32Array, loadsIn!: Int32Array;
  return (from, to) => {
    if (buffer !== rt.memory.buffer) {
      // (Re)take the views: memory grown since, by another kernel.
      buffer = rt.memory.buffer;
      scoresIn = rt.f32(at.scores, blockRows * E);
      expertsOut = rt.i32(at.experts, blockRows * k);
      weightsOut = rt.f32(at.weights, blockRows * k);
      loadsIn = rt.i32(at.loads, E);
    }
    loadsIn.fill(0);
    let bad = -1;
    for (let lo = from; lo < to; lo += blockRows) {
      const rows = Math.min(to - lo, blockRows);
      scoresIn.set(data.subarray(lo * E, (lo + rows) * E));
      const found = routeRowsAt(rt, at, rows, E, k, ks);
      if (found >= 0) {
        bad = lo * E + found;
        break;
      }
      outE.set(expertsOut.subarray(0, rows * k), lo * k);
      outW.set(weightsOut.subarray(0, rows * k), lo * k);
    }
    for (let j = 0; j < E; j++) loads[j] += loadsIn[j];
    return bad;
  };
};
