import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { expertChoice } from "./expert_choice.ts";
import { Rng } from "../scores/rng.ts";

/** Column-wise top-C with a full sort, ties to the lowest token index. */
function bruteChosen(
  s: Float32Array,
  N: number,
  E: number,
  C: number,
): Set<string> {
  const chosen = new Set<string>();
  for (let j = 0; j < E; j++) {
    const order = Array.from({ length: N }, (_, i) => i);
    order.sort((a, b) => s[b * E + j] - s[a * E + j] || a - b);
    for (let r = 0; r < C; r++) chosen.add(`${order[r]},${j}`);
  }
  return chosen;
}

describe("expertChoice", () => {
  test("refuses a group limit, takes groups all kept", () => {
    assert.throws(
      () =>
        expertChoice({ layers: 1, experts: 8, k: 2, groups: 4, topGroups: 2 }),
      {
        name: "RangeError",
        message:
          "expert-choice takes no group limit (each expert picks its tokens, so no token's experts are confined to its best groups): current value is topGroups 2 of groups 4",
      },
    );
    const b = expertChoice({
      layers: 1,
      experts: 8,
      k: 2,
      groups: 4,
      topGroups: 4,
    });
    assert.equal(b.name, "expert-choice");
  });

  test("every expert takes exactly C tokens, the same as a sorted twin", () => {
    const rng = new Rng(21);
    for (
      const [N, E, K] of [[64, 8, 2], [50, 7, 3], [33, 4, 1], [10, 10, 10]]
    ) {
      const data = new Float32Array(N * E);
      for (let i = 0; i < data.length; i++) {
        data[i] = Math.floor(rng.uniform() * 5) / 5; // many ties
      }
      const b = expertChoice({ layers: 1, experts: E, k: K });
      const r = b.route(0, { data, tokens: N, experts: E });
      const C = Math.ceil((N * K) / E);
      assert.equal(r.k, E);
      assert.deepEqual([...r.loads], new Array(E).fill(C));
      const got = new Set<string>();
      const counted = new Array<number>(E).fill(0);
      for (let i = 0; i < N; i++) {
        let prev = Infinity;
        for (let slot = 0; slot < E; slot++) {
          const j = r.experts[i * E + slot];
          if (j < 0) {
            assert.equal(r.weights[i * E + slot], 0);
            continue;
          }
          got.add(`${i},${j}`);
          counted[j]++;
          assert.equal(r.weights[i * E + slot], data[i * E + j]);
          assert.ok(data[i * E + j] <= prev, "slots best first");
          prev = data[i * E + j];
        }
      }
      assert.deepEqual(counted, new Array(E).fill(C), "loads count the slots");
      assert.deepEqual(got, bruteChosen(data, N, E, C));
    }
  });

  test("a token nobody picks has no expert; normalised weights sum to 1", () => {
    const b = expertChoice({ layers: 1, experts: 2, k: 1, normalize: true });
    const data = new Float32Array([
      0.75,
      0.125,
      0.125,
      0.125,
      0.25,
      0.625,
      0.5,
      0.375,
    ]);
    const r = b.route(0, { data, tokens: 4, experts: 2 });
    // C = 2: e0 takes t0 (0.75), t3 (0.5); e1 takes t2 (0.625), t3 (0.375).
    assert.deepEqual([...r.experts], [0, -1, -1, -1, 1, -1, 0, 1]);
    assert.deepEqual(
      [...r.weights],
      [1, 0, 0, 0, 1, 0, 0.5 / 0.875, 0.375 / 0.875].map(Math.fround),
    );
    assert.equal(b.causal, false);
  });
});
