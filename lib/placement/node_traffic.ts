// The all-to-all traffic of one micro-batch over nodes: what NVLink and
// the network carry when token-expert pairs land on GPUs grouped in nodes
// (docs/algorithms.md section 15, multi-node expert parallelism).
import { checkInteger, checkNumber, show } from "../validate.ts";
import { checkPlacement, type Placement, replicaTable } from "./placement.ts";

/** Options of {@linkcode nodeTraffic}. */
export interface NodeTrafficOptions {
  /** GPUs per node (NVLink inside, the network between); a divisor of the GPUs. */
  gpusPerNode: number;
  /** Tokens of the micro-batch (`T`); the pairs sum to `T * topK`. */
  tokens: number;
  /** Experts per token (`k`). */
  topK: number;
  /**
   * Routed experts `E`: a token's `k` experts are distinct, so without a
   * node limit each draw avoids the experts already drawn (default: draws
   * with replacement).
   */
  experts?: number;
  /**
   * Node-limited dispatch: the most nodes a token reaches (DeepSeek-V3:
   * `topGroups` = 4 when every routing group lives on one node, see
   * {@linkcode groupsStayOnNodes}), or null when a token's experts land
   * anywhere (the independence estimate).
   */
  nodeLimit: number | null;
  /**
   * Pairs each node receives from other nodes ({@linkcode remotePairs});
   * default `P_n * (N - 1) / N`, right when every expert has its replicas
   * on one node.
   */
  remotePairs?: ArrayLike<number>;
}

/** What {@linkcode nodeTraffic} returns: one dispatch's volumes, in tokens. */
export interface NodeTraffic {
  /** Most token-expert pairs one GPU receives over NVLink (`C_max`, FasterMoE's convention: its computed tokens). */
  maxGpuPairs: number;
  /** Most tokens one NIC receives from other nodes: the busiest node's remote tokens over its GPUs. */
  maxNicTokens: number;
  /** Pairs carried by NVLink, all GPUs (`T * k`). */
  nvlinkPairs: number;
  /** Tokens carried by the network, all nodes (each token once per remote node it reaches). */
  networkTokens: number;
  /** Nodes a token reaches, mean over tokens. */
  nodesPerToken: number;
}

/**
 * Whether every routing group's experts, with all their replicas, sit on
 * one node: then group-limited routing (`topGroups` of `groups`) is
 * node-limited dispatch, as in DeepSeek-V3 where groups are nodes.
 *
 * @param placement Where the replicas are.
 * @param groups Routing groups (contiguous blocks of `experts / groups`).
 * @param gpusPerNode GPUs per node.
 * @returns True when each group's slots lie in a single node.
 * @throws {RangeError} If `groups` does not divide the experts or `gpusPerNode` the GPUs.
 *
 * @example Static EP of 16 experts on 4 GPUs, 2 per node
 * ```ts
 * import { groupsStayOnNodes, staticPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = staticPlacement(16, 4); // GPU g holds experts 4g..4g+3
 * assert.equal(groupsStayOnNodes(p, 2, 2), true); // group 0 = experts 0-7 on node 0
 * assert.equal(groupsStayOnNodes(p, 1, 2), false);
 * ```
 */
export function groupsStayOnNodes(
  placement: Placement,
  groups: number,
  gpusPerNode: number,
): boolean {
  const p = checkPlacement("placement", placement);
  checkInteger("groups", groups, 1, p.experts);
  checkInteger("gpusPerNode", gpusPerNode, 1, p.gpus);
  if (p.experts % groups !== 0) {
    throw new RangeError(
      `groups must divide the experts (${p.experts}): current value is ${groups}`,
    );
  }
  if (p.gpus % gpusPerNode !== 0) {
    throw new RangeError(
      `gpusPerNode must divide the GPUs (${p.gpus}): current value is ${gpusPerNode}`,
    );
  }
  const size = p.experts / groups, node = new Int32Array(groups).fill(-1);
  for (let i = 0; i < p.slots.length; i++) {
    const e = p.slots[i];
    if (e < 0) continue;
    const g = Math.floor(e / size);
    const n = Math.floor(Math.floor(i / p.slotsPerGpu) / gpusPerNode);
    if (node[g] < 0) node[g] = n;
    else if (node[g] !== n) return false;
  }
  return true;
}

