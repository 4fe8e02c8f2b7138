import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bip, bipPrices } from "./bip.ts";
import { Rng } from "../scores/rng.ts";

// Hand-worked 4 x 3 example, K = 1, C = ceil(4 * 1 / 3) = 2.
//
//          e0   e1   e2      greedy top-1: t0 t1 t2 -> e2, t3 -> e0,
//   t0    0.1  0.5  0.9      loads [1, 0, 3]
//   t1    0.4  0.2  0.8
//   t2    0.3  0.6  0.7
//   t3    0.8  0.1  0.3
//
// Round 1, from q = 0.
//   p[i] = max(0, 2nd largest of s[i] - q):  p = [0.5, 0.4, 0.6, 0.3]
//   s - p by column, q[j] = max(0, 3rd largest):
//     e0: [-0.4, 0.0, -0.3, 0.5]  -> 3rd largest -0.3 -> q0 = 0
//     e1: [ 0.0, -0.2, 0.0, -0.2] -> 3rd largest -0.2 -> q1 = 0
//     e2: [ 0.4, 0.4, 0.1, 0.0]   -> 3rd largest  0.1 -> q2 = 0.1
// Round 2, q = [0, 0, 0.1]:
//   s - q: t0 [0.1 0.5 0.8], t1 [0.4 0.2 0.7], t2 [0.3 0.6 0.6],
//          t3 [0.8 0.1 0.2]                    -> p = [0.5, 0.4, 0.6, 0.2]
//   s - p by column:
//     e0: [-0.4, 0.0, -0.3, 0.6]  -> q0 = max(0, -0.3) = 0
//     e1: [ 0.0, -0.2, 0.0, -0.1] -> q1 = max(0, -0.1) = 0
//     e2: [ 0.4, 0.4, 0.1, 0.1]   -> q2 = 0.1
// Route by top-1 of s - q: t0 -> e2 (0.8), t1 -> e2 (0.7), t2: e1 0.6 ties
// e2 0.7 - 0.1 = 0.6 -> the lower index, e1; t3 -> e0. Loads [1, 1, 2].
const handWorked = {
  data: new Float32Array([
    0.1,
    0.5,
    0.9,
    0.4,
    0.2,
    0.8,
    0.3,
    0.6,
    0.7,
    0.8,
    0.1,
    0.3,
  ]),
  tokens: 4,
  experts: 3,
};

function close(actual: ArrayLike<number>, expected: number[], msg?: string) {
  assert.equal(actual.length, expected.length, msg);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) < 1e-6,
      `${msg ?? ""} entry ${i}: ${actual[i]} != ${expected[i]}`,
    );
  }
}

/** The two coordinate steps written out with sorts, as the paper states them. */
function bruteRounds(
  s: Float32Array,
  N: number,
  E: number,
  K: number,
  C: number,
  T: number,
  clipP = true,
): { q: number[]; p: number[] } {
  let q = new Array<number>(E).fill(0);
  let p = new Array<number>(N).fill(0);
  for (let t = 0; t < T; t++) {
    p = Array.from({ length: N }, (_, i) => {
      if (K >= E) return 0;
      const row = Array.from({ length: E }, (_, j) => s[i * E + j] - q[j]);
      row.sort((a, b) => b - a);
      return clipP ? Math.max(0, row[K]) : row[K];
    });
    q = Array.from({ length: E }, (_, j) => {
      if (C >= N) return 0;
      const col = Array.from({ length: N }, (_, i) => s[i * E + j] - p[i]);
      col.sort((a, b) => b - a);
      return Math.max(0, col[C]);
    });
  }
  return { q, p };
}

