import { show } from "../validate.ts";
import { checkPlacement, type Placement, replicaTable } from "./placement.ts";
import { checkInput } from "./_checks.ts";

/** Tokens of one expert sent from one GPU to another. */
export interface Transfer {
  /** GPU the tokens start on. */
  from: number;
  /** GPU holding the replica that computes them. */
  to: number;
  /** The expert. */
  expert: number;
  /** How many tokens. */
  tokens: number;
}

/** The all-to-all of one micro-batch. */
export interface Dispatch {
  /** Every cross-GPU movement, in expert order. */
  transfers: Transfer[];
  /** Tokens that cross GPUs (the all-to-all volume, one direction). */
  volume: number;
  /** Tokens computed on the GPU where they start. */
  local: number;
  /** `local / (local + volume)`, 1 when there are no tokens. */
  localShare: number;
  /** Tokens each GPU sends, `Int32Array (gpus)`. */
  send: Int32Array;
  /** Tokens each GPU receives, `Int32Array (gpus)`. */
  recv: Int32Array;
}

/**
 * Token-to-replica routing with locality (MicroMoE, Zhao et al., arXiv
 * 2511.16947, Algorithm 1): given where each expert's tokens start
 * (`input[e][g]`) and how many tokens each replica computes
 * (`replicaLoads`), first keep tokens on their own GPU up to the local
 * replica's share (no communication), then hand the rest out in GPU
 * order to the replicas with room left.
 *
 * @param input `[experts][gpus]`: tokens routed to expert `e` that start on GPU `g`.
 * @param replicaLoads `(gpus x slotsPerGpu)` tokens per replica slot
 * (a {@linkcode Schedule}'s `replicaLoads`); per expert they must sum to
 * `sum_g input[e][g]`.
 * @param placement Where the replicas are.
 * @returns The transfers, volume, local share, per-GPU send and receive.
 * @throws {TypeError} If a shape is wrong.
 * @throws {RangeError} If an expert's input and replica loads differ.
 *
 * @example Expert 0 on GPUs 0 and 1; GPU 0 holds 5 of its 6 tokens but computes 3
 * ```ts
 * import { dispatchTokens } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = { gpus: 2, experts: 1, slotsPerGpu: 1, slots: new Int32Array([0, 0]) };
 * const d = dispatchTokens([[5, 1]], new Int32Array([3, 3]), p);
 * assert.deepEqual(d.transfers, [{ from: 0, to: 1, expert: 0, tokens: 2 }]);
 * assert.equal(d.localShare, 4 / 6);
 * ```
 */
export function dispatchTokens(
  input: ArrayLike<ArrayLike<number>>,
  replicaLoads: ArrayLike<number>,
  placement: Placement,
): Dispatch {
  const p = checkPlacement("placement", placement);
  const E = p.experts, G = p.gpus;
  checkInput(input, E, G);
  if (replicaLoads?.length !== p.slots.length) {
    throw new TypeError(
      `replicaLoads must have gpus x slotsPerGpu = ${p.slots.length} entries: current value is ${
        show(replicaLoads)
      }`,
    );
  }
  const t = replicaTable(p);
  const left = new Float64Array(G), room = new Float64Array(t.gpu.length);
  const send = new Int32Array(G), recv = new Int32Array(G);
  const transfers: Transfer[] = [];
  let volume = 0, local = 0;
  for (let e = 0; e < E; e++) {
    const row = input[e];
    let supply = 0, demand = 0;
    for (let g = 0; g < G; g++) left[g] = row[g], supply += row[g];
    const r0 = t.start[e], r1 = t.start[e + 1];
    for (let r = r0; r < r1; r++) {
      room[r] = replicaLoads[t.slot[r]];
      demand += room[r];
      // Phase 1: tokens already on the replica's GPU stay there.
      const keep = Math.min(left[t.gpu[r]], room[r]);
      left[t.gpu[r]] -= keep, room[r] -= keep, local += keep;
    }
    if (supply !== demand) {
      throw new RangeError(
        `replicaLoads of expert ${e} must sum to its input tokens (${supply}): current sum is ${demand}`,
      );
    }
    // Phase 2: the rest, in GPU order, to replicas in order.
    let r = r0;
    for (let g = 0; g < G; g++) {
      while (left[g] > 0) {
        while (room[r] === 0) r++;
        const n = Math.min(left[g], room[r]);
        transfers.push({ from: g, to: t.gpu[r], expert: e, tokens: n });
        left[g] -= n, room[r] -= n;
        send[g] += n, recv[t.gpu[r]] += n, volume += n;
      }
    }
  }
  const total = local + volume;
  return {
    transfers,
    volume,
    local,
    localShare: total === 0 ? 1 : local / total,
    send,
    recv,
  };
}
