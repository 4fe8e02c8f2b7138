// A worker of the "cpu-threads" training-op kernels (matmul_threads.ts,
// attention_threads.ts), built like the routing workers (_route_worker.ts):
// it blocks in Atomics.wait on its slot of a shared control array; the
// caller writes the job (its kind, sizes, and the ids and offsets of the
// shared buffers) into the slot and raises it; the worker claims blocks of
// units (rows of a matmul, (sequence, head) pairs of attention) from a
// shared counter until none are left, running the CPU kernels' own loops.
// Buffers are registered once per worker by a message drained with
// receiveMessageOnPort (its event loop never runs).
import type { Registration } from "./_pool_workers.ts";
import {
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
} from "node:worker_threads";
import { matmulRows } from "./_matmul_rows.ts";
import { attentionBackwardHeads, attentionHeads } from "./_attention_heads.ts";

/** Slot states. */
export const IDLE = 0, POSTED = 1, DONE = 2, FAILED = 3, RUNNING = 4;
/** Job kinds. */
export const KIND = { matmul: 0, attention: 1, attentionBackward: 2 } as const;
/** Most buffers a job names. */
export const MAX_BUFFERS = 8;
/** Int32 fields of a slot (the slot is `SLOT` ints wide). */
export const F = {
  state: 0,
  kind: 1,
  /** Units per block claimed from the counter. */
  blockUnits: 2,
  /** Units in all: rows of out, or (sequence, head) pairs. */
  units: 3,
  m: 4,
  n: 5,
  k: 6,
  /** Bit 0: transA, bit 1: transB, bit 2: accumulate. */
  flags: 7,
  seq: 8,
  headDim: 9,
  /** `MAX_BUFFERS` buffer ids, then as many offsets (float32 entries). */
  buffers: 10,
  offsets: 10 + MAX_BUFFERS,
} as const;
/** Flag bits of `F.flags`. */
export const TRANS_A = 1, TRANS_B = 2, ACCUMULATE = 4;
/** Cell of the control array that counts the blocks claimed (in slot 0, which no worker uses). */
export const COUNTER = 1;
/** Width of a slot in the control array, in Int32 entries. */
export const SLOT = 32;

/** The sizes of a job, as its slot holds them. */
export type JobInts = Record<
  "kind" | "units" | "m" | "n" | "k" | "flags" | "seq" | "headDim",
  number
>;

/** Entries of each buffer of a job, in the kind's order. */
export function lengthsOf(job: JobInts): number[] {
  const { m, n, k, units, seq, headDim } = job;
  if (job.kind === KIND.matmul) return [m * k, k * n, m * n];
  const size = units * seq * headDim, probs = units * seq * seq;
  if (job.kind === KIND.attention) return [size, size, size, size, probs];
  return [size, size, size, probs, size, size, size, size];
}

/** Runs units `[from, to)` of a job on its buffers (in the kind's order). */
export function runUnits(
  job: JobInts,
  x: Float32Array[],
  from: number,
  to: number,
): void {
  const { seq, headDim } = job;
  if (job.kind === KIND.matmul) {
    const shape = {
      m: job.m,
      n: job.n,
      k: job.k,
      transA: (job.flags & TRANS_A) !== 0,
      transB: (job.flags & TRANS_B) !== 0,
      accumulate: (job.flags & ACCUMULATE) !== 0,
    };
    matmulRows(x[0], x[1], x[2], shape, from, to);
  } else if (job.kind === KIND.attention) {
    attentionHeads(x[0], x[1], x[2], x[3], x[4], seq, headDim, from, to);
  } else {
    attentionBackwardHeads(
      x[0],
      x[1],
      x[2],
      x[3],
      x[4],
      x[5],
      x[6],
      x[7],
      seq,
      headDim,
      from,
      to,
    );
  }
}

/** Claims blocks of `blockUnits` units from `control[COUNTER]` until none are left. */
export function runBlocks(
  control: Int32Array,
  job: JobInts,
  x: Float32Array[],
  blockUnits: number,
): void {
  for (;;) {
    const from = Atomics.add(control, COUNTER, 1) * blockUnits;
    if (from >= job.units) return;
    runUnits(job, x, from, Math.min(job.units, from + blockUnits));
  }
}

/** The first message a worker gets: its port, the control array and its slot. */
export interface WorkerInit {
  port: MessagePort;
  control: Int32Array;
  slot: number;
}

parentPort?.once("message", (init: WorkerInit) => {
  const { port, control, slot } = init;
  const at = slot * SLOT;
  const buffers: SharedArrayBuffer[] = [];
  for (;;) {
    // Take the job (POSTED -> RUNNING) unless the caller withdrew it.
    let state = Atomics.compareExchange(control, at, POSTED, RUNNING);
    while (state !== POSTED) {
      Atomics.wait(control, at, state);
      state = Atomics.compareExchange(control, at, POSTED, RUNNING);
    }
    for (
      let msg = receiveMessageOnPort(port);
      msg;
      msg = receiveMessageOnPort(port)
    ) {
      const r = msg.message as Registration;
      buffers[r.id] = r.buffer;
    }
    let result = DONE;
    try {
      const job: JobInts = {
        kind: control[at + F.kind],
        units: control[at + F.units],
        m: control[at + F.m],
        n: control[at + F.n],
        k: control[at + F.k],
        flags: control[at + F.flags],
        seq: control[at + F.seq],
        headDim: control[at + F.headDim],
      };
      const views = lengthsOf(job).map((length, b) =>
        new Float32Array(
          buffers[control[at + F.buffers + b]],
          4 * control[at + F.offsets + b],
          length,
        )
      );
      runBlocks(control, job, views, control[at + F.blockUnits]);
    } catch {
      result = FAILED;
    }
    Atomics.store(control, at, result);
    Atomics.notify(control, at);
  }
});
