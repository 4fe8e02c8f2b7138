import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { exact } from "./exact.ts";
import { Rng } from "../scores/rng.ts";

/** The best score sum over every assignment of K distinct experts a token, by enumeration. */
function bruteOptimum(
  s: Float32Array,
  N: number,
  E: number,
  K: number,
  C: number,
  allowed: (set: number[]) => boolean = () => true,
): number {
  // The K-subsets of the experts.
  const subsets: number[][] = [];
  const pick = (from: number, chosen: number[]) => {
    if (chosen.length === K) {
      if (allowed(chosen)) subsets.push([...chosen]);
      return;
    }
    for (let j = from; j < E; j++) pick(j + 1, [...chosen, j]);
  };
  pick(0, []);
  const loads = new Array<number>(E).fill(0);
  let best = -Infinity;
  const walk = (i: number, sum: number) => {
    if (i === N) return void (best = Math.max(best, sum));
    for (const set of subsets) {
      if (set.some((j) => loads[j] >= C)) continue;
      let add = 0;
      for (const j of set) {
        loads[j]++;
        add += s[i * E + j];
      }
      walk(i + 1, sum + add);
      for (const j of set) loads[j]--;
    }
  };
  walk(0, 0);
  return best;
}

describe("exact", () => {
  test("routes each batch to the enumerated optimum, within capacity", () => {
    const rng = new Rng(13);
    for (const [N, E, K] of [[6, 3, 1], [5, 4, 2], [6, 4, 3], [4, 3, 2]]) {
      const C = Math.ceil((N * K) / E);
      const b = exact({ layers: 1, experts: E, k: K, normalize: true });
      for (let trial = 0; trial < 3; trial++) {
        const data = new Float32Array(N * E).map(() => rng.uniform());
        const r = b.route(0, { data, tokens: N, experts: E });
        let sum = 0;
        const counted = new Array<number>(E).fill(0);
        for (let i = 0; i < N; i++) {
          let w = 0;
          for (let slot = 0; slot < K; slot++) {
            const j = r.experts[i * K + slot];
            sum += data[i * E + j];
            counted[j]++;
            w += r.weights[i * K + slot];
          }
          assert.ok(Math.abs(w - 1) < 1e-6, "weights normalised per token");
        }
        assert.deepEqual([...r.loads], counted);
        assert.ok(Math.max(...counted) <= C);
        const want = bruteOptimum(data, N, E, K, C);
        assert.ok(
          Math.abs(sum - want) < 1e-6,
          `N=${N} E=${E} K=${K}: ${sum} vs ${want}`,
        );
      }
    }
  });

  test("is not causal; its biases are minus the optimal expert prices", () => {
    const b = exact({ layers: 2, experts: 2, k: 1 });
    assert.equal(b.causal, false);
    const scores = {
      data: new Float32Array([0.9, 0.5, 0.8, 0.1]),
      tokens: 2,
      experts: 2,
    };
    b.route(1, scores);
    const bias = b.biases(1);
    assert.ok(bias[0] < 0 && bias[1] === 0, `biases ${[...bias]}`);
    assert.deepEqual([...b.biases(0)], [0, 0]);
    assert.throws(
      () => exact({ layers: 1, experts: 2, k: 1 }, { capacityFactor: 0.5 }),
      RangeError,
    );
  });

  test("under a group limit, routes within it and brackets the optimum", () => {
    const rng = new Rng(21);
    const N = 4, E = 6, K = 2, C = Math.ceil((N * K) / E), size = 2;
    const ctx = { layers: 1, experts: E, k: K, groups: 3, topGroups: 1 };
    const oneGroup = (set: number[]) =>
      set.every((j) => Math.floor(j / size) === Math.floor(set[0] / size));
    let binding = 0;
    for (let trial = 0; trial < 8; trial++) {
      const data = new Float32Array(N * E).map(() => rng.uniform());
      const scores = { data, tokens: N, experts: E };
      const free = bruteOptimum(data, N, E, K, C);
      const limited = bruteOptimum(data, N, E, K, C, oneGroup);
      const b = exact(ctx);
      const r = b.route(0, scores);
      let sum = 0;
      for (let i = 0; i < N; i++) {
        const set = [...r.experts.subarray(i * K, (i + 1) * K)];
        assert.ok(oneGroup(set), `token ${i}: ${set}`);
        for (const j of set) sum += data[i * E + j];
      }
      assert.ok(Math.max(...r.loads) <= C);
      const { routed, lowerBound, upperBound, relaxation, groupLimited } = b
        .bounds(0);
      assert.ok(groupLimited);
      assert.ok(Math.abs(routed - sum) < 1e-9 && routed === lowerBound);
      assert.ok(lowerBound <= limited + 1e-9 && limited <= upperBound + 1e-9);
      assert.ok(Math.abs(relaxation - free) < 1e-6);
      if (free > limited + 1e-6) binding++;
      // The relaxation: the free optimum, no lower bound claimed.
      const relax = exact(ctx, { groupLimit: "relax" });
      relax.route(0, scores);
      assert.ok(Math.abs(relax.bounds(0).routed - free) < 1e-6);
      assert.ok(Number.isNaN(relax.bounds(0).lowerBound));
    }
    assert.ok(binding > 0, "the limit binds in some trial");
    assert.throws(
      () => exact(ctx, { groupLimit: "exact" as "relax" }),
      (e: Error) => e instanceof RangeError && /groupLimit/.test(e.message),
    );
  });
});
