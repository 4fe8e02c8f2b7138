// The all-to-all traffic of one micro-batch over nodes: what NVLink and
// the network carry when token-expert pairs land on GPUs grouped in nodes
// (docs/algorithms.md section 15, multi-node expert parallelism).
import { checkInteger, checkNumber, show } from "../validate.ts";
import { checkPlacement, type Placement } from "./placement.ts";

/** Options of {@linkcode nodeTraffic}. */
export interface NodeTrafficOptions {
  /** GPUs per node (NVLink inside, the network between); a divisor of the GPUs. */
  gpusPerNode: number;
  /** Tokens of the micro-batch (`T`); the pairs sum to `T * topK`. */
  tokens: number;
  /** Experts per token (`k`). */
  topK: number;
  /**
   * Node-limited dispatch: the most nodes a token reaches (DeepSeek-V3:
   * `topGroups` = 4 when every routing group lives on one node, see
   * {@linkcode groupsStayOnNodes}), or null when a token's experts land
   * anywhere (the independence estimate).
   */
  nodeLimit: number | null;
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
 * pairs, `D_n = P_n * limit / k`; otherwise pairs fall independently,
 * `D_n = T * (1 - (1 - P_n / (T k))^k)`; both capped at `min(P_n, T)`.
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
  const limit = options.nodeLimit;
  if (limit !== null && limit !== undefined) {
    checkInteger("nodeLimit", limit, 1);
  } else if (limit !== null) {
    throw new TypeError(
      `nodeLimit must be an integer or null: current value is ${show(limit)}`,
    );
  }
  const N = G / gpn;
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
      limit !== null
        ? P * limit / k
        : T * (1 - Math.pow(Math.max(0, 1 - P / (T * k)), k)),
    );
    reached += D;
    const remote = D * (N - 1) / N;
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
