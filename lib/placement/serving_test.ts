// EPLB as the serving engines use it: colocated replicas and the
// colocation-free variant, migration volume, the engines' balance figures
// and the offline advice. Pinned values are computed by hand in comments.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rebalanceExperts } from "./eplb.ts";
import { distinctPacking } from "./_distinct_packing.ts";
import { colocatedReplicas } from "./colocation.ts";
import {
  gpuLoadsEqualSplit,
  sglangUtilizationRate,
  trtllmImbalanceRatio,
  vllmBalancedness,
} from "./engine_balance.ts";
import { migrationVolume, shouldReplan } from "./migration.ts";
import { adviseRecording } from "./advise.ts";
import { stepTimeMs } from "./step_time.ts";
import { Rng } from "../scores/rng.ts";

/** Zipf loads `1e5 / (rank + 1)^s`, shuffled over the experts by `seed`. */
function zipf(E: number, s: number, seed: number): number[] {
  const rng = new Rng(seed);
  const w = Array.from(
    { length: E },
    (_, e) => Math.round(1e5 / (e + 1) ** s),
  );
  for (let i = E - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [w[i], w[j]] = [w[j], w[i]];
  }
  return w;
}

function maxOverMean(w: number[], phy2log: number[], gpus: number): number {
  const g = gpuLoadsEqualSplit(w, phy2log, gpus);
  return Math.max(...g) / (g.reduce((a, b) => a + b) / gpus);
}

// [experts, replicas, gpus, nodes, groups]: DeepSeek-V3's 256 + 32 on 32
// GPUs in 2 nodes (EPLB issue 22's sizes), and smaller ones.
const SIZES = [
  [64, 96, 16, 1, 1],
  [64, 80, 16, 2, 8],
  [256, 288, 32, 2, 16],
  [32, 48, 8, 1, 1],
] as const;

