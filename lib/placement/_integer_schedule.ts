// Shared by every token scheduler: the check of per-expert loads and the
// integer replica loads from a max flow.
import { show } from "../validate.ts";
import type { ScheduleFlow } from "./_maxflow.ts";
import type { Placement } from "./placement.ts";
import type { Schedule } from "./types.ts";

/** Checks per-expert loads: non-negative integers, one per expert. */
export function checkLoads(
  name: string,
  loads: unknown,
  experts: number,
): ArrayLike<number> {
  if (
    !(Array.isArray(loads) || ArrayBuffer.isView(loads)) ||
    (loads as ArrayLike<number>).length !== experts
  ) {
    throw new TypeError(
      `${name} must be an array of ${experts} expert loads: current value is ${
        show(loads)
      }`,
    );
  }
  const l = loads as ArrayLike<number>;
  for (let e = 0; e < experts; e++) {
    const v = l[e];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new RangeError(
        `${name} must hold non-negative integers: value at expert ${e} is ${
          show(v)
        }`,
      );
    }
  }
  return l;
}

/**
 * Integer replica loads from a max flow with GPU capacities `capacity`
 * (integers) and the expert loads as supplies; `init` (integer replica
 * flows within both bounds) is where the flow starts. Returns null when
 * the flow does not carry every token.
 */
export function integerSchedule(
  flow: ScheduleFlow,
  placement: Placement,
  loads: ArrayLike<number>,
  capacity: Float64Array,
  optimum: number,
  solver: string,
  init?: ArrayLike<number>,
): Schedule | null {
  let total = 0;
  for (let e = 0; e < flow.experts; e++) total += loads[e];
  if (flow.solve(loads, capacity, init) !== total) return null;
  const replicaLoads = new Int32Array(placement.slots.length);
  const gpuLoads = new Int32Array(placement.gpus);
  for (let r = 0; r < flow.replicas; r++) {
    const x = flow.flow(r);
    replicaLoads[flow.replicaSlot[r]] += x;
    gpuLoads[flow.replicaGpu[r]] += x;
  }
  let maxLoad = 0;
  for (let g = 0; g < placement.gpus; g++) {
    if (gpuLoads[g] > maxLoad) maxLoad = gpuLoads[g];
  }
  return { optimum, maxLoad, gpuLoads, replicaLoads, solver };
}
