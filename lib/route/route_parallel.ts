import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import { badScore, checkInteger, checkScoreShape, show } from "../_validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { createRouting, route, routeInto, type RouteOptions } from "./route.ts";
import { routeBlocks, routeRows, type RowSettings } from "./_route_rows.ts";
import {
  COUNTER,
  DONE,
  F,
  IDLE,
  POSTED,
  type Registration,
  SLOT,
  type WorkerInit,
} from "./_route_worker.ts";

/** Options of {@linkcode routeParallel}. */
export interface RouteParallelOptions extends RouteOptions {
  /**
   * Threads to use, the calling thread included. Default: the number of
   * logical cores (`navigator.hardwareConcurrency`).
   */
  threads?: number;
}

/** Below this many scores one thread is faster than waking the workers. */
const MIN_PARALLEL_SCORES = 1 << 16;

/** Most threads a pool may use. */
const MAX_THREADS = 64;

interface PoolWorker {
  port: MessagePort;
  /** Ids of the buffers this worker holds. */
  known: Set<number>;
}

const ports: PoolWorker[] = [];
const control = new Int32Array(new SharedArrayBuffer(4 * SLOT * MAX_THREADS));
const scales = new Float64Array(new SharedArrayBuffer(8 * MAX_THREADS));
const ids = new WeakMap<SharedArrayBuffer, number>();
let nextId = 0;
const stage = new Map<string, SharedArrayBuffer>();

/**
 * Allocates a score matrix on a `SharedArrayBuffer`, so that
 * {@linkcode routeParallel} hands it to its workers without a copy.
 *
 * @param tokens Rows.
 * @param experts Columns.
 * @returns A zero-filled {@linkcode ScoreMatrix}, `tokens x experts`.
 * @throws {RangeError} If a size is not a non-negative integer (`experts >= 1`).
 *
 * @example
 * ```ts
 * import { sharedScores } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sharedScores(2, 3);
 * assert.equal(s.data.length, 6);
 * assert.ok(s.data.buffer instanceof SharedArrayBuffer);
 * ```
 */
export function sharedScores(tokens: number, experts: number): ScoreMatrix {
  checkInteger("tokens", tokens, 0);
  checkInteger("experts", experts, 1);
  const data = new Float32Array(new SharedArrayBuffer(4 * tokens * experts));
  return { data, tokens, experts };
}

/**
 * Routes a batch like {@linkcode route}, with the same answers bit for bit,
 * on several cores: the rows are split between the calling thread and
 * worker threads (`node:worker_threads`, under Deno and Bun) that share the
 * buffers; the call blocks (Atomics.wait) until all are done, so it is
 * synchronous. Small batches (under 65536 scores) and group-limited
 * routing run on the calling thread. Scores not on a `SharedArrayBuffer`
 * (see {@linkcode sharedScores}) are copied once per call.
 *
 * The inner loop collects, without a branch, the entries of a row at or
 * above a threshold guessed from the rows before, then ranks those few
 * (a row where fewer than k pass is scanned in full); no row copy and no
 * allocation per token.
 *
 * @param scores Scores after the gate, `tokens x experts`.
 * @param options {@linkcode RouteOptions} and `threads`.
 * @returns Experts and weights (tokens x k, best first) and loads (experts).
 * @throws {TypeError} If the scores or `out` have the wrong shape.
 * @throws {RangeError} As {@linkcode route}, or if `threads < 1`.
 * @throws {Error} If a worker fails.
 *
 * @example Same answers as route()
 * ```ts
 * import { route, routeParallel, sharedScores } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sharedScores(40000, 8);
 * for (let i = 0; i < s.data.length; i++) s.data[i] = (i * 7919) % 101;
 * const a = routeParallel(s, { k: 2, threads: 2 });
 * const b = route(s, { k: 2 });
 * assert.deepEqual(a.experts, b.experts);
 * assert.deepEqual(a.loads, b.loads);
 * ```
 */
