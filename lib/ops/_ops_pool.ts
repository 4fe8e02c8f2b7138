// The worker pool of the "cpu-threads" training-op kernels: the calling
// thread and up to MAX_POOL_THREADS - 1 workers (_ops_worker.ts) that share
// a job's buffers. A call blocks (Atomics.wait) until every block is done,
// so the kernels stay synchronous. Arrays not on a SharedArrayBuffer are
// copied to staging buffers kept between calls (and written ones copied
// back).
import {
  canWaitForStart,
  type PoolWorker,
  registerBuffer,
  startWorker,
} from "./_pool_workers.ts";
import { MessageChannel } from "node:worker_threads";
import {
  COUNTER,
  DONE,
  F,
  FAILED,
  IDLE,
  type JobInts,
  POSTED,
  runBlocks,
  SLOT,
  type WorkerInit,
} from "./_ops_worker.ts";

/** Most threads the pool may use. */
export const MAX_POOL_THREADS = 64;

const pool: PoolWorker[] = [];
const control = new Int32Array(
  new SharedArrayBuffer(4 * SLOT * MAX_POOL_THREADS),
);
const stage = new Map<string, SharedArrayBuffer>();

/** One array of a job: whether its contents are read, and whether written. */
export interface PoolArray {
  data: Float32Array;
  read: boolean;
  written: boolean;
}

/**
 * Runs `job` over `threads` threads (the calling one included), in blocks
 * of `blockUnits` units claimed from a shared counter.
 */
export function runOnPool(
  job: JobInts,
  arrays: PoolArray[],
  threads: number,
  blockUnits: number,
): void {
  const t = Math.min(
    threads,
    MAX_POOL_THREADS,
    Math.ceil(job.units / blockUnits),
  );
  const shared = arrays.map((x, i) => sharedView(`${job.kind}:${i}`, x));
  while (pool.length < t - 1) {
    const worker = startWorker(WORKER_URL);
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit = { port: port2, control, slot: pool.length + 1 };
    worker.postMessage(init, [port2]);
    pool.push({ port: port1, known: new Set() });
  }
  Atomics.store(control, COUNTER, 0);
  for (let w = 1; w < t; w++) {
    const at = w * SLOT;
    shared.forEach((x, b) => {
      control[at + F.buffers + b] = registerBuffer(
        pool[w - 1],
        x.buffer as SharedArrayBuffer,
      );
      control[at + F.offsets + b] = x.byteOffset / 4;
    });
    control[at + F.kind] = job.kind;
    control[at + F.units] = job.units;
    control[at + F.m] = job.m;
    control[at + F.n] = job.n;
    control[at + F.k] = job.k;
    control[at + F.flags] = job.flags;
    control[at + F.seq] = job.seq;
    control[at + F.headDim] = job.headDim;
    control[at + F.blockUnits] = blockUnits;
    Atomics.store(control, at, POSTED);
    Atomics.notify(control, at);
  }
  let failure: unknown;
  try {
    runBlocks(control, job, shared, blockUnits);
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
      failure ??= new Error(`training-op worker ${w} failed or did not answer`);
    }
  }
  if (failure) throw failure;
  arrays.forEach((x, i) => {
    if (x.written && shared[i] !== x.data) x.data.set(shared[i]);
  });
}

const WORKER_URL = new URL("./_ops_worker.ts", import.meta.url);
const WAIT_FOR_START = canWaitForStart(WORKER_URL);

/** The array itself when on a SharedArrayBuffer, else a staging copy. */
function sharedView(name: string, x: PoolArray): Float32Array {
  const { data } = x;
  if (data.buffer instanceof SharedArrayBuffer) return data;
  const have = stage.get(name);
  let buffer = have;
  if (!have || have.byteLength < data.byteLength) {
    buffer = new SharedArrayBuffer(
      Math.max(data.byteLength, Math.ceil((have?.byteLength ?? 0) * 1.5)),
    );
    stage.set(name, buffer);
  }
  const copy = new Float32Array(buffer!, 0, data.length);
  if (x.read) copy.set(data);
  return copy;
}