describe("colocated replicas", () => {
  test("found per layer and GPU, with their count", () => {
    // layer 0: GPU 0 [3, 3, 1], GPU 1 [0, 2, 3]; layer 1: GPU 1 [2, 2, 2]
    assert.deepEqual(
      colocatedReplicas([[3, 3, 1, 0, 2, 3], [0, 1, 3, 2, 2, 2]], 2),
      [
        { layer: 0, gpu: 0, expert: 3, copies: 2 },
        { layer: 1, gpu: 1, expert: 2, copies: 3 },
      ],
    );
    assert.deepEqual(colocatedReplicas([[0, 1, 2, 3]], 2), []);
    assert.throws(() => colocatedReplicas([[0, 1, 2]], 2), RangeError);
  });

  test("EPLB colocates on Zipf loads; the variant never does and stays within 5 % of its max/mean", () => {
    let colocating = 0, identical = 0;
    for (const [E, R, G, N, groups] of SIZES) {
      for (let seed = 0; seed < 20; seed++) {
        const w = zipf(E, 0.8 + 0.1 * (seed % 8), seed);
        const options = { replicas: R, groups, nodes: N, gpus: G };
        const faithful = rebalanceExperts([w], options);
        const free = rebalanceExperts([w], { ...options, colocation: false });
        assert.deepEqual(colocatedReplicas(free.phy2log, G), []);
        assert.equal(new Set(free.phy2log[0]).size, E);
        assert.equal(free.logcnt[0].reduce((a, b) => a + b), R);
        const ratio = maxOverMean(w, free.phy2log[0], G) /
          maxOverMean(w, faithful.phy2log[0], G);
        assert.ok(ratio < 1.05, `${E} experts, seed ${seed}: ${ratio}`);
        if (colocatedReplicas(faithful.phy2log, G).length > 0) colocating++;
        else {
          // Where EPLB does not colocate, the variant is EPLB itself.
          assert.deepEqual(free, faithful);
          identical++;
        }
      }
    }
    // The loads are adversarial: most of the 80 cases colocate.
    assert.ok(colocating > 60, `${colocating} colocating cases`);
    assert.ok(identical > 0);
  });

  test("random small cases, hierarchical or not: never colocated, every expert placed, the moves exercised", () => {
    // Brute-force style sweep over sizes where the greedy often finds every
    // GPU lacking the expert full, so the repair move runs.
    const rng = new Rng(3);
    let cases = 0;
    for (
      const [E, G, N, groups] of [[4, 2, 1, 1], [6, 3, 1, 1], [8, 4, 2, 4], [
        8,
        4,
        1,
        2,
      ]]
    ) {
      const perNode = E / N;
      for (let S = E / G; S <= perNode; S++) {
        for (let seed = 0; seed < 40; seed++) {
          const w = Array.from(
            { length: E },
            () => Math.floor(1000 * rng.uniform() ** 4),
          );
          const r = rebalanceExperts([w], {
            replicas: S * G,
            groups,
            nodes: N,
            gpus: G,
            colocation: false,
          });
          assert.deepEqual(colocatedReplicas(r.phy2log, G), [], `${w}`);
          assert.equal(new Set(r.phy2log[0]).size, E);
          r.logcnt[0].forEach((c) => assert.ok(c >= 1 && c <= G / N));
          cases++;
        }
      }
    }
    assert.ok(cases > 200);
  });

  test("the packing's repair move, traced by hand", () => {
    // Labels A..G as 0..6; e (5) has three items of weight 1 on 3 packs of 3.
    // A -> P0 (10), B -> P1 (9), C, D, F -> P2 (3, 5, 7: full); e -> P1
    // (10), e -> P0 (11); the third e finds P2, the only pack without e,
    // full: an item of P2 moves to P1, the lightest pack with room. Moving
    // C costs max(10 + 3, 7 - 3 + 1) = 13, D or F max(12, 6) = 12: D (the
    // first found) moves, e takes its place. G -> P0, the lightest with room.
    const [A, B, C, D, F, e, G] = [0, 1, 2, 3, 4, 5, 6];
    const labels = [A, B, C, D, F, e, e, e, G];
    const weight = [10, 9, 3, 2, 2, 1, 1, 1, 0.5];
    const { pack, rank } = distinctPacking(weight, 3, labels);
    assert.deepEqual([...pack], [0, 1, 2, 1, 2, 1, 0, 2, 0]);
    // Rank: position inside the pack after the move (P2: C, F, e).
    assert.deepEqual([...rank], [0, 0, 0, 2, 1, 1, 1, 2, 2]);
  });

  test("a hot expert with more replicas than GPUs: capped at one per GPU", () => {
    // 4 experts, 8 slots on 2 GPUs: faithful gives expert 0 five replicas.
    const w = [[1000, 1, 1, 1]];
    const opt = { replicas: 8, groups: 1, nodes: 1, gpus: 2 };
    assert.equal(rebalanceExperts(w, opt).logcnt[0][0], 5);
    const free = rebalanceExperts(w, { ...opt, colocation: false });
    assert.deepEqual(free.logcnt[0], [2, 2, 2, 2]);
    assert.deepEqual(colocatedReplicas(free.phy2log, 2), []);
    assert.throws(
      () => rebalanceExperts(w, { ...opt, replicas: 10, colocation: false }),
      /replicas must be at most 8/,
    );
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => rebalanceExperts(w, { ...opt, colocation: "no" as any }),
      TypeError,
    );
  });
});

describe("engine balance figures", () => {
  test("equal split over replicas", () => {
    // expert 0 (6 tokens) on GPUs 0 and 1: [3 + 2, 3 + 4]
    assert.deepEqual([...gpuLoadsEqualSplit([6, 2, 4], [0, 1, 0, 2], 2)], [
      5,
      7,
    ]);
    assert.throws(
      () => gpuLoadsEqualSplit([6, 2, 4], [0, 1, 0, 1], 2),
      /expert 2/,
    );
  });

  test("vLLM balancedness: sum of per-layer means over sum of per-layer maxima", () => {
    // layer 0 [2, 4, 6]: mean 4, max 6; layer 1 [1, 1, 10]: mean 4, max 10
    assert.equal(vllmBalancedness([[2, 4, 6], [1, 1, 10]]), 8 / 16);
    assert.equal(vllmBalancedness([[0, 0]]), 0);
  });

  test("SGLang utilisation rate: mean over layers of (mean + 1e-5) / (max + 1e-5)", () => {
    const want = ((4 + 1e-5) / (6 + 1e-5) + (4 + 1e-5) / (10 + 1e-5)) / 2;
    assert.equal(sglangUtilizationRate([[2, 4, 6], [1, 1, 10]]), want);
    assert.equal(sglangUtilizationRate([[0, 0]]), 1);
  });

  test("TensorRT-LLM imbalance ratio: mean over layers of the mean over iterations of max/mean - 1", () => {
    // layer 0: 6/4 - 1 = 0.5 and 2/2 - 1 = 0 -> 0.25
    // layer 1: 10/4 - 1 = 1.5 and 3/2 - 1 = 0.5 -> 1
    const r = trtllmImbalanceRatio([
      [[2, 4, 6], [1, 1, 10]],
      [[2, 2, 2], [1, 2, 3]],
    ]);
    assert.equal(r, (0.25 + 1) / 2);
    assert.throws(() => trtllmImbalanceRatio([]), TypeError);
  });
});

