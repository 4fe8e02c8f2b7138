import { checkInteger, checkNumber, show } from "../validate.ts";
import { distinctPacking } from "./_distinct_packing.ts";

/** Options of {@linkcode rebalanceExperts} (EPLB's arguments). */
export interface EplbOptions {
  /** Physical expert slots (`num_replicas`), a multiple of `gpus`, at least the experts. */
  replicas: number;
  /** Expert groups (`num_groups`), a divisor of the experts. */
  groups: number;
  /** Server nodes (`num_nodes`); hierarchical policy when it divides `groups`. */
  nodes: number;
  /** GPUs (`num_gpus`), a multiple of `nodes`. */
  gpus: number;
  /**
   * `true` (default): EPLB's answer exactly, which may put two replicas of
   * one expert on one GPU (github deepseek-ai/EPLB issue 22, on Zipf-like
   * loads). `false`: never on one GPU; an expert gets at most one replica
   * per GPU of its node, and the packing skips GPUs that hold the expert
   * (see {@linkcode colocatedReplicas}).
   */
  colocation?: boolean;
}

/** Which of EPLB's two policies a plan takes. */
export type EplbPolicy = "hierarchical" | "global";

/**
 * The policy EPLB takes for `groups` expert groups on `nodes` nodes
 * (DeepSeek's `rebalance_experts`): the hierarchical one (groups packed
 * onto nodes, replicas within each node) where the nodes divide the
 * groups, else the global one (its hierarchical one with 1 group on 1
 * node). {@linkcode rebalanceExperts} follows it.
 *
 * @example
 * ```ts
 * import { eplbPolicy } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(eplbPolicy(8, 8), "hierarchical"); // DeepSeek-V3's prefill
 * assert.equal(eplbPolicy(4, 8), "global");
 * ```
 */
export function eplbPolicy(groups: number, nodes: number): EplbPolicy {
  return groups % nodes === 0 ? "hierarchical" : "global";
}

/** EPLB's result, per layer. */
export interface EplbResult {
  /** `[layers][replicas]`: the logical expert of each physical slot (GPU `i / (replicas / gpus)`). */
  phy2log: number[][];
  /** `[layers][experts][maxCount]`: physical slots of each expert, padded with -1. */
  log2phy: number[][][];
  /** `[layers][experts]`: replica count of each expert. */
  logcnt: number[][];
}

// EPLB computes in float32 (`weight.float()`); round the same way so ties
// between per-replica loads break as they do there.
const f32 = Math.fround;

/**
 * Balanced packing: items sorted by weight, descending, each to the
 * lightest pack that still has room; every pack gets `n / packs` items.
 * Returns the pack and the rank inside it of every item.
 */
function balancedPacking(
  weight: number[],
  packs: number,
  labels?: ArrayLike<number>,
): { pack: Int32Array; rank: Int32Array } {
  if (labels) return distinctPacking(weight, packs, labels);
  const n = weight.length, per = n / packs;
  const pack = new Int32Array(n), rank = new Int32Array(n);
  if (per === 1) {
    for (let i = 0; i < n; i++) pack[i] = i;
    return { pack, rank };
  }
  const order = Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => weight[b] - weight[a] || a - b);
  const load = new Float64Array(packs), items = new Int32Array(packs);
  for (const i of order) {
    let best = -1;
    for (let k = 0; k < packs; k++) {
      if (items[k] < per && (best < 0 || load[k] < load[best])) best = k;
    }
    pack[i] = best;
    rank[i] = items[best]++;
    load[best] = f32(load[best] + weight[i]);
  }
  return { pack, rank };
}

/**
 * Replicates experts: each extra slot to the expert with the largest load
 * per replica, among those with fewer than `cap` replicas.
 */
function replicate(
  weight: number[],
  phy: number,
  cap = Infinity,
): { phy2log: Int32Array; rank: Int32Array; count: Int32Array } {
  const n = weight.length;
  const phy2log = new Int32Array(phy), rank = new Int32Array(phy);
  const count = new Int32Array(n).fill(1);
  for (let i = 0; i < n; i++) phy2log[i] = i;
  for (let i = n; i < phy; i++) {
    let best = count[0] < cap ? 0 : -1;
    for (let j = 1; j < n; j++) {
      if (count[j] >= cap) continue;
      if (
        best < 0 || f32(weight[j] / count[j]) > f32(weight[best] / count[best])
      ) best = j;
    }
    phy2log[i] = best;
    rank[i] = count[best]++;
  }
  return { phy2log, rank, count };
}

