import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closedFormOptimum } from "./closed_form.ts";
import { createScheduler, scheduleTokens } from "./schedule.ts";
import { loadLpSolvers } from "../solve/lp_solvers.ts";
import { symmetricPlacement } from "./cayley.ts";
import { randomPlacement } from "./random.ts";
import { asymmetricPlacement } from "./asymmetric.ts";
import { rebalanceExperts } from "./eplb.ts";
import { placementFromPhy2log, staticPlacement } from "./placement.ts";
import type { Placement } from "./placement.ts";
import { Rng, zipfCdf } from "../scores/rng.ts";

/** Brute-force twin of the closed form: every subset, every expert, no tricks. */
function bruteForce(loads: number[], p: Placement): number {
  let best = 0;
  for (let mask = 1; mask < 1 << p.gpus; mask++) {
    let L = 0, size = 0;
    for (let g = 0; g < p.gpus; g++) if (mask & (1 << g)) size++;
    for (let e = 0; e < p.experts; e++) {
      let all = true;
      p.slots.forEach((x, i) => {
        if (x === e && !(mask & (1 << Math.floor(i / p.slotsPerGpu)))) {
          all = false;
        }
      });
      if (all) L += loads[e];
    }
    best = Math.max(best, L / size);
  }
  return best;
}

/** Random instances: placement kinds and sizes up to 12 GPUs. */
function instances(): { loads: number[]; p: Placement; name: string }[] {
  const rng = new Rng(11);
  const out: { loads: number[]; p: Placement; name: string }[] = [];
  for (let i = 0; i < 24; i++) {
    const G = [2, 4, 6, 8, 10, 12][i % 6];
    const E = G * (1 + rng.int(3));
    const s = [0, 0.8, 1.5][i % 3];
    const loads = Array.from({ length: E }, () => 0);
    for (let t = 0; t < 40 * E; t++) {
      loads[rng.int(E) === 0 ? 0 : rng.zipf(E, s) - 1]++;
    }
    const kind = i % 4;
    const p = kind === 0
      ? randomPlacement(E, G, { seed: i })
      : kind === 1
      ? symmetricPlacement(E, G, { graph: "ring" })
      : kind === 2
      ? asymmetricPlacement(loads, G, { iterations: 30, seed: i })
      : placementFromPhy2log(
        rebalanceExperts([loads], {
          replicas: 2 * E,
          groups: 1,
          nodes: 1,
          gpus: G,
        }).phy2log[0],
        E,
        G,
      );
    out.push({ loads, p, name: `G=${G} E=${E} s=${s} kind=${kind}` });
  }
  return out;
}

/** Checks the integer schedule's invariants. */
function checkSchedule(
  loads: number[],
  p: Placement,
  s: ReturnType<typeof scheduleTokens>,
): void {
  const perExpert = new Array(p.experts).fill(0),
    perGpu = new Array(p.gpus).fill(0);
  s.replicaLoads.forEach((x, i) => {
    assert.ok(Number.isInteger(x) && x >= 0);
    if (p.slots[i] < 0) assert.equal(x, 0);
    else perExpert[p.slots[i]] += x;
    perGpu[Math.floor(i / p.slotsPerGpu)] += x;
  });
  assert.deepEqual(perExpert, loads);
  assert.deepEqual([...s.gpuLoads], perGpu);
  assert.equal(s.maxLoad, Math.max(...perGpu));
  assert.equal(s.maxLoad, Math.ceil(s.optimum - 1e-7));
}

