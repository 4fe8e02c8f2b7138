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
): number {
  // The K-subsets of the experts.
  const subsets: number[][] = [];
  const pick = (from: number, chosen: number[]) => {
    if (chosen.length === K) return void subsets.push([...chosen]);
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
});
