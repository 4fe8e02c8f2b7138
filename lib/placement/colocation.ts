import { checkInteger, show } from "../validate.ts";

/** Replicas of one expert that share a GPU in one layer. */
export interface Colocation {
  /** Layer (index into the `phy2log` rows). */
  layer: number;
  /** GPU holding them. */
  gpu: number;
  /** Logical expert. */
  expert: number;
  /** Replicas of `expert` on `gpu` (2 or more). */
  copies: number;
}

/**
 * Replicas of one expert placed on the same GPU, per layer, in a physical
 * to logical map (`phy2log`, physical slot `i` on GPU
 * `floor(i / (slots / gpus))`). Such a replica is a wasted slot: the GPU
 * computes the expert's share twice over and the replication does not
 * spread its load. DeepSeek's EPLB produces them on Zipf-like loads
 * (github deepseek-ai/EPLB issue 22); `rebalanceExperts` with
 * `colocation: false` avoids them.
 *
 * @param phy2log `[layers][slots]`: the logical expert of each physical slot.
 * @param gpus GPUs, a divisor of the slots.
 * @returns One entry per (layer, GPU, expert) held more than once, in order.
 * @throws {TypeError} If `phy2log` is not an array of rows.
 * @throws {RangeError} If `gpus` does not divide a row's length.
 *
 * @example Expert 2 twice on GPU 1
 * ```ts
 * import { colocatedReplicas } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(colocatedReplicas([[0, 1, 2, 2]], 2), [
 *   { layer: 0, gpu: 1, expert: 2, copies: 2 },
 * ]);
 * ```
 */
export function colocatedReplicas(
  phy2log: ArrayLike<ArrayLike<number>>,
  gpus: number,
): Colocation[] {
  checkInteger("gpus", gpus, 1);
  if (phy2log === null || typeof phy2log !== "object") {
    throw new TypeError(
      `phy2log must be an array of layers: current value is ${show(phy2log)}`,
    );
  }
  const out: Colocation[] = [];
  for (let l = 0; l < phy2log.length; l++) {
    const row = phy2log[l];
    if (row === null || typeof row !== "object") {
      throw new TypeError(
        `phy2log[${l}] must be an array of experts: current value is ${
          show(row)
        }`,
      );
    }
    if (row.length === 0 || row.length % gpus !== 0) {
      throw new RangeError(
        `phy2log[${l}] length must be a positive multiple of gpus (${gpus}): current value is ${row.length}`,
      );
    }
    const per = row.length / gpus;
    for (let g = 0; g < gpus; g++) {
      const count = new Map<number, number>();
      for (let i = g * per; i < (g + 1) * per; i++) {
        count.set(row[i], (count.get(row[i]) ?? 0) + 1);
      }
      const twice = [...count].filter(([, c]) => c > 1).sort((a, b) =>
        a[0] - b[0]
      );
      for (const [expert, copies] of twice) {
        out.push({ layer: l, gpu: g, expert, copies });
      }
    }
  }
  return out;
}
