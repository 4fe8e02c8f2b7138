// The "cpu-threads" kernel of the route op: the rows split between the
// calling thread and worker threads (node:worker_threads, under Deno and
// Bun) that share the buffers. The call blocks (Atomics.wait) until all are
// done, so it is synchronous, and its answers are the CPU kernel's bit for
// bit: every thread runs the same row kernel on blocks of rows claimed from
// a shared counter, the WebAssembly SIMD one on its own instance
// (_route_wasm_rows.ts) or the TypeScript one (_route_rows.ts).
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
import { routeBlocks } from "./_route_blocks.ts";
import {
  COUNTER,
  DONE,
  F,
  FAILED,
  IDLE,
  POSTED,
  SLOT,
  type WorkerInit,
} from "./_route_worker.ts";

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

/**
 * Routes on `threads` threads, the calling one included, with or without
 * groups; each thread runs the WebAssembly SIMD rows on its own instance
 * (`host` `"wasm"`, the default, where the engine runs them) or the
 * TypeScript rows (`"cpu"`). Small batches (under 65536 scores) run on the
 * calling thread with the `"wasm"` or `"cpu"` kernel. Scores not on a
 * `SharedArrayBuffer` are copied once per call.
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
  const data = sharedInput(scores.data);
  const outE = staging("outE", 4 * N * k);
  const outW = staging("outW", 4 * N * k);
  const loads = staging("loads", 4 * t * E);
  const bias = settings.bias ? staging("bias", 8 * E) : undefined;
  if (bias) new Float64Array(bias, 0, E).set(settings.bias!);
  while (ports.length < t - 1) {
    const worker = startWorker(WORKER_URL);
    const { port1, port2 } = new MessageChannel();
    const slot = ports.length + 1;
    const init: WorkerInit = { port: port2, control, scales, slot };
    worker.postMessage(init, [port2]);
    ports.push({ port: port1, known: new Set() });
  }
  Atomics.store(control, COUNTER, 0);
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    const id = (b: SharedArrayBuffer) => registerBuffer(ports[w - 1], b);
    control[at + F.data] = id(data.buffer as SharedArrayBuffer);
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
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    if (
      !WAIT_FOR_START &&
      Atomics.compareExchange(control, at, POSTED, IDLE) === POSTED
    ) {
      // Not started yet: this thread has claimed every block.
      lAll.fill(0, w * E, (w + 1) * E);
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

const WORKER_URL = new URL("./_route_worker.ts", import.meta.url);
const WAIT_FOR_START = canWaitForStart(WORKER_URL);

/** The scores on a SharedArrayBuffer: their own, or a staging copy. */
function sharedInput(data: Float32Array): Float32Array {
  if (data.buffer instanceof SharedArrayBuffer && data.byteOffset === 0) {
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
