// A worker of the "cpu-threads" matmul kernel (matmul_threads.ts), built
// like the routing workers (_route_worker.ts): it blocks in Atomics.wait
// on its slot of a shared control array; the caller writes the job (sizes,
// flags and the ids and offsets of the shared buffers) into the slot and
// raises it; the worker claims blocks of output rows from a shared counter
// until none are left. Buffers are registered once per worker by a message
// drained with receiveMessageOnPort (its event loop never runs).
import {
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
} from "node:worker_threads";
import { matmulRows, type MatmulShape } from "./_matmul_rows.ts";

/** Slot states. */
export const IDLE = 0, POSTED = 1, DONE = 2, FAILED = 3, RUNNING = 4;
/** Int32 fields of a slot (the slot is `SLOT` ints wide). */
export const F = {
  state: 0,
  a: 1,
  b: 2,
  out: 3,
  /** Offsets of the operands in their buffers, in float32 entries. */
  aAt: 4,
  bAt: 5,
  outAt: 6,
  m: 7,
  n: 8,
  k: 9,
  /** Bit 0: transA, bit 1: transB, bit 2: accumulate. */
  flags: 10,
  /** Rows per block claimed from the counter. */
  blockRows: 11,
} as const;
/** Flag bits of `F.flags`. */
export const TRANS_A = 1, TRANS_B = 2, ACCUMULATE = 4;
/** Cell of the control array that counts the blocks of rows claimed. */
export const COUNTER = 1;
/** Width of a slot in the control array, in Int32 entries. */
export const SLOT = 16;

/** A buffer registration: the worker keeps `buffer` under `id`. */
export interface Registration {
  id: number;
  buffer: SharedArrayBuffer;
}

/** The first message a worker gets: its port, the control array and its slot. */
export interface WorkerInit {
  port: MessagePort;
  control: Int32Array;
  slot: number;
}

/**
 * Claims blocks of `blockRows` rows from `control[COUNTER]` and computes
 * them, until every row of `shape.m` is claimed.
 */
export function matmulBlocks(
  control: Int32Array,
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  shape: MatmulShape,
  blockRows: number,
): void {
  for (;;) {
    const from = Atomics.add(control, COUNTER, 1) * blockRows;
    if (from >= shape.m) return;
    matmulRows(a, b, out, shape, from, Math.min(shape.m, from + blockRows));
  }
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
      const m = control[at + F.m], n = control[at + F.n];
      const k = control[at + F.k], flags = control[at + F.flags];
      const view = (id: number, offset: number, length: number) =>
        new Float32Array(
          buffers[control[at + id]],
          4 * control[at + offset],
          length,
        );
      matmulBlocks(
        control,
        view(F.a, F.aAt, m * k),
        view(F.b, F.bAt, k * n),
        view(F.out, F.outAt, m * n),
        {
          m,
          n,
          k,
          transA: (flags & TRANS_A) !== 0,
          transB: (flags & TRANS_B) !== 0,
          accumulate: (flags & ACCUMULATE) !== 0,
        },
        control[at + F.blockRows],
      );
    } catch {
      result = FAILED;
    }
    Atomics.store(control, at, result);
    Atomics.notify(control, at);
  }
});
