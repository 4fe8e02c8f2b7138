import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { rebalanceExperts } from "./eplb.ts";

// The example of github deepseek-ai/EPLB's README (docs/algorithms.md section 12).
const WEIGHT = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];

/** Max over mean GPU load with each expert's load split equally over its replicas. */
function maxOverMean(
  weight: number[],
  phy2log: number[],
  logcnt: number[],
  gpus: number,
): number {
  const per = phy2log.length / gpus, g = new Array(gpus).fill(0);
  phy2log.forEach((e, i) => g[Math.floor(i / per)] += weight[e] / logcnt[e]);
  return Math.max(...g) / (g.reduce((a, b) => a + b) / gpus);
}

describe("rebalanceExperts", () => {
  const r = rebalanceExperts(WEIGHT, {
    replicas: 16,
    groups: 4,
    nodes: 2,
    gpus: 8,
  });

  test("reproduces the README's phy2log (hierarchical policy)", () => {
    assert.deepEqual(r.phy2log, [
      [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
      [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ]);
  });

  test("max/mean GPU load 1.208 and 1.242 under equal split", () => {
    assert.equal(
      maxOverMean(WEIGHT[0], r.phy2log[0], r.logcnt[0], 8).toFixed(3),
      "1.208",
    );
    assert.equal(
      maxOverMean(WEIGHT[1], r.phy2log[1], r.logcnt[1], 8).toFixed(3),
      "1.242",
    );
  });

  test("log2phy and logcnt agree with phy2log", () => {
    for (let l = 0; l < 2; l++) {
      assert.equal(r.logcnt[l].reduce((a, b) => a + b), 16);
      r.log2phy[l].forEach((slots, e) => {
        const used = slots.filter((s) => s >= 0);
        assert.equal(used.length, r.logcnt[l][e]);
        for (const s of used) assert.equal(r.phy2log[l][s], e);
      });
    }
  });

  test("global policy when nodes do not divide groups: still a valid placement", () => {
    const g = rebalanceExperts(WEIGHT, {
      replicas: 16,
      groups: 4,
      nodes: 3,
      gpus: 8,
    });
    for (let l = 0; l < 2; l++) {
      assert.equal(new Set(g.phy2log[l]).size, 12);
      // 4 extra slots go to the 4 largest loads per replica.
      const twice = g.logcnt[l].flatMap((c, e) => (c === 2 ? [e] : []));
      const top = WEIGHT[l].map((w, e) => [w, e]).sort((a, b) => b[0] - a[0])
        .slice(0, 4)
        .map(([, e]) => e).sort((a, b) => a - b);
      assert.deepEqual(twice, top);
      assert.ok(maxOverMean(WEIGHT[l], g.phy2log[l], g.logcnt[l], 8) < 1.3);
    }
  });

  test("bad sizes are RangeErrors, bad shapes TypeErrors", () => {
    assert.throws(
      () =>
        rebalanceExperts(WEIGHT, {
          replicas: 15,
          groups: 4,
          nodes: 2,
          gpus: 8,
        }),
      RangeError,
    );
    assert.throws(
      () =>
        rebalanceExperts(WEIGHT, {
          replicas: 16,
          groups: 5,
          nodes: 1,
          gpus: 8,
        }),
      RangeError,
    );
    assert.throws(
      () =>
        rebalanceExperts([[1, 2], [3]], {
          replicas: 2,
          groups: 1,
          nodes: 1,
          gpus: 1,
        }),
      TypeError,
    );
    assert.throws(
      () =>
        rebalanceExperts([[1, -2]], {
          replicas: 2,
          groups: 1,
          nodes: 1,
          gpus: 1,
        }),
      RangeError,
    );
  });
});

// DeepSeek's eplb.py itself (data/fixtures/eplb_reference.py, run by
// data/fixtures/make_eplb_fixtures.py with PyTorch) on seeded loads.
describe("rebalanceExperts against the reference eplb.py", () => {
  const fixture = JSON.parse(
    readFileSync(
      new URL("../../data/fixtures/eplb_cases.json", import.meta.url),
      "utf8",
    ),
  ) as {
    cases: {
      name: string;
      replicas: number;
      groups: number;
      nodes: number;
      gpus: number;
      weight: number[][];
      phy2log: number[][];
      logcnt: number[][];
    }[];
  };
  for (const c of fixture.cases) {
    test(`${c.name}: ${c.weight[0].length} experts, ${c.replicas} slots, ${c.groups} groups, ${c.nodes} nodes, ${c.gpus} GPUs`, () => {
      const r = rebalanceExperts(c.weight, c);
      assert.deepEqual(r.phy2log, c.phy2log);
      assert.deepEqual(r.logcnt, c.logcnt);
    });
  }

  test("hierarchical policy at DeepSeek-V3's sizes keeps every expert's replicas, and its group, on one node", () => {
    const v3 = fixture.cases.find((c) => c.name === "v3-8-nodes")!;
    const perNode = v3.replicas / v3.nodes, size = 256 / v3.groups;
    for (const row of v3.phy2log) {
      const node = new Map<number, number>();
      row.forEach((e, i) => {
        const group = Math.floor(e / size), n = Math.floor(i / perNode);
        assert.equal(node.get(group) ?? n, n);
        node.set(group, n);
      });
      assert.equal(node.size, v3.groups);
    }
  });
});
