import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  isSlotAligned,
  placementFromPhy2log,
  staticPlacement,
} from "./placement.ts";
import { SYMMETRIC_GRAPHS, symmetricPlacement } from "./cayley.ts";
import { randomPlacement } from "./random.ts";
import { asymmetricPlacement, replicaCounts } from "./asymmetric.ts";
import { exactScheduler } from "./exact_scheduler.ts";
import { Rng } from "../scores/rng.ts";
import type { Placement } from "./placement.ts";

/** Replica GPUs of every expert. */
function replicaSets(p: Placement): number[][] {
  const sets: number[][] = Array.from({ length: p.experts }, () => []);
  p.slots.forEach((e, i) => sets[e].push(Math.floor(i / p.slotsPerGpu)));
  return sets;
}

describe("staticPlacement", () => {
  test("expert j on GPU floor(j / (E/G))", () => {
    const p = staticPlacement(8, 4);
    assert.deepEqual(replicaSets(p), [[0], [0], [1], [1], [2], [2], [3], [3]]);
    assert.throws(() => staticPlacement(6, 4), RangeError);
  });
});

describe("symmetricPlacement", () => {
  for (const graph of SYMMETRIC_GRAPHS) {
    test(`${graph}: every expert has 2 replicas on distinct GPUs at one slot index`, () => {
      const p = symmetricPlacement(32, 8, { graph });
      assert.equal(p.slotsPerGpu, 8);
      assert.ok(isSlotAligned(p));
      for (const set of replicaSets(p)) {
        assert.equal(set.length, 2);
        assert.notEqual(set[0], set[1]);
      }
    });
  }

  test("ring: the edges are exactly {g, g+1}", () => {
    const edges = new Set(
      replicaSets(symmetricPlacement(16, 8, { graph: "ring" })).map((s) =>
        s.sort((a, b) => a - b).join("-")
      ),
    );
    assert.deepEqual(
      [...edges].sort(),
      ["0-1", "0-7", "1-2", "2-3", "3-4", "4-5", "5-6", "6-7"],
    );
  });

  test("bipartite at 8 GPUs is K4,4: 16 distinct even-odd edges", () => {
    const sets = replicaSets(symmetricPlacement(16, 8, { graph: "bipartite" }));
    const edges = new Set(sets.map((s) => s.sort((a, b) => a - b).join("-")));
    assert.equal(edges.size, 16);
    for (const [a, b] of sets) assert.equal((a + b) % 2, 1);
  });

  test("complete at 8 GPUs holds all 28 pairs in its first 28 experts", () => {
    const sets = replicaSets(symmetricPlacement(32, 8));
    const edges = new Set(
      sets.slice(0, 28).map((s) => s.sort((a, b) => a - b).join("-")),
    );
    assert.equal(edges.size, 28);
  });

  test("torus 2 x 4: edges are grid neighbours", () => {
    for (
      const [a, b] of replicaSets(symmetricPlacement(16, 8, { graph: "torus" }))
    ) {
      const [ra, ca, rb, cb] = [a >> 2, a & 3, b >> 2, b & 3];
      const rowStep = ra === rb &&
        (Math.abs(ca - cb) === 1 || Math.abs(ca - cb) === 3);
      const colStep = ca === cb && ra !== rb;
      assert.ok(rowStep || colStep, `${a}-${b}`);
    }
  });

  test("ring with 4 replicas: cyclic blocks", () => {
    const p = symmetricPlacement(4, 8, { graph: "ring", replicas: 4 });
    assert.deepEqual(replicaSets(p)[0], [0, 1, 2, 3]);
    assert.ok(isSlotAligned(p));
    assert.throws(() => symmetricPlacement(8, 8, { replicas: 4 }), RangeError);
  });

  test("sizes that do not fit are RangeErrors", () => {
    assert.throws(
      () => symmetricPlacement(5, 8),
      /multiple of gpus \/ replicas/,
    );
    assert.throws(() => symmetricPlacement(8, 7), RangeError);
    assert.throws(
      () => symmetricPlacement(8, 4, { graph: "star" as never }),
      RangeError,
    );
  });
});

describe("randomPlacement", () => {
  test("seeded, aligned, two distinct GPUs per expert", () => {
    const a = randomPlacement(32, 8, { seed: 5 });
    assert.deepEqual(a, randomPlacement(32, 8, { seed: 5 }));
    assert.notDeepEqual(a.slots, randomPlacement(32, 8, { seed: 6 }).slots);
    assert.ok(isSlotAligned(a));
    for (const [x, y] of replicaSets(a)) assert.notEqual(x, y);
  });
});

describe("asymmetricPlacement", () => {
  test("replica counts follow load per replica", () => {
    // 8 slots, loads 40, 20, 10, 10: 40 -> 2 (20), 40 -> 3 (13.3) vs 20 (tie
    // 20 = 20 goes to the lower index first), 20 -> 2 (10), 40 -> 4 (10).
    assert.deepEqual([...replicaCounts([40, 20, 10, 10], 8, 8)], [4, 2, 1, 1]);
  });

  test("the search never ends worse than its starting fill, and is seeded", () => {
    const rng = new Rng(3);
    const loads = Array.from(
      { length: 16 },
      (_, e) => Math.round(1000 / (e + 1)) + rng.int(5),
    );
    const start = asymmetricPlacement(loads, 8, { iterations: 0 });
    const searched = asymmetricPlacement(loads, 8, {
      iterations: 400,
      seed: 1,
    });
    const opt = (p: Placement) => exactScheduler(p).schedule(loads).optimum;
    assert.ok(opt(searched) <= opt(start));
    assert.deepEqual(
      searched,
      asymmetricPlacement(loads, 8, { iterations: 400, seed: 1 }),
    );
    assert.equal(searched.slots.length, 32);
  });
});

describe("placementFromPhy2log", () => {
  test("slots follow the physical order; a missing expert is an error", () => {
    assert.equal(placementFromPhy2log([0, 1, 2, 2], 3, 2).slotsPerGpu, 2);
    assert.throws(
      () => placementFromPhy2log([0, 0, 2, 2], 3, 2),
      /expert 1 has no replica/,
    );
    assert.throws(() => placementFromPhy2log([0, 1, 2], 3, 2), RangeError);
  });
});