describe("migration", () => {
  test("experts received per GPU, bytes, slots rewritten", () => {
    // GPU 0: [0, 1, 2] -> [2, 3, 3]: receives 3 once (the second 3 is a local copy)
    // GPU 1: [3, 4, 5] -> [4, 0, 1]: receives 0 and 1
    const m = migrationVolume(
      [[0, 1, 2, 3, 4, 5]],
      [[2, 3, 3, 4, 0, 1]],
      2,
      10,
    );
    assert.deepEqual(m.received, [[1, 2]]);
    assert.equal(m.experts, 3);
    assert.equal(m.bytes, 30);
    assert.equal(m.slotsChanged, 6);
    const same = migrationVolume([[0, 1, 2, 3]], [[1, 0, 3, 2]], 2);
    assert.equal(same.experts, 0);
    assert.equal(same.slotsChanged, 4);
    assert.throws(() => migrationVolume([[0, 1]], [[0, 1, 2]], 1), TypeError);
  });

  test("the threshold policy re-plans only above the threshold", () => {
    assert.equal(shouldReplan(16, 10, 0.5), true); // 60 %
    assert.equal(shouldReplan(15, 10, 0.5), false); // exactly 50 %: not above
    assert.equal(shouldReplan(10, 10, 0), false);
    assert.throws(() => shouldReplan(10, 0, 0), RangeError);
  });
});

