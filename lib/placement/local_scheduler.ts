// MicroMoE scheduling across nodes: the balanced schedule of the exact
// scheduler, with each node's tokens sent to its own replicas first.
import { checkInteger } from "../validate.ts";
import { ScheduleFlow } from "./_maxflow.ts";
import { checkLoads, integerSchedule } from "./_integer_schedule.ts";
import { exactSolver } from "./exact_scheduler.ts";
import { checkPlacement, type Placement } from "./placement.ts";
import type { Schedule, Scheduler } from "./types.ts";

/**
 * The exact MicroMoE scheduler on GPUs in nodes, preferring intra-node
 * replicas: the same most loaded GPU (`maxLoad = ceil(optimum)`, the best
 * any integer split can do), and among such schedules one that keeps
 * tokens on their node. Tokens start evenly over the nodes, so node `n`
 * holds `floor(load[e] / N)` tokens of expert `e`; a first max flow sends
 * them to `e`'s replicas on `n` under GPU capacities `ceil(optimum)`, a
 * second completes the schedule from there (augmenting paths only add
 * tokens, rerouting few local ones). A heuristic for the min-cost flow
 * that would maximise local tokens exactly; an expert with replicas on
 * one node gets what the exact scheduler gives it.
 * {@linkcode remotePairs} then counts the pairs that cross nodes.
 *
 * @param placement Where the replicas are.
 * @param gpusPerNode GPUs per node, a divisor of the GPUs.
 * @returns A {@linkcode Scheduler} named `"exact-local"`.
 * @throws {RangeError} If `gpusPerNode` does not divide the GPUs, or the placement is malformed.
 *
 * @example Expert 0 on a GPU of each node: each node computes its own half
 * ```ts
 * import { localFirstScheduler, remotePairs } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // GPUs 0, 1 on node 0, GPUs 2, 3 on node 1; expert 0 on GPUs 0 and 2.
 * const p = { gpus: 4, experts: 4, slotsPerGpu: 2,
 *   slots: new Int32Array([0, 1, 2, -1, 0, 3, -1, -1]) };
 * const s = localFirstScheduler(p, 2).schedule([40, 10, 10, 10]);
 * assert.equal(s.maxLoad, 30); // experts 0, 1, 3 (60 tokens) share GPUs 0 and 2
 * assert.deepEqual([...s.replicaLoads], [20, 10, 10, 0, 20, 10, 0, 0]);
 * // Only the single-replica experts 1, 2, 3 send half their tokens across.
 * assert.deepEqual([...remotePairs(p, s.replicaLoads, 2)], [10, 5]);
 * ```
 */
export function localFirstScheduler(
  placement: Placement,
  gpusPerNode: number,
): Scheduler {
  const p = checkPlacement("placement", placement);
  const gpn = checkInteger("gpusPerNode", gpusPerNode, 1, p.gpus);
  if (p.gpus % gpn !== 0) {
    throw new RangeError(
      `gpusPerNode must divide the GPUs (${p.gpus}): current value is ${gpn}`,
    );
  }
  const N = p.gpus / gpn, E = p.experts;
  const exact = exactSolver(p);
  const flow = new ScheduleFlow(p);
  // Pseudo-experts: (expert, node) pairs holding a replica, each with the
  // expert's replicas on that node.
  const pseudoOf = new Int32Array(E * N).fill(-1);
  const pseudoExpert: number[] = [];
  const local = new Int32Array(p.slots.length).fill(-1);
  for (let i = 0; i < p.slots.length; i++) {
    const e = p.slots[i];
    if (e < 0) continue;
    const key = e * N + Math.floor(Math.floor(i / p.slotsPerGpu) / gpn);
    if (pseudoOf[key] < 0) {
      pseudoOf[key] = pseudoExpert.length;
      pseudoExpert.push(e);
    }
    local[i] = pseudoOf[key];
  }
  // No expert on two nodes: nothing to prefer, the exact schedule it is.
  const spans = pseudoExpert.length > E;
  const localFlow = new ScheduleFlow({
    gpus: p.gpus,
    experts: pseudoExpert.length,
    slotsPerGpu: p.slotsPerGpu,
    slots: local,
  });
  // Replica index of each slot in the full flow.
  const replicaOfSlot = new Int32Array(p.slots.length).fill(-1);
  for (let r = 0; r < flow.replicas; r++) {
    replicaOfSlot[flow.replicaSlot[r]] = r;
  }
  const supply = new Float64Array(pseudoExpert.length);
  const capacity = new Float64Array(p.gpus);
  const init = new Float64Array(flow.replicas);
  return {
    solver: "exact-local",
    placement: p,
    schedule(loads: ArrayLike<number>): Schedule {
      checkLoads("loads", loads, E);
      if (N === 1 || !spans) {
        return { ...exact.scheduler.schedule(loads), solver: "exact-local" };
      }
      // The optimum is p / q with q at most the GPUs: when not an integer,
      // it is at least 1 / q from one, far beyond rounding.
      const optimum = exact.optimum(loads);
      for (let q = 0; q < pseudoExpert.length; q++) {
        supply[q] = Math.floor(loads[pseudoExpert[q]] / N);
      }
      capacity.fill(Math.ceil(optimum));
      localFlow.solve(supply, capacity);
      init.fill(0);
      for (let r = 0; r < localFlow.replicas; r++) {
        init[replicaOfSlot[localFlow.replicaSlot[r]]] = localFlow.flow(r);
      }
      const out = integerSchedule(
        flow,
        p,
        loads,
        capacity,
        optimum,
        "exact-local",
        init,
      );
      if (!out) throw new Error("local-first flow fell short (a bug)");
      return out;
    },
  };
}
