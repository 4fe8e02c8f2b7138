// The group-limited bracket against brute force: the per-token dynamic
// programme against every k-subset, and the bounds against the
// group-limited optimum found by enumerating every assignment.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { groupDp } from "./_group_dp.ts";
import { groupLimitedBounds } from "./group_limited.ts";
import { solveBalancedAssignmentSync } from "./solve_balanced_assignment_sync.ts";

/** Every k-subset of 0..E-1, as arrays. */
function subsets(E: number, k: number): number[][] {
  const out: number[][] = [];
  const pick: number[] = [];
  const go = (from: number) => {
    if (pick.length === k) return void out.push([...pick]);
    for (let j = from; j < E; j++) {
      pick.push(j);
      go(j + 1);
      pick.pop();
    }
  };
  go(0);
  return out;
}

const groupsOf = (set: number[], size: number) =>
  new Set(set.map((j) => Math.floor(j / size))).size;

describe("groupDp", () => {
  test("finds the best k-set within M groups, and allows its groups", () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 300; trial++) {
      const G = 1 + (trial % 4), size = 1 + (Math.floor(trial / 4) % 3);
      const E = G * size, M = 1 + (trial % G);
      const k = 1 + Math.floor(rng.uniform() * Math.min(E, M * size));
      const s = new Float32Array(E), q = new Float64Array(E);
      for (let j = 0; j < E; j++) {
        // Coarse values make ties; a few masked pairs.
        s[j] = rng.uniform() < 0.1 ? -Infinity : Math.round(rng.uniform() * 8);
        q[j] = Math.round(rng.uniform() * 4) / 2;
      }
      let best = -Infinity;
      for (const set of subsets(E, k)) {
        if (groupsOf(set, size) > M) continue;
        best = Math.max(best, set.reduce((a, j) => a + s[j] - q[j], 0));
      }
      const allowed = new Uint8Array(G);
      const dp = groupDp(E, G, M, k);
      const value = dp.solve(s, 0, q, allowed);
      assert.equal(value, best, `trial ${trial}`);
      if (best === -Infinity) continue;
      // The allowed groups hold an optimal set, and at most M groups.
      let within = -Infinity;
      for (const set of subsets(E, k)) {
        if (set.some((j) => !allowed[Math.floor(j / size)])) continue;
        within = Math.max(within, set.reduce((a, j) => a + s[j] - q[j], 0));
      }
      assert.equal(within, best, `trial ${trial}: allowed ${[...allowed]}`);
      assert.ok(allowed.reduce((a, b) => a + b, 0) <= M);
    }
  });
});

/** The group-limited optimum by enumerating every assignment. */
function bruteForce(
  s: Float32Array,
  N: number,
  E: number,
  k: number,
  C: number,
  size: number,
  M: number,
): number {
  const options = subsets(E, k).filter((set) => groupsOf(set, size) <= M);
  const loads = new Int32Array(E);
  let best = -Infinity;
  const go = (i: number, sum: number) => {
    if (i === N) return void (best = Math.max(best, sum));
    for (const set of options) {
      if (set.some((j) => loads[j] >= C || s[i * E + j] === -Infinity)) {
        continue;
      }
      for (const j of set) loads[j]++;
      go(i + 1, sum + set.reduce((a, j) => a + s[i * E + j], 0));
      for (const j of set) loads[j]--;
    }
  };
  go(0, 0);
  return best;
}

