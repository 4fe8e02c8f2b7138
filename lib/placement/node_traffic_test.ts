import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { groupsStayOnNodes, nodeTraffic, remotePairs } from "./node_traffic.ts";
import { placementFromPhy2log, staticPlacement } from "./placement.ts";
import { rebalanceExperts } from "./eplb.ts";
import { multiNodeStepTimeMs, stepTimeMs } from "./step_time.ts";
import { HARDWARE } from "./hardware.ts";
import { Rng } from "../scores/rng.ts";

/**
 * Brute-force twin of a dispatch: routes `T` tokens one by one (token t
 * starts on node t mod N), places them with static EP (expert e on GPU
 * e / (E / G)) and counts, per node, the pairs it computes and the
 * distinct tokens it receives from other nodes.
 */
function simulateDispatch(
  E: number,
  G: number,
  gpn: number,
  T: number,
  route: (rng: Rng) => number[],
  seed: number,
): { gpuPairs: Int32Array; remoteTokens: Float64Array; reach: number } {
  const rng = new Rng(seed), N = G / gpn, perGpu = E / G;
  const gpuPairs = new Int32Array(G), remoteTokens = new Float64Array(N);
  let reach = 0;
  for (let t = 0; t < T; t++) {
    const nodes = new Set<number>();
    for (const e of route(rng)) {
      const g = Math.floor(e / perGpu);
      gpuPairs[g]++;
      nodes.add(Math.floor(g / gpn));
    }
    reach += nodes.size;
    for (const n of nodes) if (n !== t % N) remoteTokens[n]++;
  }
  return { gpuPairs, remoteTokens, reach: reach / T };
}

/** `k` distinct items of `n`, uniformly. */
function sample(rng: Rng, n: number, k: number): number[] {
  const pool = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k);
}

describe("nodeTraffic", () => {
  test("node-limited dispatch (DeepSeek-V3's 4 of 8 groups, 2 experts each): the brute-force count of network tokens", () => {
    // 64 experts in 8 groups of 8, 16 GPUs in 8 nodes: group g on node g.
    const E = 64, G = 16, gpn = 2, T = 4000, k = 8, keep = 4;
    // Skewed group popularity, so node loads differ.
    const route = (rng: Rng) =>
      sample(rng, 8, keep).map((g) => (g * 3) % 8).flatMap((g) =>
        sample(rng, 8, k / keep).map((j) => g * 8 + j)
      );
    const twin = simulateDispatch(E, G, gpn, T, route, 3);
    const t = nodeTraffic(twin.gpuPairs, {
      gpusPerNode: gpn,
      tokens: T,
      topK: k,
      nodeLimit: keep,
    });
    assert.equal(twin.reach, keep);
    assert.equal(t.nodesPerToken, keep);
    const total = twin.remoteTokens.reduce((a, b) => a + b);
    // Sources are spread evenly, not exactly (N - 1) / N of every node.
    assert.ok(Math.abs(t.networkTokens / total - 1) < 0.01);
    const busiest = Math.max(...twin.remoteTokens) / gpn;
    assert.ok(Math.abs(t.maxNicTokens / busiest - 1) < 0.02);
  });

  test("no node limit (top-8 of 64 experts anywhere): the estimate within 1 % of the brute-force count", () => {
    const E = 64, G = 16, gpn = 2, T = 4000, k = 8;
    const twin = simulateDispatch(E, G, gpn, T, (rng) => sample(rng, E, k), 5);
    const options = { gpusPerNode: gpn, tokens: T, topK: k, nodeLimit: null };
    const t = nodeTraffic(twin.gpuPairs, { ...options, experts: E });
    // 8 distinct experts of 64, 8 per node, reach 8 (1 - C(56, 8) / C(64, 8))
    // = 5.433 nodes; drawn with replacement, 8 (1 - (7/8)^8) = 5.251.
    assert.ok(Math.abs(twin.reach / 5.4326 - 1) < 0.01);
    assert.ok(Math.abs(t.nodesPerToken / twin.reach - 1) < 0.01);
    const total = twin.remoteTokens.reduce((a, b) => a + b);
    assert.ok(Math.abs(t.networkTokens / total - 1) < 0.01);
    const replaced = nodeTraffic(twin.gpuPairs, options);
    assert.ok(Math.abs(replaced.nodesPerToken / 5.2511 - 1) < 0.01);
  });

  test("one node: no network traffic, every token on its node", () => {
    const t = nodeTraffic([5, 7, 4, 4], {
      gpusPerNode: 4,
      tokens: 10,
      topK: 2,
      nodeLimit: null,
    });
    assert.deepEqual(t, {
      maxGpuPairs: 7,
      maxNicTokens: 0,
      nvlinkPairs: 20,
      networkTokens: 0,
      nodesPerToken: 1,
    });
  });

  test("remotePairs overrides the (N - 1) / N share", () => {
    const t = nodeTraffic([60, 40, 50, 50], {
      gpusPerNode: 2,
      tokens: 100,
      topK: 2,
      nodeLimit: 1,
      remotePairs: [25, 0],
    });
    // node 0: 50 tokens, a quarter remote, over 2 NICs
    assert.equal(t.maxNicTokens, 6.25);
    assert.equal(t.networkTokens, 12.5);
  });

  test("bad input names the argument", () => {
    const o = { gpusPerNode: 3, tokens: 10, topK: 2, nodeLimit: null };
    assert.throws(
      () => nodeTraffic([1, 2, 3, 4], o),
      /gpusPerNode must divide/,
    );
    assert.throws(
      () => nodeTraffic([1, -2], { ...o, gpusPerNode: 1 }),
      /gpuPairs\[1\]/,
    );
    assert.throws(
      () => nodeTraffic([1, 2], { ...o, gpusPerNode: 1, remotePairs: [1] }),
      /remotePairs must have one value per node \(2\)/,
    );
  });
});