describe("scheduleTokens", () => {
  before(() => loadLpSolvers());

  test("exact optimum = closed form = brute force, exhaustively over subsets (G <= 12)", () => {
    for (const { loads, p, name } of instances()) {
      const closed = closedFormOptimum(loads, p).optimum;
      const s = scheduleTokens(loads, p);
      assert.equal(s.optimum, closed, name);
      if (p.gpus <= 8) assert.equal(closed, bruteForce(loads, p), name);
      checkSchedule(loads, p, s);
    }
  });

  test("glpk.js and HiGHS agree with the exact solver", () => {
    for (const { loads, p, name } of instances()) {
      const exact = scheduleTokens(loads, p, { solver: "exact" }).optimum;
      for (const solver of ["glpk", "highs"] as const) {
        const s = scheduleTokens(loads, p, { solver });
        assert.ok(
          Math.abs(s.optimum - exact) <= 1e-6 * Math.max(1, exact),
          `${solver} ${name}`,
        );
        checkSchedule(loads, p, s);
      }
    }
  });

  test("warm start changes no result: a scheduler reused over 30 micro-batches", () => {
    const rng = new Rng(2);
    const p = randomPlacement(64, 16, { seed: 1 });
    const warm = createScheduler(p);
    const warmHighs = createScheduler(p, { solver: "highs" });
    for (let b = 0; b < 30; b++) {
      const loads = Array.from({ length: 64 }, () => 0);
      for (let t = 0; t < 4096; t++) loads[rng.zipf(64, 1.2) - 1]++;
      const a = warm.schedule(loads),
        fresh = createScheduler(p).schedule(loads);
      assert.deepEqual(a, fresh);
      assert.ok(Math.abs(warmHighs.schedule(loads).optimum - a.optimum) < 1e-6);
    }
    warmHighs.dispose?.();
  });

  test("static placement: the optimum is the busiest GPU's load", () => {
    const s = scheduleTokens([5, 1, 2, 2], staticPlacement(4, 2));
    assert.equal(s.optimum, 6);
    assert.deepEqual([...s.gpuLoads], [6, 4]);
  });

  test("all-zero loads and single-GPU placements", () => {
    assert.equal(
      scheduleTokens([0, 0, 0, 0], symmetricPlacement(4, 4)).maxLoad,
      0,
    );
    assert.equal(scheduleTokens([3, 4], staticPlacement(2, 1)).optimum, 7);
  });

  test("bad input", () => {
    const p = symmetricPlacement(4, 4);
    assert.throws(() => scheduleTokens([1, 2, 3], p), TypeError);
    assert.throws(
      () => scheduleTokens([1, 2, 3, -1], p),
      /non-negative integers: value at expert 3 is -1/,
    );
    assert.throws(() => scheduleTokens([1, 2, 3, 0.5], p), RangeError);
    assert.throws(
      () => scheduleTokens([1, 2, 3, 4], p, { solver: "cplex" as never }),
      RangeError,
    );
  });
});

describe("symmetric placement under Zipf loads", () => {
  test("s < 1: the complete Cayley placement balances perfectly (8 GPUs, 32 experts)", () => {
    // Whatever expert is hot (random rank order), sampled micro-batches.
    for (const s of [0.5, 0.8]) {
      for (let trial = 0; trial < 10; trial++) {
        const rng = new Rng(100 + trial);
        const rank = rng.shuffle(Array.from({ length: 32 }, (_, i) => i));
        const loads = new Array(32).fill(0);
        for (let t = 0; t < 8192; t++) loads[rank[rng.zipf(32, s) - 1]]++;
        const p = symmetricPlacement(32, 8);
        const r = scheduleTokens(loads, p);
        assert.equal(r.optimum, 8192 / 8, `s=${s} trial ${trial}`);
      }
    }
  });

  test("s = 2: no symmetric placement can (the hottest expert alone exceeds 2 GPUs' share)", () => {
    const cdf = zipfCdf(32, 2);
    const loads = Array.from(
      cdf,
      (c, i) => Math.round(8192 * (c - (i ? cdf[i - 1] : 0))),
    );
    const mean = loads.reduce((a, b) => a + b) / 8;
    assert.ok(
      scheduleTokens(loads, symmetricPlacement(32, 8)).optimum > 1.5 * mean,
    );
  });
});