describe("groupLimitedBounds", () => {
  test("brackets the brute-force optimum with a feasible assignment", () => {
    const rng = new Rng(11);
    let strict = 0;
    for (let trial = 0; trial < 60; trial++) {
      // 4 tokens; 3 groups of 2 experts or 4 groups of 2; one or two kept.
      const N = 4, G = 3 + (trial % 2), size = 2, E = G * size, k = 2;
      const M = 1 + (Math.floor(trial / 2) % 2);
      const data = new Float32Array(N * E);
      for (let x = 0; x < data.length; x++) {
        data[x] = Math.fround(rng.uniform());
      }
      const scores = { data, tokens: N, experts: E };
      // Every other trial starts the restricted solve from odd prices.
      const restrictedPrices = trial % 2 === 0
        ? undefined
        : Array.from({ length: E }, (_, j) => (j % 3) / 4);
      const b = groupLimitedBounds(scores, {
        k,
        groups: G,
        topGroups: M,
        restrictedPrices,
      });
      const C = b.assignment.capacity;
      const optimum = bruteForce(data, N, E, k, C, size, M);
      const tol = 1e-9;
      assert.ok(b.lowerBound <= optimum + tol, `trial ${trial}`);
      assert.ok(b.upperBound >= optimum - tol, `trial ${trial}`);
      assert.ok(b.relaxation >= b.upperBound - tol);
      assert.equal(
        b.relaxation,
        solveBalancedAssignmentSync(scores, { k }).objective,
      );
      // The assignment: group-limited, within capacity, worth lowerBound.
      let sum = 0;
      const loads = new Int32Array(E);
      for (let i = 0; i < N; i++) {
        const set = [...b.assignment.experts.subarray(i * k, (i + 1) * k)];
        assert.equal(new Set(set).size, k);
        assert.ok(groupsOf(set, size) <= M);
        for (const j of set) {
          loads[j]++;
          sum += data[i * E + j];
        }
      }
      assert.ok(loads.every((l) => l <= C));
      assert.ok(Math.abs(sum - b.lowerBound) < 1e-12);
      assert.ok(
        Math.abs(
          b.bracket - (b.upperBound - b.lowerBound) / Math.abs(b.upperBound),
        ) < 1e-15,
      );
      if (b.relaxation > optimum + 1e-6) strict++;
    }
    // The limit binds in some trials: the relaxation is then a strict bound.
    assert.ok(strict > 5, `the group limit bound in ${strict} trials`);
  });

  test("equals the flow optimum when every group is kept", () => {
    const rng = new Rng(2);
    const data = Float32Array.from({ length: 40 }, () => rng.uniform());
    const scores = { data, tokens: 10, experts: 4 };
    const b = groupLimitedBounds(scores, { k: 2, groups: 2, topGroups: 2 });
    const flow = solveBalancedAssignmentSync(scores, { k: 2 });
    assert.equal(b.lowerBound, flow.objective);
    assert.equal(b.upperBound, flow.objective);
    assert.equal(b.bracket, 0);
  });

  test("refuses bad groups, naming the option and showing the value", () => {
    const scores = { data: new Float32Array(12), tokens: 2, experts: 6 };
    assert.throws(
      () => groupLimitedBounds(scores, { k: 2, groups: 4, topGroups: 1 }),
      (e: Error) =>
        e instanceof RangeError && /options\.groups/.test(e.message) &&
        /\b4\b/.test(e.message),
    );
    assert.throws(
      () => groupLimitedBounds(scores, { k: 3, groups: 3, topGroups: 1 }),
      (e: Error) =>
        e instanceof RangeError && /options\.topGroups/.test(e.message) &&
        /1 x 2/.test(e.message),
    );
    assert.throws(
      () =>
        groupLimitedBounds(scores, {
          k: 2,
          groups: 3,
          topGroups: 1,
          restrictedPrices: [0, 0],
        }),
      (e: Error) =>
        e instanceof TypeError && /options\.restrictedPrices/.test(e.message),
    );
    assert.throws(
      () =>
        groupLimitedBounds(scores, {
          k: 2,
          groups: 3,
          topGroups: 1,
          restrictedPrices: [0, 0, NaN, 0, 0, 0],
        }),
      (e: Error) => e instanceof RangeError && /entry 2 is NaN/.test(e.message),
    );
    assert.throws(
      () => groupLimitedBounds(scores, { k: 2, groups: 3, topGroups: 0 }),
      (e: Error) =>
        e instanceof RangeError && /options\.topGroups/.test(e.message),
    );
  });
});
