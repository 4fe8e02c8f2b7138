import type { Placement } from "./placement.ts";

/** The token schedule of one micro-batch. */
export interface Schedule {
  /** The LP optimum: the smallest possible maximum GPU load with fractional tokens. */
  optimum: number;
  /** Maximum of `gpuLoads`; always `Math.ceil(optimum)` (within 1e-7 for the LP solvers). */
  maxLoad: number;
  /** Tokens each GPU computes, `Int32Array (gpus)`. */
  gpuLoads: Int32Array;
  /**
   * Tokens each replica computes, `Int32Array (gpus x slotsPerGpu)` like
   * `placement.slots`; an expert's replica loads sum to its load.
   */
  replicaLoads: Int32Array;
  /** The solver that produced it. */
  solver: string;
}

/** A stateful scheduler for one placement (warm-started across micro-batches). */
export interface Scheduler {
  /** Solver name. */
  readonly solver: string;
  /** The placement it schedules on. */
  readonly placement: Placement;
  /** Schedules one micro-batch: `loads` has one non-negative integer per expert. */
  schedule(loads: ArrayLike<number>): Schedule;
  /** Frees native memory (HiGHS); a no-op elsewhere. */
  dispose?(): void;
}