function hierarchical(
  w: number[],
  replicas: number,
  groups: number,
  nodes: number,
  gpus: number,
  colocation = true,
): { phy2log: number[]; rank: number[]; logcnt: number[] } {
  const E = w.length, groupSize = E / groups, groupsPerNode = groups / nodes;
  const perGpu = replicas / gpus;
  // Step 1: pack expert groups onto nodes.
  const groupLoad = Array.from({ length: groups }, (_, g) => {
    let s = 0;
    for (let j = 0; j < groupSize; j++) s = f32(s + w[g * groupSize + j]);
    return s;
  });
  const gp = balancedPacking(groupLoad, nodes);
  const log2mlog = new Int32Array(E), mlog2log = new Int32Array(E);
  for (let g = 0; g < groups; g++) {
    const base = (gp.pack[g] * groupsPerNode + gp.rank[g]) * groupSize;
    for (let j = 0; j < groupSize; j++) log2mlog[g * groupSize + j] = base + j;
  }
  for (let e = 0; e < E; e++) mlog2log[log2mlog[e]] = e;
  // Step 2: replicate experts inside each node; step 3: pack to GPUs.
  const perNode = E / nodes, phyPerNode = replicas / nodes;
  const phy2log: number[] = [], rank: number[] = [];
  const mlogcnt = new Int32Array(E);
  for (let node = 0; node < nodes; node++) {
    const tokens = Array.from(
      { length: perNode },
      (_, i) => w[mlog2log[node * perNode + i]],
    );
    const rep = colocation
      ? replicate(tokens, phyPerNode)
      : replicate(tokens, phyPerNode, gpus / nodes);
    for (let i = 0; i < perNode; i++) {
      mlogcnt[node * perNode + i] = rep.count[i];
    }
    const perPhy = Array.from(
      rep.phy2log,
      (m) => f32(tokens[m] / rep.count[m]),
    );
    const pk = colocation
      ? balancedPacking(perPhy, gpus / nodes)
      : balancedPacking(perPhy, gpus / nodes, rep.phy2log);
    const pphy2phy = new Int32Array(phyPerNode);
    for (let i = 0; i < phyPerNode; i++) {
      pphy2phy[pk.pack[i] * perGpu + pk.rank[i]] = i;
    }
    for (let i = 0; i < phyPerNode; i++) {
      const phy = pphy2phy[i];
      phy2log.push(mlog2log[rep.phy2log[phy] + node * perNode]);
      rank.push(rep.rank[phy]);
    }
  }
  const logcnt = Array.from(log2mlog, (m) => mlogcnt[m]);
  return { phy2log, rank, logcnt };
}

/**
 * DeepSeek's Expert Parallelism Load Balancer (EPLB, github
 * deepseek-ai/EPLB, MIT), ported from `eplb.py`: replicate heavy experts
 * and pack the replicas onto GPUs so per-GPU loads even out under an
 * equal split of each expert's load over its replicas. Hierarchical
 * policy when `nodes` divides `groups` (groups packed onto nodes, experts
 * replicated inside each node, replicas packed onto the node's GPUs),
 * else the global policy (the same with one group and one node).
 *
 * @param weight `[layers][experts]` load statistics of each logical expert.
 * @param options `replicas`, `groups`, `nodes`, `gpus`.
 * @returns `phy2log`, `log2phy`, `logcnt` per layer ({@linkcode EplbResult}).
 * @throws {TypeError} If `weight` is not a non-empty rectangular array of numbers.
 * @throws {RangeError} If the sizes do not divide as EPLB requires.
 *
 * @example The EPLB README example
 * ```ts
 * import { rebalanceExperts } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const weight = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
 *   [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]];
 * const r = rebalanceExperts(weight, { replicas: 16, groups: 4, nodes: 2, gpus: 8 });
 * assert.deepEqual(r.phy2log[0], [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]);
 * ```
 */
export function rebalanceExperts(
  weight: number[][],
  options: EplbOptions,
): EplbResult {
  if (!Array.isArray(weight) || weight.length === 0) {
    throw new TypeError(
      `weight must be a non-empty array of layers: current value is ${
        show(weight)
      }`,
    );
  }
  const E = Array.isArray(weight[0]) ? weight[0].length : 0;
  weight.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== E || E === 0) {
      throw new TypeError(
        `weight must be rectangular: layer ${l} has ${
          show(row)
        }, layer 0 ${E} experts`,
      );
    }
    row.forEach((v, e) => checkNumber(`weight[${l}][${e}]`, v, 0));
  });
  const { replicas, groups, nodes, gpus, colocation = true } = options ?? {};
  if (typeof colocation !== "boolean") {
    throw new TypeError(
      `colocation must be a boolean: current value is ${show(colocation)}`,
    );
  }
  checkInteger("gpus", gpus, 1);
  checkInteger("replicas", replicas, E);
  checkInteger("groups", groups, 1);
  checkInteger("nodes", nodes, 1);
  if (replicas % gpus !== 0) {
    throw new RangeError(
      `replicas must be a multiple of gpus (${gpus}): current value is ${replicas}`,
    );
  }
  if (E % groups !== 0) {
    throw new RangeError(
      `groups must divide the number of experts (${E}): current value is ${groups}`,
    );
  }
  const hier = eplbPolicy(groups, nodes) === "hierarchical";
  const [G, N] = hier ? [groups, nodes] : [1, 1];
  if (gpus % N !== 0 || (replicas / N) % (gpus / N) !== 0) {
    throw new RangeError(
      `gpus must be a multiple of nodes (${N}): current value is ${gpus}`,
    );
  }
  if (!colocation && replicas / gpus > E / N) {
    throw new RangeError(
      `replicas must be at most ${gpus * E / N} (${E} experts over ${N} node${
        N === 1 ? "" : "s"
      }, ${gpus} GPUs) without colocation: current value is ${replicas}`,
    );
  }
  const out: EplbResult = { phy2log: [], log2phy: [], logcnt: [] };
  const ranks: number[][] = [];
  for (const row of weight) {
    const r = hierarchical(row.map(f32), replicas, G, N, gpus, colocation);
    out.phy2log.push(r.phy2log);
    out.logcnt.push(r.logcnt);
    ranks.push(r.rank);
  }
  const maxCount = Math.max(...out.logcnt.flat());
  out.phy2log.forEach((row, l) => {
    const table = Array.from(
      { length: E },
      () => new Array<number>(maxCount).fill(-1),
    );
    row.forEach((e, i) => table[e][ranks[l][i]] = i);
    out.log2phy.push(table);
  });
  return out;
}