/**
 * The all-to-all of one micro-batch on GPUs grouped in nodes, DeepEP's
 * way (DeepSeek-V3 report section 3.2.2): a token crosses the network
 * once per remote node it reaches, to the GPU of the same in-node index,
 * which forwards it over NVLink to the GPUs holding its experts. Tokens
 * start evenly over the GPUs (data-parallel attention), so a node's
 * tokens `D_n` come `(N - 1) / N` from other nodes, spread over its
 * `gpusPerNode` NICs. The loads table holds pairs per expert, not tokens,
 * so `D_n` is estimated from the node's pairs `P_n`:
 * with node-limited dispatch, a token reaching a node brings `k / limit`
 * pairs, `D_n = P_n * limit / k`; otherwise the `k` distinct experts of a
 * token fall independently, `D_n = T * (1 - prod_{i<k} (1 - p_n E / (E - i)))`
 * with `p_n = P_n / (T k)` (exact for uniform loads; `E` infinite: draws
 * with replacement, `1 - (1 - p_n)^k`); both capped at `min(P_n, T)`.
 * Of these, the share `remotePairs_n / P_n` comes from other nodes
 * (`(N - 1) / N` when no expert has replicas on two nodes).
 * NVLink carries every pair into its GPU (FasterMoE's `C = B`).
 *
 * @param gpuPairs Token-expert pairs each GPU computes (`Int32Array (gpus)`, a schedule's `gpuLoads`).
 * @param options Nodes, tokens, `topK`, the node limit.
 * @returns The volumes ({@linkcode NodeTraffic}).
 * @throws {RangeError} If a size is out of range or the pairs are not non-negative.
 *
 * @example Two nodes of two GPUs, 100 tokens, top-2, each token on one node
 * ```ts
 * import { nodeTraffic } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const t = nodeTraffic([60, 40, 50, 50], { gpusPerNode: 2, tokens: 100, topK: 2, nodeLimit: 1 });
 * assert.equal(t.maxGpuPairs, 60);
 * // node 0: 100 pairs = 50 tokens, half of them remote, over 2 NICs
 * assert.equal(t.maxNicTokens, 12.5);
 * assert.equal(t.nodesPerToken, 1);
 * ```
 */
export function nodeTraffic(
  gpuPairs: ArrayLike<number>,
  options: NodeTrafficOptions,
): NodeTraffic {
  const G = gpuPairs.length;
  const gpn = checkInteger("gpusPerNode", options.gpusPerNode, 1, G);
  if (G % gpn !== 0) {
    throw new RangeError(
      `gpusPerNode must divide the GPUs (${G}): current value is ${gpn}`,
    );
  }
  const T = checkInteger("tokens", options.tokens, 0);
  const k = checkInteger("topK", options.topK, 1);
  const E = options.experts === undefined
    ? Infinity
    : checkInteger("experts", options.experts, k);
  const limit = options.nodeLimit;
  if (limit !== null && limit !== undefined) {
    checkInteger("nodeLimit", limit, 1);
  } else if (limit !== null) {
    throw new TypeError(
      `nodeLimit must be an integer or null: current value is ${show(limit)}`,
    );
  }
  const N = G / gpn;
  const remotePairs = options.remotePairs;
  if (remotePairs !== undefined && remotePairs.length !== N) {
    throw new RangeError(
      `remotePairs must have one value per node (${N}): current length is ${remotePairs.length}`,
    );
  }
  let maxGpu = 0, pairs = 0, maxNic = 0, network = 0, reached = 0;
  for (let n = 0; n < N; n++) {
    let P = 0;
    for (let g = n * gpn; g < n * gpn + gpn; g++) {
      const x = checkNumber(`gpuPairs[${g}]`, gpuPairs[g], 0);
      P += x;
      if (x > maxGpu) maxGpu = x;
    }
    pairs += P;
    if (N === 1 || T === 0) {
      reached += Math.min(P, T);
      continue;
    }
    const D = Math.min(
      P,
      T,
      limit !== null ? P * limit / k : T * (1 - missed(P / (T * k), k, E)),
    );
    reached += D;
    const share = remotePairs === undefined
      ? (N - 1) / N
      : P > 0
      ? Math.min(1, checkNumber(`remotePairs[${n}]`, remotePairs[n], 0) / P)
      : 0;
    const remote = D * share;
    network += remote;
    if (remote / gpn > maxNic) maxNic = remote / gpn;
  }
  return {
    maxGpuPairs: maxGpu,
    maxNicTokens: maxNic,
    nvlinkPairs: pairs,
    networkTokens: network,
    nodesPerToken: T > 0 ? reached / T : 0,
  };
}

