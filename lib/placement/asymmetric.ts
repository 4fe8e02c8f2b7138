import { checkInteger, checkNumber } from "../validate.ts";
import { Rng } from "../scores/rng.ts";
import { checkLoads } from "./_integer_schedule.ts";
import { exactSolver } from "./exact_scheduler.ts";
import type { Placement } from "./placement.ts";

function copies(slots: Int32Array, g: number, S: number, e: number): number {
  let n = 0;
  for (let s = g * S; s < g * S + S; s++) if (slots[s] === e) n++;
  return n;
}

/** Options of {@linkcode asymmetricPlacement}. */
export interface AsymmetricOptions {
  /** Average replicas per expert (default 2): `E * replicas / G` slots per GPU. */
  replicas?: number;
  /**
   * Physical slots in all, a multiple of `gpus` and at least the experts
   * (DeepSeek-V3: 256 experts + 32 redundant); overrides `replicas`.
   */
  slots?: number;
  /** Monte Carlo swaps tried (default 300). */
  iterations?: number;
  /** Seed of the search (default 0). */
  seed?: number;
}

/**
 * Replica counts for `slots` physical slots: every expert starts with one,
 * each further slot goes to the expert with the largest load per replica
 * (ties to the lowest index), never more than `gpus` replicas.
 *
 * @param loads Expected tokens per expert.
 * @param slots Physical slots in all (at least the number of experts).
 * @param gpus Cap on the replicas of one expert.
 * @returns `Int32Array (experts)` of replica counts summing to `slots`.
 *
 * @example
 * ```ts
 * import { replicaCounts } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...replicaCounts([90, 30, 10], 6, 4)], [4, 1, 1]);
 * ```
 */
export function replicaCounts(
  loads: ArrayLike<number>,
  slots: number,
  gpus: number,
): Int32Array {
  const E = loads.length;
  const count = new Int32Array(E).fill(1);
  for (let i = E; i < slots; i++) {
    let best = -1;
    for (let e = 0; e < E; e++) {
      if (count[e] >= gpus) continue;
      if (best < 0 || loads[e] * count[best] > loads[best] * count[e]) best = e;
    }
    count[best]++;
  }
  return count;
}

/**
 * An asymmetric MicroMoE placement for known loads: replica counts from
 * the greedy on load per replica ({@linkcode replicaCounts}), first
 * locations by a longest-processing-time fill (heaviest replica to the
 * lightest GPU with a free slot that does not hold the expert yet), then a
 * Monte Carlo search that swaps two slots on different GPUs and keeps the
 * swap when the LP optimum (the maximum induced-subgraph density, by the
 * exact scheduler) does not grow. Heavy experts get more replicas, so the
 * replicas of one expert do not share a slot index.
 *
 * @param loads Expected tokens per expert (`E` non-negative integers).
 * @param gpus Number of GPUs `G`.
 * @param options Average replicas (or slots), iterations, seed.
 * @returns A {@linkcode Placement} with `E * replicas / G` (or `slots / G`) slots per GPU.
 * @throws {RangeError} If `E * replicas` is not a multiple of `G`, or a load is invalid.
 *
 * @example A hot expert gets a replica on every GPU
 * ```ts
 * import { asymmetricPlacement, scheduleTokens } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const loads = [60, 10, 10, 10, 5, 5];
 * const p = asymmetricPlacement(loads, 4, { replicas: 2 });
 * assert.equal(p.slots.filter((e) => e === 0).length, 4);
 * assert.equal(scheduleTokens(loads, p).optimum, 25);
 * ```
 */
export function asymmetricPlacement(
  loads: ArrayLike<number>,
  gpus: number,
  options: AsymmetricOptions = {},
): Placement {
  checkInteger("gpus", gpus, 1);
  const E = loads.length;
  checkLoads("loads", loads, E);
  const iterations = checkInteger("iterations", options.iterations ?? 300, 0);
  const rng = new Rng(checkNumber("seed", options.seed ?? 0));
  let total: number;
  if (options.slots !== undefined) {
    total = checkInteger("slots", options.slots, E, E * gpus);
    if (total % gpus !== 0) {
      throw new RangeError(
        `slots must be a multiple of gpus (${gpus}): current value is ${total}`,
      );
    }
  } else {
    const d = checkInteger("replicas", options.replicas ?? 2, 1, gpus);
    if ((E * d) % gpus !== 0) {
      throw new RangeError(
        `experts x replicas (${E} x ${d}) must be a multiple of gpus: current value is ${gpus}`,
      );
    }
    total = E * d;
  }
  const S = total / gpus;
  const count = replicaCounts(loads, gpus * S, gpus);
  const items: number[] = [];
  for (let e = 0; e < E; e++) for (let c = 0; c < count[e]; c++) items.push(e);
  const share = (e: number) => loads[e] / count[e];
  items.sort((a, b) => share(b) - share(a) || a - b);
  const slots = new Int32Array(gpus * S).fill(-1);
  const used = new Int32Array(gpus), weight = new Float64Array(gpus);
  const holds = (g: number, e: number) =>
    slots.subarray(g * S, g * S + used[g]).includes(e);
  for (const e of items) {
    let best = -1;
    for (const allowTwin of [false, true]) {
      for (let g = 0; g < gpus; g++) {
        if (used[g] >= S || (!allowTwin && holds(g, e))) continue;
        if (best < 0 || weight[g] < weight[best]) best = g;
      }
      if (best >= 0) break;
    }
    slots[best * S + used[best]++] = e;
    weight[best] += share(e);
  }
  const placement = { gpus, experts: E, slotsPerGpu: S, slots };
  // Each score starts from the previous one's critical GPU subset: a swap
  // seldom moves it, so Dinkelbach's iteration needs few max flows.
  let hint: Uint8Array | null = null;
  const score = () => {
    const solver = exactSolver({ ...placement, slots: slots.slice() }, hint);
    const m = solver.optimum(loads);
    hint = solver.critical() ?? hint;
    return m;
  };
  let current = score();
  for (let it = 0; it < iterations && gpus > 1; it++) {
    const i = rng.int(slots.length), j = rng.int(slots.length);
    const gi = Math.floor(i / S), gj = Math.floor(j / S);
    const a = slots[i], b = slots[j];
    if (gi === gj || a === b) continue;
    slots[i] = b, slots[j] = a;
    // A swap that puts two replicas of an expert on one GPU wastes a slot.
    const twin = copies(slots, gi, S, b) > 1 || copies(slots, gj, S, a) > 1;
    const next = twin ? Infinity : score();
    if (next <= current) current = next;
    else slots[i] = a, slots[j] = b;
  }
  return placement;
}