describe("adviseRecording", () => {
  // 4 experts on 2 GPUs; experts 3 and 2 hot in turn. Static EP: GPU 0
  // holds experts 0, 1 and GPU 1 experts 2, 3: [4, 12] on every step.
  const steps = [
    [[2, 2, 2, 10]],
    [[2, 2, 10, 2]],
    [[2, 2, 2, 10]],
  ];
  const a = adviseRecording(steps, {
    gpus: 2,
    replicas: 6,
    intervals: [1, 2, 5],
    expertBytes: 100,
    iterations: 0,
  });
  const by = (key: string, interval?: number) =>
    a.strategies.find((s) => s.key === key && s.interval === interval)!;
  const eplb = (w: number[]) =>
    rebalanceExperts([w], { replicas: 6, groups: 1, nodes: 1, gpus: 2 })
      .phy2log[0];

  test("static EP: max/mean and step time by hand", () => {
    const s = by("static");
    assert.equal(s.maxOverMean, 1.5);
    assert.equal(s.stepMs, stepTimeMs(12));
    assert.equal(s.gain, 0);
    assert.equal(s.vllmBalancedness, 8 / 12);
    assert.equal(s.trtllmImbalanceRatio, 0.5);
    assert.deepEqual(s.sortedGpuLoads, [12, 4]);
  });

  test("EPLB planned on steps 0, 1 colocates; the variant does not and wins on step 2", () => {
    // Planned on [4, 4, 12, 12]: experts 2 and 3 get two replicas of 6.
    // EPLB packs 6 (e2) on GPU 0, 6 (e3) on GPU 1, then the second e2 to
    // GPU 0 (tie to the lowest), the second e3 to GPU 1: GPUs {2, 2, 0},
    // {3, 3, 1}. Step 2 [2, 2, 2, 10]: [1 + 1 + 2, 5 + 5 + 2] = [4, 12].
    const s = by("eplb");
    assert.equal(s.from, 2);
    assert.equal(s.colocated, 2);
    assert.equal(s.maxOverMean, 1.5);
    assert.equal(s.gain, 0);
    // Without colocation the second e2 goes to GPU 1, the second e3 to
    // GPU 0: {2, 3, 0}, {3, 2, 1}: [1 + 5 + 2, 5 + 1 + 2] = [8, 8].
    const f = by("eplb-distinct");
    assert.equal(f.colocated, 0);
    assert.equal(f.maxOverMean, 1);
    assert.equal(f.stepMs, stepTimeMs(8));
    assert.equal(f.gain, stepTimeMs(12) / stepTimeMs(8) - 1);
  });

  test("re-planned every step: plans from the past step, transfers counted, intervals past the end skipped", () => {
    const s = by("eplb-replan", 1);
    // Evaluated, as every strategy, on the second half: step 2.
    assert.equal(s.from, 2);
    // Trivial map [0, 1, 2, 3, 0, 1] on step 0: [4, 12]; the plan of step
    // 0 gives [8.67, 7.33] on it, so it is taken; likewise at step 2.
    assert.equal(s.replans, 2);
    // Every 2 steps: the plan of steps 0, 1 is the colocating one above,
    // 12 on the busiest GPU of both steps, as the trivial map: not taken.
    assert.equal(by("eplb-replan", 2).replans, 0);
    assert.equal(by("eplb-replan", 5), undefined);
    const p0 = eplb([2, 2, 2, 10]), p1 = eplb([2, 2, 10, 2]);
    // Step 2 runs on the plan of step 1, whose hot expert was 2.
    const m2 = Math.max(...gpuLoadsEqualSplit([2, 2, 2, 10], p1, 2));
    assert.equal(s.stepMs, stepTimeMs(m2));
    const moved = migrationVolume([[0, 1, 2, 3, 0, 1]], [p0], 2).experts +
      migrationVolume([p0], [p1], 2).experts;
    assert.equal(s.migrationExperts, moved / 2);
    assert.equal(s.migrationBytes, moved / 2 * 100);
    // Transfers: per re-plan, the busiest receiver's experts x 100 bytes
    // over the bandwidth, spread over the 2 steps after the first plan.
    const busiest = (a: number[], b: number[]) =>
      Math.max(...migrationVolume([a], [b], 2).received[0]);
    const transferMs = (busiest([0, 1, 2, 3, 0, 1], p0) + busiest(p0, p1)) *
      100 / 360e9 * 1e3;
    assert.ok(
      Math.abs(s.netStepMs - (s.stepMs + transferMs / 2)) < 1e-15,
    );
  });

  test("a threshold above every gain keeps the first placement: no re-plan", () => {
    const b = adviseRecording(steps, {
      gpus: 2,
      replicas: 6,
      intervals: [1],
      threshold: 100,
      iterations: 0,
    });
    const s = b.strategies.find((x) => x.key === "eplb-replan")!;
    assert.equal(s.replans, 0);
    assert.equal(s.migrationExperts, 0);
    assert.equal(s.netStepMs, s.stepMs);
  });

  test("MicroMoE symmetric: the LP schedule splits the hot expert", () => {
    const s = by("micromoe-symmetric");
    // Every expert on both GPUs (4 x 2 slots on 2 GPUs): 8 per GPU each step.
    assert.equal(s.maxOverMean, 1);
    assert.equal(s.stepMs, stepTimeMs(8));
  });

  test("balanced loads: static EP recommended, with the reason", () => {
    const flat = [[[4, 4, 4, 4]], [[4, 4, 4, 4]]];
    const b = adviseRecording(flat, { gpus: 2, replicas: 4, iterations: 0 });
    assert.equal(b.recommendation.key, "static");
    assert.match(b.recommendation.reasons.at(-1)!, /keep static EP/);
  });

  test("a skewed recording recommends a change", () => {
    assert.notEqual(a.recommendation.key, "static");
    assert.ok(a.recommendation.reasons.length >= 3);
  });

  test("bad input names the argument", () => {
    assert.throws(
      () => adviseRecording([], { gpus: 2, replicas: 4 }),
      TypeError,
    );
    assert.throws(
      () => adviseRecording(steps, { gpus: 3, replicas: 6 }),
      /gpus must divide the number of experts \(4\): current value is 3/,
    );
    assert.throws(
      () => adviseRecording(steps, { gpus: 2, replicas: 5 }),
      /replicas must be a multiple of gpus/,
    );
    assert.throws(
      () => adviseRecording(steps, { gpus: 2, replicas: 6, intervals: [0] }),
      /intervals\[0\]/,
    );
    assert.throws(
      () => adviseRecording([[[1, -1, 0, 0]]], { gpus: 2, replicas: 4 }),
      /loads\[0\]\[0\]\[1\]/,
    );
  });
});
