import { checkInteger, checkNumber } from "../validate.ts";
import { Rng } from "../scores/rng.ts";
import type { Placement } from "./placement.ts";
import { slotLayers } from "./_checks.ts";

/** Options of {@linkcode randomPlacement}. */
export interface RandomPlacementOptions {
  /** Replicas per expert `d` (default 2). */
  replicas?: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
}

/**
 * A seeded random MicroMoE placement: every local slot index holds an
 * independent random partition of the GPUs into groups of `d`, each group
 * one expert's replicas (so replicas share a slot index). Expert `j` sits
 * at slot `floor(j / (G/d))`.
 *
 * @param experts Number of experts `E`; a multiple of `G / d`.
 * @param gpus Number of GPUs `G`, a multiple of `d`.
 * @param options Replicas and seed.
 * @returns A slot-aligned {@linkcode Placement} with `E * d / G` slots per GPU.
 * @throws {RangeError} If the sizes do not fit.
 *
 * @example Same seed, same placement
 * ```ts
 * import { isSlotAligned, randomPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const a = randomPlacement(16, 8, { seed: 3 }), b = randomPlacement(16, 8, { seed: 3 });
 * assert.deepEqual(a.slots, b.slots);
 * assert.ok(isSlotAligned(a));
 * ```
 */
export function randomPlacement(
  experts: number,
  gpus: number,
  options: RandomPlacementOptions = {},
): Placement {
  checkInteger("experts", experts, 1);
  checkInteger("gpus", gpus, 1);
  const d = checkInteger("replicas", options.replicas ?? 2, 1, gpus);
  const rng = new Rng(checkNumber("seed", options.seed ?? 0));
  const S = slotLayers(experts, gpus, d);
  const perSlot = gpus / d;
  const slots = new Int32Array(gpus * S);
  const order = Int32Array.from({ length: gpus }, (_, g) => g);
  for (let s = 0; s < S; s++) {
    rng.shuffle(order);
    for (let i = 0; i < gpus; i++) {
      slots[order[i] * S + s] = s * perSlot + Math.floor(i / d);
    }
  }
  return { gpus, experts, slotsPerGpu: S, slots };
}