describe("remotePairs", () => {
  test("single replicas: (N - 1) / N of each expert's load", () => {
    const p = staticPlacement(8, 4);
    const loads = [8, 4, 12, 0, 6, 2, 10, 20];
    assert.deepEqual([...remotePairs(p, loads, 2)], [12, 19]);
  });

  test("an expert replicated on every node with equal shares sends nothing across", () => {
    // Expert 0 on GPUs 0 and 2 (nodes 0 and 1); experts 1-3 once.
    const p = {
      gpus: 4,
      experts: 4,
      slotsPerGpu: 2,
      slots: new Int32Array([0, 1, 2, -1, 0, 3, -1, -1]),
    };
    assert.deepEqual([...remotePairs(p, [30, 0, 0, 0, 30, 0, 0, 0], 2)], [
      0,
      0,
    ]);
    // Served 50 / 10: node 0 takes 20 pairs from node 1.
    assert.deepEqual([...remotePairs(p, [50, 0, 0, 0, 10, 0, 0, 0], 2)], [
      20,
      0,
    ]);
  });
});

describe("groupsStayOnNodes", () => {
  test("hierarchical EPLB keeps groups on nodes, the global policy need not", () => {
    const rng = new Rng(9);
    const w = Array.from({ length: 64 }, () => Math.exp(2 * rng.normal()));
    const at = (groups: number, nodes: number) =>
      placementFromPhy2log(
        rebalanceExperts([w], { replicas: 80, groups, nodes, gpus: 16 })
          .phy2log[0],
        64,
        16,
      );
    assert.equal(groupsStayOnNodes(at(8, 8), 8, 2), true);
    assert.equal(groupsStayOnNodes(at(1, 1), 8, 2), false);
    assert.equal(groupsStayOnNodes(staticPlacement(64, 16), 8, 2), true);
    assert.equal(groupsStayOnNodes(staticPlacement(64, 16), 4, 2), false);
  });
});

describe("multiNodeStepTimeMs", () => {
  const v3 = {
    hidden: 7168,
    ffnFactor: 2048 / 7168,
    dispatchBytes: 1,
    combineBytes: 2,
    flops: HARDWARE.h800.flops,
    nvlink: HARDWARE.h800.nvlink,
    network: HARDWARE.h800.network,
    overlap: "max" as const,
  };

  test("on one node with equal bytes it is stepTimeMs to the last bit", () => {
    const rng = new Rng(1);
    for (let i = 0; i < 50; i++) {
      const B = rng.int(100000);
      const model = {
        ...v3,
        hidden: 1 + rng.int(8192),
        dispatchBytes: 2,
        combineBytes: 2,
        nvlink: HARDWARE.h100.nvlink,
        flops: HARDWARE.h100.flops,
      };
      assert.equal(
        multiNodeStepTimeMs(B, { maxGpuPairs: B, maxNicTokens: 0 }, model),
        stepTimeMs(B, {
          model: {
            hidden: model.hidden,
            ffnFactor: model.ffnFactor,
            bytesPerElement: 2,
          },
        }),
      );
    }
  });

  test("max against sum: the hand-computed DeepSeek-V3 layer", () => {
    const traffic = { maxGpuPairs: 2048, maxNicTokens: 896 };
    const compute = 3 * 4 * (2048 / 7168) * 7168 ** 2 / v3.flops * 2048;
    const nv = (b: number) => b * 7168 * 2048 / 153e9;
    const ib = (b: number) => b * 7168 * 896 / 50e9;
    const max = compute + 2 * (Math.max(nv(1), ib(1)) + Math.max(nv(2), ib(2)));
    const sum = compute + 2 * (nv(1) + ib(1) + nv(2) + ib(2));
    assert.ok(
      Math.abs(multiNodeStepTimeMs(2048, traffic, v3) - 1e3 * max) < 1e-9,
    );
    assert.ok(
      Math.abs(
        multiNodeStepTimeMs(2048, traffic, { ...v3, overlap: "sum" }) -
          1e3 * sum,
      ) < 1e-9,
    );
  });

  test("bad model fields name the field", () => {
    assert.throws(
      () =>
        multiNodeStepTimeMs(1, { maxGpuPairs: 1, maxNicTokens: 0 }, {
          ...v3,
          network: 0,
        }),
      /model\.network must be a positive number/,
    );
    assert.throws(
      () =>
        multiNodeStepTimeMs(1, { maxGpuPairs: 1, maxNicTokens: 0 }, {
          ...v3,
          overlap: "both" as "max",
        }),
      /model\.overlap/,
    );
  });
});