export function routeParallel(
  scores: ScoreMatrix,
  options: RouteParallelOptions,
): Routing {
  // NaN and +Infinity are found by the kernel while it reads the scores.
  checkScoreShape("scores", scores);
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const { tokens: N, experts: E } = scores;
  // route() on an empty batch checks every option with its own messages.
  const { out: given, threads: wanted, ...rest } = options;
  route({ data: new Float32Array(0), tokens: 0, experts: E }, rest);
  const threads = checkInteger(
    "threads",
    wanted ?? navigator.hardwareConcurrency ?? 1,
    1,
    MAX_THREADS,
  );
  const k = options.k;
  const out = given ?? createRouting(N, k, E);
  if (
    out.k !== k || out.experts.length !== N * k ||
    out.weights.length !== N * k || out.loads.length !== E
  ) {
    throw new TypeError(
      `out must be a Routing for ${N} tokens, k = ${k} and ${E} experts`,
    );
  }
  const groups = options.groups ?? 1;
  const grouped = groups > 1 && (options.topGroups ?? groups) < groups;
  const settings: RowSettings = {
    bias: options.bias === undefined
      ? undefined
      : Float64Array.from(options.bias),
    multiply: options.biasMode === "multiply",
    normalize: options.normalize ?? false,
    scale: options.scale ?? 1,
  };
  if (settings.bias) {
    for (let j = 0; j < E; j++) settings.bias[j] = options.bias![j];
  }
  const t = Math.min(threads, Math.ceil(N / 1024));
  if (grouped) {
    routeInto(scores, k, out, {
      ...settings,
      groups,
      topGroups: options.topGroups,
    });
    return out;
  }
  if (t <= 1 || N * E < MIN_PARALLEL_SCORES) {
    out.loads.fill(0);
    const bad = routeRows(
      scores.data,
      E,
      k,
      settings,
      0,
      N,
      out.experts,
      out.weights,
      out.loads,
      new Float64Array(k),
      new Int32Array(k),
    );
    if (bad >= 0) throw badScore("scores", scores, bad);
    return out;
  }
  routeShared(scores, k, settings, t, out);
  return out;
}

/** Splits the rows over `t` threads (the caller and `t - 1` workers). */
function routeShared(
  scores: ScoreMatrix,
  k: number,
  settings: RowSettings,
  t: number,
  out: Routing,
): void {
  const { tokens: N, experts: E } = scores;
  const data = sharedInput(scores.data);
  const outE = staging("outE", 4 * N * k);
  const outW = staging("outW", 4 * N * k);
  const loads = staging("loads", 4 * t * E);
  const bias = settings.bias ? staging("bias", 8 * E) : undefined;
  if (bias) new Float64Array(bias, 0, E).set(settings.bias!);
  while (ports.length < t - 1) {
    const worker = new Worker(new URL("./_route_worker.ts", import.meta.url));
    worker.unref();
    const { port1, port2 } = new MessageChannel();
    const slot = ports.length + 1;
    const init: WorkerInit = { port: port2, control, scales, slot };
    worker.postMessage(init, [port2]);
    ports.push({ port: port1, known: new Set() });
  }
  Atomics.store(control, COUNTER, 0);
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    const id = (b: SharedArrayBuffer) => register(ports[w - 1], b);
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
  );
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    // A new worker loads its module first; a minute covers a slow start.
    const until = performance.now() + 60_000;
    while (Atomics.load(control, at) === POSTED && performance.now() < until) {
      Atomics.wait(control, at, POSTED, 1000);
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
}

/** Tells a worker about a shared buffer once; returns the buffer's id. */
function register(worker: PoolWorker, buffer: SharedArrayBuffer): number {
  let id = ids.get(buffer);
  if (id === undefined) ids.set(buffer, id = nextId++);
  if (!worker.known.has(id)) {
    const r: Registration = { id, buffer };
    worker.port.postMessage(r);
    worker.known.add(id);
  }
  return id;
}

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
