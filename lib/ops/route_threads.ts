// The "cpu-threads" kernel of the route op: the rows split between the
// calling thread and worker threads (node:worker_threads, under Deno and
// Bun) that share the buffers. The call blocks (Atomics.wait) until all are
// done, so it is synchronous, and its answers are the CPU kernel's bit for
// bit: every thread runs the same row kernel on blocks of rows claimed from
// a shared counter, the WebAssembly SIMD one on its own instance
// (_route_wasm_rows.ts) or the TypeScript one (_route_rows.ts).
//
// Scores allocated in the shared heap (`sharedScoreData`, behind
// sharedScores) are routed in place: every thread's instance of the
// threads module runs on that memory, reads its rows where they are and
// writes experts and weights into one region of it, which this thread
// copies out and frees, or straight into an output routing that lies in
// the heap too (`sharedRoutingData`, behind sharedRouting); elsewhere
// each worker copies blocks of rows into its own instance's memory.
import {
  canWaitForStart,
  type PoolWorker,
  registerBuffer,
  startWorker,
} from "./_pool_workers.ts";
import { MessageChannel } from "node:worker_threads";
import { badScore } from "../validate.ts";
import type { Routing } from "../types.ts";
import { registerKernel } from "./registry.ts";
import { type RouteArgs, routeCpu, routeOp, rowSettings } from "./route.ts";
import { routeWasm } from "./route_wasm.ts";
import type { RowSettings } from "./_route_rows.ts";
import { BLOCK_ROWS, routeBlocks } from "./_route_blocks.ts";
import {
  COUNTER,
  DONE,
  F,
  FAILED,
  type HeapRegistration,
  IDLE,
  POSTED,
  SLOT,
  type WorkerInit,
} from "./_route_worker.ts";
import {
  biasedSettings,
  copyOutOfHeap,
  heapBlocks,
  heapJobs,
  kernelSettings,
} from "./_route_wasm_rows.ts";
import {
  SHARED_STACK_BYTES,
  sharedHeapFloat32,
  sharedHeapInt32,
  type SharedWasmHeap,
  sharedWasmHeap,
  sharedWasmInstance,
} from "../wasm/runtime.ts";

/** Below this many scores one thread is faster than waking the workers. */
export const MIN_PARALLEL_SCORES = 1 << 16;

/** Most threads a pool may use. */
export const MAX_THREADS = 64;

/** Rows below which a thread is not worth waking. */
const ROWS_PER_THREAD = 1024;

const ports: PoolWorker[] = [];
const control = new Int32Array(new SharedArrayBuffer(4 * SLOT * MAX_THREADS));
const scales = new Float64Array(new SharedArrayBuffer(8 * MAX_THREADS));
const stage = new Map<string, SharedArrayBuffer>();
/** Per worker: the top of its stack in the shared heap, once handed over. */
const heapStacks: number[] = [];

/**
 * `length` float32 zeros in the shared heap (lib/wasm/runtime.ts), routed
 * in place by {@linkcode routeThreads}; their region is freed when the
 * returned array is garbage collected (keep it, not only views of its
 * buffer, while the scores are in use). On a plain `SharedArrayBuffer`
 * where the engine has no shared WebAssembly memory or the heap is full.
 */
export function sharedScoreData(length: number): Float32Array {
  return sharedHeapFloat32(length) ??
    new Float32Array(new SharedArrayBuffer(4 * length));
}

/**
 * A {@linkcode Routing} for `tokens x k` whose experts and weights lie in
 * the shared heap, where {@linkcode routeThreads} (given it as `out`, on
 * scores from {@linkcode sharedScoreData}) has its threads write them in
 * place; freed when those arrays are garbage collected. On plain arrays
 * where the engine has no shared WebAssembly memory or the heap is full.
 */
export function sharedRoutingData(
  tokens: number,
  k: number,
  experts: number,
): Routing {
  const e = sharedHeapInt32(tokens * k);
  const w = e && sharedHeapFloat32(tokens * k);
  return {
    experts: e && w ? e : new Int32Array(tokens * k),
    weights: e && w ? w : new Float32Array(tokens * k),
    loads: new Int32Array(experts),
    k,
  };
}

/**
 * Routes on `threads` threads, the calling one included, with or without
 * groups; each thread runs the WebAssembly SIMD rows on its own instance
 * (`host` `"wasm"`, the default, where the engine runs them) or the
 * TypeScript rows (`"cpu"`). Small batches (under 65536 scores) run on the
 * calling thread with the `"wasm"` or `"cpu"` kernel. Scores in the
 * shared heap ({@linkcode sharedScoreData}) are routed in place by the
 * `"wasm"` rows; scores not on a `SharedArrayBuffer` are copied once per
 * call.
 */
