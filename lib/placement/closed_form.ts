import { checkLoads } from "./_integer_schedule.ts";
import { checkPlacement, type Placement, replicaTable } from "./placement.ts";

/** Most GPUs {@linkcode closedFormOptimum} enumerates (2^20 subsets). */
export const CLOSED_FORM_MAX_GPUS = 20;

/**
 * The closed form of the MicroMoE LP optimum, by enumerating every GPU
 * subset: `m = max over non-empty S of L(S) / |S|`, where `L(S)` is the
 * load of the experts whose replicas all lie in `S` (docs/algorithms.md
 * section 13; with 2 replicas, the maximum induced-subgraph density).
 * `L` is computed for all subsets at once by a sum over subsets
 * (`O(G 2^G)`). A checker for the schedulers and a score for placements.
 *
 * @param loads Tokens per expert (`E` non-negative integers).
 * @param placement Where the replicas are (at most 20 GPUs).
 * @returns The optimum and a subset attaining it (GPU indices, smallest bitmask first).
 * @throws {TypeError} If `loads` has the wrong length.
 * @throws {RangeError} If the placement has more than 20 GPUs or a load is invalid.
 *
 * @example
 * ```ts
 * import { closedFormOptimum, symmetricPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = symmetricPlacement(4, 4, { graph: "ring" }); // expert 0 on GPUs 0, 1
 * assert.deepEqual(closedFormOptimum([9, 1, 1, 1], p), { optimum: 4.5, gpus: [0, 1] });
 * ```
 */
export function closedFormOptimum(
  loads: ArrayLike<number>,
  placement: Placement,
): { optimum: number; gpus: number[] } {
  const p = checkPlacement("placement", placement);
  if (p.gpus > CLOSED_FORM_MAX_GPUS) {
    throw new RangeError(
      `placement.gpus must be at most ${CLOSED_FORM_MAX_GPUS} for the closed form: current value is ${p.gpus}`,
    );
  }
  checkLoads("loads", loads, p.experts);
  const t = replicaTable(p);
  const n = 1 << p.gpus;
  const f = new Float64Array(n);
  for (let e = 0; e < p.experts; e++) {
    let mask = 0;
    for (let r = t.start[e]; r < t.start[e + 1]; r++) mask |= 1 << t.gpu[r];
    f[mask] += loads[e];
  }
  for (let i = 0; i < p.gpus; i++) {
    const bit = 1 << i;
    for (let mask = 0; mask < n; mask++) {
      if (mask & bit) f[mask] += f[mask ^ bit];
    }
  }
  let best = 0, bestMask = n - 1, bestSize = p.gpus;
  for (let mask = 1; mask < n; mask++) {
    let size = 0;
    for (let m = mask; m; m &= m - 1) size++;
    // Compare L/size > best/bestSize without division.
    if (f[mask] * bestSize > best * size) {
      best = f[mask], bestMask = mask, bestSize = size;
    }
  }
  const gpus: number[] = [];
  for (let g = 0; g < p.gpus; g++) if (bestMask & (1 << g)) gpus.push(g);
  return { optimum: best / bestSize, gpus };
}