describe("bipPrices", () => {
  test("the hand-worked 4 x 3 example, rounds 1 and 2", () => {
    const one = bipPrices(handWorked, { k: 1, T: 1 });
    close(one.tokenPrices, [0.5, 0.4, 0.6, 0.3], "round 1 p");
    close(one.expertPrices, [0, 0, 0.1], "round 1 q");
    const two = bipPrices(handWorked, { k: 1, T: 2 });
    close(two.tokenPrices, [0.5, 0.4, 0.6, 0.2], "round 2 p");
    close(two.expertPrices, [0, 0, 0.1], "round 2 q");
  });

  test("matches the sorted-order twin on random batches", () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 30; trial++) {
      const N = 5 + Math.floor(rng.uniform() * 60);
      const E = 2 + Math.floor(rng.uniform() * 12);
      const K = 1 + Math.floor(rng.uniform() * E);
      const C = Math.ceil((N * K) / E) + Math.floor(rng.uniform() * 3);
      const T = 1 + Math.floor(rng.uniform() * 4);
      const data = new Float32Array(N * E);
      // Coarse values: many ties.
      for (let i = 0; i < data.length; i++) {
        data[i] = Math.floor(rng.uniform() * 8) / 8;
      }
      const clipTokenPrices = trial % 2 === 0 || K === E;
      const got = bipPrices({ data, tokens: N, experts: E }, {
        k: K,
        capacity: C,
        T,
        clipTokenPrices,
      });
      const want = bruteRounds(data, N, E, K, C, T, clipTokenPrices);
      close(got.expertPrices, want.q, `trial ${trial} q`);
      close(got.tokenPrices, want.p, `trial ${trial} p`);
    }
  });

  test("rejects infeasible capacity and bad starting prices", () => {
    assert.throws(
      () => bipPrices(handWorked, { k: 1, capacity: 1 }),
      RangeError,
    );
    assert.throws(() => bipPrices(handWorked, { k: 4 }), RangeError);
    assert.throws(
      () => bipPrices(handWorked, { k: 1, expertPrices: [0, 0] }),
      TypeError,
    );
  });
});

describe("bip balancer", () => {
  test("routes the hand-worked batch to loads [1, 1, 2]", () => {
    const b = bip({ layers: 2, experts: 3, k: 1 });
    const r = b.route(1, handWorked);
    assert.deepEqual([...r.experts], [2, 2, 1, 0]);
    assert.deepEqual([...r.loads], [1, 1, 2]);
    // Weights are the unbiased scores.
    close(r.weights, [0.9, 0.8, 0.6, 0.8]);
    close(b.biases(1), [0, 0, -0.1]);
    assert.deepEqual([...b.biases(0)], [0, 0, 0], "layers keep their own q");
  });

  test("keeps q across batches: two batches of T = 1 are one of T = 2", () => {
    const rng = new Rng(3);
    const data = new Float32Array(40 * 6).map(() => rng.uniform());
    const scores = { data, tokens: 40, experts: 6 };
    const once = bip({ layers: 1, experts: 6, k: 2 }, { T: 1 });
    once.route(0, scores);
    once.route(0, scores);
    const twice = bip({ layers: 1, experts: 6, k: 2 }, { T: 2 });
    twice.route(0, scores);
    assert.deepEqual([...once.biases(0)], [...twice.biases(0)]);
    assert.ok(once.biases(0).some((v) => v < 0));
  });

  test("its candidate-filtered selections equal full ones, batch after batch", () => {
    // The balancer keeps per-layer bounds and selects among candidates;
    // bipPrices selects over whole columns. Drifting batches force both
    // kept bounds and redone columns.
    const rng = new Rng(9);
    const N = 300, E = 12, K = 3;
    const b = bip({ layers: 1, experts: E, k: K }, { T: 2 });
    let q: Float64Array = new Float64Array(E);
    for (let step = 0; step < 12; step++) {
      const data = new Float32Array(N * E);
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < E; j++) {
          data[i * E + j] = rng.uniform() + ((step % 4) * j) / (4 * E);
        }
      }
      const scores = { data, tokens: N, experts: E };
      b.route(0, scores);
      q = bipPrices(scores, { k: K, T: 2, expertPrices: q }).expertPrices;
      assert.deepEqual([...b.biases(0)], [...q].map((v) => 0 - v));
    }
  });

  test("is not causal and checks its options", () => {
    assert.equal(bip({ layers: 1, experts: 3, k: 1 }).causal, false);
    assert.throws(
      () => bip({ layers: 1, experts: 3, k: 1 }, { T: -1 }),
      RangeError,
    );
    assert.throws(
      () => bip({ layers: 1, experts: 3, k: 1 }, { capacityFactor: 0.5 }),
      RangeError,
    );
  });
});