export function routeThreads(
  args: RouteArgs,
  threads: number,
  host: "cpu" | "wasm" = "wasm",
): Routing {
  const { scores, k, out } = args;
  const { tokens: N, experts: E } = scores;
  const t = Math.min(threads, Math.ceil(N / ROWS_PER_THREAD));
  if (t <= 1 || N * E < MIN_PARALLEL_SCORES) {
    return host === "wasm" ? routeWasm(args) : routeCpu(args);
  }
  const settings: RowSettings = rowSettings(args);
  const heap = host === "wasm" ? sharedWasmHeap() : undefined;
  if (heap?.holds(scores.data.buffer)) {
    const routed = routeInHeap(args, heap, t, settings);
    if (routed) return routed;
  }
  const data = sharedInput(scores.data);
  const outE = staging("outE", 4 * N * k);
  const outW = staging("outW", 4 * N * k);
  const loads = staging("loads", 4 * t * E);
  const bias = settings.bias ? staging("bias", 8 * E) : undefined;
  if (bias) new Float64Array(bias, 0, E).set(settings.bias!);
  startWorkers(t);
  Atomics.store(control, COUNTER, 0);
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    const id = (b: SharedArrayBuffer) => registerBuffer(ports[w - 1], b);
    control[at + F.data] = id(data.buffer as SharedArrayBuffer);
    control[at + F.dataOffset] = data.byteOffset / 4;
    control[at + F.heap] = 0;
    control[at + F.outE] = id(outE);
    control[at + F.outW] = id(outW);
    control[at + F.loads] = id(loads);
    control[at + F.bias] = bias ? id(bias) : -1;
    control[at + F.from] = 0;
    control[at + F.to] = N;
    control[at + F.experts] = E;
    control[at + F.k] = k;
    control[at + F.multiply] = settings.multiply ? 1 : 0;
    control[at + F.normalize] = settings.normalize ? 1 : 0;
    control[at + F.groups] = args.groups;
    control[at + F.topGroups] = args.topGroups;
    control[at + F.perGroup] = settings.perGroup!;
    control[at + F.wasm] = host === "wasm" ? 1 : 0;
    scales[w] = settings.scale;
    Atomics.store(control, at, POSTED);
    Atomics.notify(control, at);
  }
  touchPages(out.experts, out.weights);
  const eAll = new Int32Array(outE, 0, N * k);
  const wAll = new Float32Array(outW, 0, N * k);
  const lAll = new Int32Array(loads, 0, t * E);
  const own = lAll.subarray(0, E);
  own.fill(0);
  let bad = routeBlocks(
    control,
    COUNTER,
    data,
    E,
    k,
    settings,
    N,
    eAll,
    wAll,
    own,
    host,
  );
  bad = collect(t, bad, (w) => lAll.fill(0, w * E, (w + 1) * E));
  if (bad >= 0) throw badScore("scores", scores, bad);
  out.experts.set(eAll);
  out.weights.set(wAll);
  out.loads.fill(0);
  for (let w = 0; w < t; w++) {
    for (let j = 0; j < E; j++) out.loads[j] += lAll[w * E + j];
  }
  return out;
}

registerKernel({
  op: routeOp,
  backend: "cpu-threads",
  run: (args, env) =>
    routeThreads(
      args,
      env.threads ?? navigator.hardwareConcurrency ?? 1,
      env.host,
    ),
  callers: ["routeParallel()", 'routeAsync() with backend "cpu"'],
});

/** Starts workers until the pool has `t - 1`. */
function startWorkers(t: number): void {
  while (ports.length < t - 1) {
    const worker = startWorker(WORKER_URL);
    const { port1, port2 } = new MessageChannel();
    const slot = ports.length + 1;
    const init: WorkerInit = { port: port2, control, scales, slot };
    worker.postMessage(init, [port2]);
    ports.push({ port: port1, known: new Set() });
  }
}

/**
 * Waits for the jobs posted to workers `1..t-1` and returns the lowest bad
 * index reported, `bad` included; a job not started when this thread has
 * claimed every block is withdrawn (`withdrawn(w)`).
 */
function collect(
  t: number,
  bad: number,
  withdrawn: (w: number) => void,
): number {
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    if (
      !WAIT_FOR_START &&
      Atomics.compareExchange(control, at, POSTED, IDLE) === POSTED
    ) {
      // Not started yet: this thread has claimed every block.
      withdrawn(w);
      continue;
    }
    // A new worker loads its module first; a minute covers a slow start.
    const until = performance.now() + 60_000;
    for (
      let state = Atomics.load(control, at);
      state !== DONE && state !== FAILED && performance.now() < until;
      state = Atomics.load(control, at)
    ) {
      Atomics.wait(control, at, state, 1000);
    }
    const state = Atomics.load(control, at);
    Atomics.store(control, at, IDLE);
    if (state !== DONE) {
      throw new Error(`routing worker ${w} failed or did not answer`);
    }
    const found = control[at + F.bad];
    if (found >= 0 && (bad < 0 || found < bad)) bad = found;
  }
  return bad;
}

