// A routing worker of the "cpu-threads" route kernel (route_threads.ts). It
// blocks in Atomics.wait on its slot of the shared control array. The main thread
// writes the job (row range, sizes, settings and the ids of the shared
// buffers to use) into the slot, then raises it. Buffers are registered
// once, by a message the worker drains with receiveMessageOnPort: its
// event loop never runs, and handing a large SharedArrayBuffer over costs
// time in proportion to its size, so it must not happen per job.
//
// A job on scores in the shared heap (F.heap = 1) names addresses in that
// memory instead of buffers: the worker routes them in place on its
// instance of the threads module, made when the heap is registered (the
// memory and the top of this worker's stack in it).
import type { Registration } from "./_pool_workers.ts";
import {
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
} from "node:worker_threads";
import { BLOCK_ROWS, routeBlocks } from "./_route_blocks.ts";
import { heapBlocks } from "./_route_wasm_rows.ts";
import type { RowSettings } from "./_route_rows.ts";
import {
  type SharedWasmInstance,
  sharedWasmInstance,
} from "../wasm/runtime.ts";

/** Slot states. */
export const IDLE = 0, POSTED = 1, DONE = 2, FAILED = 3, RUNNING = 4;
/** Int32 fields of a slot (the slot is `SLOT` ints wide). */
export const F = {
  state: 0,
  data: 1,
  outE: 2,
  outW: 3,
  loads: 4,
  bias: 5,
  from: 6, // unused: rows are claimed in blocks from COUNTER
  to: 7,
  experts: 8,
  k: 9,
  multiply: 10,
  normalize: 11,
  /** Out: flat index of a NaN or +Infinity score met, or -1. */
  bad: 12,
  groups: 13,
  topGroups: 14,
  perGroup: 15,
  /** 1: the WebAssembly SIMD rows (where the engine runs them), 0: TypeScript. */
  wasm: 16,
  /** Float32 entries of the data buffer before the scores. */
  dataOffset: 17,
  /** 1: a job in place in the shared heap, at the addresses below. */
  heap: 18,
  ptrScores: 19,
  ptrExperts: 20,
  ptrWeights: 21,
  ptrBias: 22,
  ptrLoads: 23,
  ptrState: 24,
  ptrScratch: 25,
} as const;
/** Cell of the control array that counts the blocks of rows claimed. */
export const COUNTER = 1;
/** Width of a slot in the control array, in Int32 entries. */
export const SLOT = 26;

/** A shared heap handed to a worker once: its memory and the worker's stack. */
export interface HeapRegistration {
  heap: WebAssembly.Memory;
  /** Address above the worker's stack in the heap. */
  stackTop: number;
}

/** The first message a worker gets: its port, control arrays and slot. */
export interface WorkerInit {
  port: MessagePort;
  control: Int32Array;
  /** One float64 per slot: the weight scale. */
  scales: Float64Array;
  slot: number;
}

parentPort?.once("message", (init: WorkerInit) => {
  const { port, control, scales, slot } = init;
  const at = slot * SLOT;
  const buffers: SharedArrayBuffer[] = [];
  let rt: SharedWasmInstance | undefined;
  for (;;) {
    // Take the job (POSTED -> RUNNING) unless the caller withdrew it.
    let state = Atomics.compareExchange(control, at, POSTED, RUNNING);
    while (state !== POSTED) {
      Atomics.wait(control, at, state);
      state = Atomics.compareExchange(control, at, POSTED, RUNNING);
    }
    for (
      let m = receiveMessageOnPort(port);
      m;
      m = receiveMessageOnPort(port)
    ) {
      const r = m.message as Registration | HeapRegistration;
      if ("heap" in r) rt = sharedWasmInstance(r.heap, r.stackTop);
      else buffers[r.id] = r.buffer;
    }
    let result = DONE;
    try {
      const E = control[at + F.experts], k = control[at + F.k];
      const to = control[at + F.to];
      const bias = control[at + F.bias];
      if (control[at + F.heap] === 1) {
        if (rt === undefined) throw new Error("no shared heap instance");
        const ptr = (field: number) => control[at + field] >>> 0;
        control[at + F.bad] = heapBlocks(
          control,
          COUNTER,
          BLOCK_ROWS,
          rt,
          {
            scores: ptr(F.ptrScores),
            experts: ptr(F.ptrExperts),
            weights: ptr(F.ptrWeights),
            bias: ptr(F.ptrBias),
            loads: ptr(F.ptrLoads),
            state: ptr(F.ptrState),
            scratch: ptr(F.ptrScratch),
          },
          to,
          E,
          k,
          jobSettings(control, at, scales[slot], undefined),
        );
      } else {
        const loads = new Int32Array(
          buffers[control[at + F.loads]],
          4 * slot * E,
          E,
        );
        loads.fill(0);
        control[at + F.bad] = routeBlocks(
          control,
          COUNTER,
          new Float32Array(
            buffers[control[at + F.data]],
            4 * control[at + F.dataOffset],
            to * E,
          ),
          E,
          k,
          jobSettings(
            control,
            at,
            scales[slot],
            bias < 0 ? undefined : new Float64Array(buffers[bias], 0, E),
          ),
          to,
          new Int32Array(buffers[control[at + F.outE]]),
          new Float32Array(buffers[control[at + F.outW]]),
          loads,
          control[at + F.wasm] === 1 ? "wasm" : "cpu",
        );
      }
    } catch {
      result = FAILED;
    }
    Atomics.store(control, at, result);
    Atomics.notify(control, at);
  }
});

/** The row settings of the job in the slot at `at`, with its bias. */
function jobSettings(
  control: Int32Array,
  at: number,
  scale: number,
  bias: Float64Array | undefined,
): RowSettings {
  return {
    bias,
    multiply: control[at + F.multiply] === 1,
    normalize: control[at + F.normalize] === 1,
    scale,
    groups: control[at + F.groups],
    topGroups: control[at + F.topGroups],
    perGroup: control[at + F.perGroup],
  };
}
