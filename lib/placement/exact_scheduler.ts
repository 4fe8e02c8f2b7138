import { ScheduleFlow } from "./_maxflow.ts";
import { checkLoads, integerSchedule } from "./_integer_schedule.ts";
import { checkPlacement, type Placement } from "./placement.ts";
import type { Schedule, Scheduler } from "./types.ts";

/**
 * The exact combinatorial MicroMoE scheduler: the LP optimum
 * `m = max over GPU subsets S of L(S) / |S|` (`L(S)` the load of experts
 * whose replicas all lie in `S`) by Dinkelbach iteration on max flows.
 * Start from the lower bound `T = p/q` (total / G, or the critical subset
 * of the previous micro-batch); solve the max flow with supplies
 * `q * load[e]` and GPU capacities `p`, all integers, so the test is exact;
 * if the flow is short, the min cut's source side `S` has `L(S) > T |S|`
 * and `T <- L(S) / |S|`; when the flow carries everything, `T` is optimal.
 * Integer replica loads come from one more max flow with capacities
 * `ceil(m)`, which saturates by the integrality theorem, so
 * `maxLoad === Math.ceil(optimum)` (the best any integer split can do).
 * Synchronous; warm-started across calls by the previous critical subset,
 * which never changes the result, only the number of iterations.
 *
 * @param placement Where the replicas are.
 * @returns A {@linkcode Scheduler} named `"exact"`.
 * @throws {TypeError | RangeError} If the placement is malformed.
 *
 * @example Two experts, both on GPUs 0 and 1; expert 2 only on GPU 1
 * ```ts
 * import { exactScheduler } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = exactScheduler({ gpus: 2, experts: 3, slotsPerGpu: 2,
 *   slots: new Int32Array([0, 1, 1, 2]) });
 * const r = s.schedule([4, 3, 6]);
 * assert.equal(r.optimum, 6.5);
 * assert.equal(r.maxLoad, 7);
 * assert.equal(r.gpuLoads[0] + r.gpuLoads[1], 13);
 * ```
 */
export function exactScheduler(placement: Placement): Scheduler {
  return exactSolver(placement).scheduler;
}

/**
 * The exact scheduler of a placement and its LP optimum alone (no integer
 * schedule: what a placement search needs to score a candidate). `hint`:
 * a GPU subset to start Dinkelbach's iteration from (the critical subset
 * of a similar placement, `critical()`); it never changes the optimum.
 */
export function exactSolver(
  placement: Placement,
  hint: Uint8Array | null = null,
): {
  scheduler: Scheduler;
  optimum(loads: ArrayLike<number>): number;
  critical(): Uint8Array | null;
} {
  const p = checkPlacement("placement", placement);
  const flow = new ScheduleFlow(p);
  const E = p.experts, G = p.gpus;
  const supply = new Float64Array(E), capacity = new Float64Array(G);
  const inS = new Uint8Array(G);
  const start = new Float64Array(flow.replicas);
  let critical: Uint8Array | null = hint && hint.length === G
    ? hint.slice()
    : null;
  // Load of the experts whose replicas all lie in `set`.
  const inside = (loads: ArrayLike<number>, set: Uint8Array): number => {
    let L = 0;
    for (let e = 0; e < E; e++) {
      let all = true;
      for (let r = flow.replicaStart[e]; r < flow.replicaStart[e + 1]; r++) {
        if (!set[flow.replicaGpu[r]]) {
          all = false;
          break;
        }
      }
      if (all) L += loads[e];
    }
    return L;
  };
  // The optimum as num / den; the flow of the last solve is optimal for it.
  let num = 0, den = 1;
  const solve = (loads: ArrayLike<number>): void => {
    let total = 0;
    for (let e = 0; e < E; e++) total += loads[e];
    num = total, den = G;
    if (critical) {
      let n = 0;
      for (let g = 0; g < G; g++) n += critical[g];
      const L = inside(loads, critical);
      if (L * den > num * n) num = L, den = n;
    }
    for (;;) {
      for (let e = 0; e < E; e++) supply[e] = loads[e] * den;
      capacity.fill(num);
      if (flow.solve(supply, capacity) === total * den) break;
      let n = 0;
      for (let g = 0; g < G; g++) {
        inS[g] = flow.reachable(g) ? 1 : 0;
        n += inS[g];
      }
      const L = inside(loads, inS);
      if (!(L * den > num * n)) {
        throw new Error("max-flow cut did not raise the bound (a bug)");
      }
      num = L, den = n;
      critical = critical ?? new Uint8Array(G);
      critical.set(inS);
    }
  };
  const scheduler: Scheduler = {
    solver: "exact",
    placement: p,
    schedule(loads: ArrayLike<number>): Schedule {
      checkLoads("loads", loads, E);
      solve(loads);
      // The optimal flow divided by den and rounded down is a feasible
      // start for the integer flow: only remainders need augmenting.
      for (let r = 0; r < flow.replicas; r++) {
        start[r] = Math.floor(flow.flow(r) / den);
      }
      capacity.fill(Math.floor((num + den - 1) / den));
      const out = integerSchedule(
        flow,
        p,
        loads,
        capacity,
        num / den,
        "exact",
        start,
      );
      if (!out) throw new Error("integer flow at ceil(optimum) fell short");
      return out;
    },
  };
  return {
    scheduler,
    optimum(loads: ArrayLike<number>): number {
      checkLoads("loads", loads, E);
      solve(loads);
      return num / den;
    },
    critical: () => critical,
  };
}