/**
 * Routes scores that live in the shared heap in place on `t` threads: one
 * region holds the experts and weights out, the bias and each thread's
 * loads, running state and scratch; it is freed before returning.
 * `undefined` (nothing done) where the heap cannot hold that region or the
 * engine cannot run the threads module.
 */
function routeInHeap(
  args: RouteArgs,
  heap: SharedWasmHeap,
  t: number,
  settings: RowSettings,
): Routing | undefined {
  const { scores, k, out } = args;
  const { tokens: N, experts: E } = scores;
  const rt = sharedWasmInstance(heap.memory);
  if (rt === undefined) return undefined;
  // A stack in the heap for each worker, handed over once.
  for (let w = heapStacks.length; w < t - 1; w++) {
    const stack = heap.alloc(SHARED_STACK_BYTES);
    if (stack === undefined) return undefined;
    heapStacks.push(stack + SHARED_STACK_BYTES);
  }
  const s = biasedSettings(settings);
  const ks = kernelSettings(E, k, s);
  // Outputs in the heap too (sharedRoutingData): written in place.
  const inPlace = heap.holds(out.experts.buffer) &&
    heap.holds(out.weights.buffer);
  const region = heapJobs(
    heap,
    rt,
    scores.data.byteOffset,
    N,
    E,
    k,
    ks,
    settings.bias,
    t,
    inPlace
      ? { experts: out.experts.byteOffset, weights: out.weights.byteOffset }
      : undefined,
  );
  if (region === undefined) return undefined;
  const { base, jobs } = region;
  let answered = true;
  try {
    startWorkers(t);
    Atomics.store(control, COUNTER, 0);
    for (let w = 1; w < t; w++) {
      const at = w * SLOT;
      const port = ports[w - 1];
      if (!port.known.has(HEAP_KEY)) {
        const r: HeapRegistration = {
          heap: heap.memory,
          stackTop: heapStacks[w - 1],
        };
        port.port.postMessage(r);
        port.known.add(HEAP_KEY);
      }
      const job = jobs[w];
      control[at + F.heap] = 1;
      control[at + F.ptrScores] = job.scores;
      control[at + F.ptrExperts] = job.experts;
      control[at + F.ptrWeights] = job.weights;
      control[at + F.ptrBias] = job.bias;
      control[at + F.ptrLoads] = job.loads;
      control[at + F.ptrState] = job.state;
      control[at + F.ptrScratch] = job.scratch;
      control[at + F.to] = N;
      control[at + F.experts] = E;
      control[at + F.k] = k;
      control[at + F.multiply] = ks.multiply;
      control[at + F.normalize] = ks.normalize;
      control[at + F.groups] = ks.groups;
      control[at + F.topGroups] = ks.topGroups;
      control[at + F.perGroup] = ks.perGroup;
      scales[w] = ks.scale;
      Atomics.store(control, at, POSTED);
      Atomics.notify(control, at);
    }
    if (!inPlace) touchPages(out.experts, out.weights);
    let bad = heapBlocks(control, COUNTER, BLOCK_ROWS, rt, jobs[0], N, E, k, s);
    // A withdrawn job's loads stay zero. A worker that did not answer may
    // still write: then the region is not freed.
    answered = false;
    bad = collect(t, bad, () => {});
    answered = true;
    if (bad >= 0) throw badScore("scores", scores, bad);
    out.loads.fill(0);
    copyOutOfHeap(heap, jobs, N, E, k, out.experts, out.weights, 0, out.loads);
    return out;
  } finally {
    if (answered) heap.free(base);
  }
}

/**
 * Writes a zero into each 4 KiB page of the output arrays, while the
 * workers route: a fresh array's pages are mapped on first touch (at
 * 262144 x 8 about 5.5 ms for the experts and weights), which the copy
 * out after the last block would otherwise pay on this thread alone; the
 * blocks' counter hands the workers more rows meanwhile.
 */
function touchPages(...arrays: (Int32Array | Float32Array)[]): void {
  for (const a of arrays) {
    for (let i = 0; i < a.length; i += 1024) a[i] = 0;
  }
}

/** The key under which a worker's port records that it holds the heap. */
const HEAP_KEY = -1;

const WORKER_URL = new URL("./_route_worker.ts", import.meta.url);
const WAIT_FOR_START = canWaitForStart(WORKER_URL);

/** The scores on a SharedArrayBuffer: their own, or a staging copy. */
function sharedInput(data: Float32Array): Float32Array {
  if (data.buffer instanceof SharedArrayBuffer) {
    return data;
  }
  const copy = new Float32Array(
    staging("data", 4 * data.length),
    0,
    data.length,
  );
  copy.set(data);
  return copy;
}

/** A staging buffer of at least `bytes`, kept between calls (grown by half). */
function staging(name: string, bytes: number): SharedArrayBuffer {
  const have = stage.get(name);
  if (have && have.byteLength >= bytes) return have;
  const b = new SharedArrayBuffer(
    Math.max(bytes, Math.ceil((have?.byteLength ?? 0) * 1.5)),
  );
  stage.set(name, b);
  return b;
}