/** Probability that `k` distinct draws of `E` miss a node of share `p`. */
function missed(p: number, k: number, E: number): number {
  let q = 1;
  for (let i = 0; i < k; i++) {
    q *= Math.max(0, 1 - (E === Infinity ? p : p * E / (E - i)));
  }
  return q;
}

/**
 * Pairs each node receives from other nodes when tokens start evenly
 * over the nodes and every node's pairs of an expert go to the expert's
 * replicas on that node first (MicroMoE scheduling across nodes: the
 * schedule fixes each replica's load, the dispatch prefers intra-node
 * replicas): expert `e` with load `L_e` and replica loads `X_{e,n}` on node
 * `n` sends `max(0, X_{e,n} - L_e / N)` pairs into `n` from elsewhere.
 * An expert whose replicas all sit on one node sends `L_e (N - 1) / N`.
 *
 * @param placement Where the replicas are.
 * @param replicaLoads Tokens of each slot (`gpus x slotsPerGpu`, a schedule's `replicaLoads`).
 * @param gpusPerNode GPUs per node.
 * @returns `Float64Array (nodes)`.
 * @throws {RangeError} If the sizes disagree.
 *
 * @example Expert 0 has a replica on each of 2 nodes
 * ```ts
 * import { remotePairs } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // GPUs 0, 1 on node 0, GPUs 2, 3 on node 1; slots: [0, 1], [2, 3], [0, 4], [5, 6]
 * const p = { gpus: 4, experts: 7, slotsPerGpu: 2, slots: new Int32Array([0, 1, 2, 3, 0, 4, 5, 6]) };
 * // Expert 0: 60 tokens, 30 per node, served 40 on node 0 and 20 on node 1.
 * const r = remotePairs(p, [40, 10, 0, 0, 20, 0, 0, 10], 2);
 * // node 0: expert 0 gets 40 - 30 = 10 from node 1, expert 1 gets 5; node 1: expert 6 gets 5.
 * assert.deepEqual([...r], [15, 5]);
 * ```
 */
export function remotePairs(
  placement: Placement,
  replicaLoads: ArrayLike<number>,
  gpusPerNode: number,
): Float64Array {
  const p = checkPlacement("placement", placement);
  checkInteger("gpusPerNode", gpusPerNode, 1, p.gpus);
  if (p.gpus % gpusPerNode !== 0) {
    throw new RangeError(
      `gpusPerNode must divide the GPUs (${p.gpus}): current value is ${gpusPerNode}`,
    );
  }
  if (replicaLoads.length !== p.slots.length) {
    throw new RangeError(
      `replicaLoads must have one value per slot (${p.slots.length}): current length is ${replicaLoads.length}`,
    );
  }
  const out = new Float64Array(p.gpus / gpusPerNode);
  new NodeLocality(p, gpusPerNode).remote(replicaLoads, out);
  return out;
}

/** {@linkcode remotePairs} for one placement, reused across micro-batches. */
export class NodeLocality {
  #start: Int32Array;
  #slot: Int32Array;
  #node: Int32Array;
  #nodes: number;
  #x: Float64Array;

  /** Prepares the replica table of `p` on nodes of `gpusPerNode` GPUs. */
  constructor(p: Placement, gpusPerNode: number) {
    const t = replicaTable(p);
    this.#start = t.start;
    this.#slot = t.slot;
    this.#node = Int32Array.from(t.gpu, (g) => Math.floor(g / gpusPerNode));
    this.#nodes = p.gpus / gpusPerNode;
    this.#x = new Float64Array(this.#nodes);
  }

  /** Writes the pairs each node receives from other nodes into `out` (length: nodes). */
  remote(replicaLoads: ArrayLike<number>, out: Float64Array): void {
    const N = this.#nodes, x = this.#x, start = this.#start;
    const slot = this.#slot, node = this.#node;
    out.fill(0);
    for (let e = 0; e + 1 < start.length; e++) {
      const a = start[e], b = start[e + 1];
      if (b - a === 1) {
        // One replica: the other nodes' share of its tokens is remote.
        out[node[a]] += replicaLoads[slot[a]] * (N - 1) / N;
        continue;
      }
      let L = 0;
      for (let r = a; r < b; r++) {
        x[node[r]] += replicaLoads[slot[r]];
        L += replicaLoads[slot[r]];
      }
      for (let r = a; r < b; r++) {
        const n = node[r];
        if (x[n] > L / N) out[n] += x[n] - L / N;
        x[n] = -Infinity; // counted once per node
      }
      for (let r = a; r < b; r++) x[node[r]] = 0;
    }
  }
}
