// The "cpu-threads" kernel of the matmul op: blocks of output rows split
// between the calling thread and worker threads (node:worker_threads,
// under Deno and Bun) that share the operands. The call blocks
// (Atomics.wait) until all are done, so it is synchronous; every thread
// runs the CPU kernel's row code (_matmul_rows.ts), whose sums do not
// depend on the split, so the answers are the CPU kernel's bit for bit.
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import { registerKernel } from "./registry.ts";
import { type MatmulArgs, matmulCpu, matmulOp } from "./matmul.ts";
import { TILE_ROWS } from "./_matmul_rows.ts";
import {
  ACCUMULATE,
  COUNTER,
  DONE,
  F,
  FAILED,
  IDLE,
  matmulBlocks,
  POSTED,
  type Registration,
  SLOT,
  TRANS_A,
  TRANS_B,
  type WorkerInit,
} from "./_matmul_worker.ts";

/** Below this many multiply-adds (`m n k`) one thread is faster than waking others. */
export const MIN_PARALLEL_WORK = 1 << 18;

/** Most threads the pool may use. */
export const MAX_MATMUL_THREADS = 64;

interface PoolWorker {
  port: MessagePort;
  /** Ids of the buffers this worker holds. */
  known: Set<number>;
}

const pool: PoolWorker[] = [];
const control = new Int32Array(
  new SharedArrayBuffer(4 * SLOT * MAX_MATMUL_THREADS),
);
const ids = new WeakMap<SharedArrayBuffer, number>();
let nextId = 0;
const stage = new Map<string, SharedArrayBuffer>();

/**
 * Runs {@linkcode matmulOp} on `threads` threads, the calling one
 * included: blocks of output rows are claimed from a shared counter.
 * Small products (under 2¹⁸ multiply-adds, or fewer than 8 rows) run on the
 * calling thread. Operands on a `SharedArrayBuffer` are used in place
 * (views at any offset: a model's workspace can be one shared buffer);
 * others are copied to staging buffers kept between calls, and `out` is
 * copied back. The bits are those of {@linkcode matmulCpu}.
 *
 * @example Two threads give the one-thread bits
 * ```ts
 * import { matmulCpu, matmulOp, matmulThreads } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const m = 64, n = 64, k = 96;
 * const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
 * const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
 * const one = matmulCpu(matmulOp.validate({ a, b, m, n, k }));
 * const two = matmulThreads(matmulOp.validate({ a, b, m, n, k }), 2);
 * assert.deepEqual(two, one);
 * ```
 */
export function matmulThreads(args: MatmulArgs, threads: number): Float32Array {
  const { m, n, k } = args;
  const blockRows = Math.max(
    TILE_ROWS,
    Math.ceil(m / (4 * threads) / TILE_ROWS) * TILE_ROWS,
  );
  const t = Math.min(threads, MAX_MATMUL_THREADS, Math.ceil(m / blockRows));
  if (t <= 1 || m < 8 || m * n * k < MIN_PARALLEL_WORK) return matmulCpu(args);
  const a = shared("a", args.a, true);
  const b = shared("b", args.b, true);
  const out = shared("out", args.out, args.accumulate);
  while (pool.length < t - 1) {
    const worker = startWorker();
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit = { port: port2, control, slot: pool.length + 1 };
    worker.postMessage(init, [port2]);
    pool.push({ port: port1, known: new Set() });
  }
  const flags = (args.transA ? TRANS_A : 0) | (args.transB ? TRANS_B : 0) |
    (args.accumulate ? ACCUMULATE : 0);
  Atomics.store(control, COUNTER, 0);
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    const id = (x: Float32Array) =>
      register(pool[w - 1], x.buffer as SharedArrayBuffer);
    control[at + F.a] = id(a);
    control[at + F.b] = id(b);
    control[at + F.out] = id(out);
    control[at + F.aAt] = a.byteOffset / 4;
    control[at + F.bAt] = b.byteOffset / 4;
    control[at + F.outAt] = out.byteOffset / 4;
    control[at + F.m] = m;
    control[at + F.n] = n;
    control[at + F.k] = k;
    control[at + F.flags] = flags;
    control[at + F.blockRows] = blockRows;
    Atomics.store(control, at, POSTED);
    Atomics.notify(control, at);
  }
  let failure: unknown;
  try {
    matmulBlocks(control, a, b, out, args, blockRows);
  } catch (e) {
    failure = e;
  }
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    if (
      !WAIT_FOR_START &&
      Atomics.compareExchange(control, at, POSTED, IDLE) === POSTED
    ) {
      continue; // not started: this thread has claimed every block
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
      failure ??= new Error(`matmul worker ${w} failed or did not answer`);
    }
  }
  if (failure) throw failure;
  if (out !== args.out) args.out.set(out);
  return args.out;
}

registerKernel({
  op: matmulOp,
  backend: "cpu-threads",
  run: (args, env) =>
    matmulThreads(args, env.threads ?? navigator.hardwareConcurrency ?? 1),
  callers: ['the transformer\'s training step with backend "cpu-threads"'],
});

const WORKER_URL = new URL("./_matmul_worker.ts", import.meta.url);
// node:worker_threads starts only file: and data: URLs, so a module loaded
// over HTTP (as from JSR) starts its workers from a data: URL that imports
// the worker module. Such a worker cannot fetch its modules while this
// thread blocks in Atomics.wait, so the caller does not wait for it to
// start: a job it has not taken when the caller has claimed every block is
// withdrawn (as in route_threads.ts).
const WAIT_FOR_START = WORKER_URL.protocol === "file:";

function startWorker(): Worker {
  const source = `import ${JSON.stringify(WORKER_URL.href)};`;
  const worker = new Worker(
    WAIT_FOR_START
      ? WORKER_URL
      : new URL(`data:text/javascript,${encodeURIComponent(source)}`),
  );
  worker.unref();
  return worker;
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

/** `x` itself when on a SharedArrayBuffer, else a staging buffer (holding a copy of `x` when `fill`). */
function shared(name: string, x: Float32Array, fill: boolean): Float32Array {
  if (x.buffer instanceof SharedArrayBuffer) return x;
  const have = stage.get(name);
  let buffer = have;
  if (!have || have.byteLength < x.byteLength) {
    buffer = new SharedArrayBuffer(
      Math.max(x.byteLength, Math.ceil((have?.byteLength ?? 0) * 1.5)),
    );
    stage.set(name, buffer);
  }
  const copy = new Float32Array(buffer!, 0, x.length);
  if (fill) copy.set(x);
  return copy;
}
