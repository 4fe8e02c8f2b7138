import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { capacity } from "./capacity.ts";
import { route } from "./route.ts";
import { Rng } from "../scores/rng.ts";

/**
 * The routing probability of token `i` for each of its selected experts:
 * the score, divided by the sum of the token's selected scores when
 * `normalize` (in float64, stored as float32, as gate weights are).
 */
function probabilities(
  s: Float32Array,
  E: number,
  K: number,
  selected: Int32Array,
  normalize: boolean,
): Map<string, number> {
  const p = new Map<string, number>();
  for (let i = 0; i < selected.length / K; i++) {
    let sum = 0;
    for (let r = 0; r < K; r++) sum += s[i * E + selected[i * K + r]];
    for (let r = 0; r < K; r++) {
      const j = selected[i * K + r];
      const x = s[i * E + j];
      p.set(`${i},${j}`, normalize ? Math.fround(x * (1 / sum)) : x);
    }
  }
  return p;
}

/**
 * The kept (token, expert) pairs, by a twin that sorts each expert's
 * takers: by routing probability, descending, ties to the earlier token
 * ("probs"), or by token index ("position"), and keeps the first `cap`.
 */
function bruteKept(
  s: Float32Array,
  N: number,
  E: number,
  K: number,
  cap: number,
  drop: "probs" | "position",
  normalize = false,
): Set<string> {
  const greedy = route({ data: s, tokens: N, experts: E }, { k: K });
  const p = probabilities(s, E, K, greedy.experts, normalize);
  const prob = (i: number, j: number) => p.get(`${i},${j}`)!;
  const kept = new Set<string>();
  for (let j = 0; j < E; j++) {
    const takers: number[] = [];
    for (let i = 0; i < N; i++) {
      for (let r = 0; r < K; r++) {
        if (greedy.experts[i * K + r] === j) takers.push(i);
      }
    }
    if (drop === "probs") {
      takers.sort((a, b) => prob(b, j) - prob(a, j) || a - b);
    }
    for (const i of takers.slice(0, cap)) kept.add(`${i},${j}`);
  }
  return kept;
}

describe("capacity", () => {
  for (
    const [drop, normalize] of [
      ["probs", false],
      ["probs", true],
      ["position", false],
      ["position", true],
    ] as const
  ) {
    test(
      `drops the over-capacity assignments by ${drop}${
        normalize ? " (normalised gates)" : ""
      }, as the twin does`,
      () => {
        const rng = new Rng((drop === "probs" ? 1 : 2) + (normalize ? 2 : 0));
        for (
          const [N, E, K, cf] of [[80, 8, 2, 1], [61, 5, 1, 1.25], [
            40,
            6,
            3,
            1.1,
          ]]
        ) {
          const data = new Float32Array(N * E);
          for (let i = 0; i < N; i++) {
            for (let j = 0; j < E; j++) {
              // Skewed towards low experts, coarse (ties).
              data[i * E + j] = Math.floor((rng.uniform() + 2 / (j + 1)) * 8) /
                8;
            }
          }
          const b = capacity({ layers: 1, experts: E, k: K, normalize }, {
            capacityFactor: cf,
            drop,
          });
          const r = b.route(0, { data, tokens: N, experts: E });
          const cap = Math.ceil(Math.round(N * K * cf / E * 1e9) / 1e9);
          const want = bruteKept(data, N, E, K, cap, drop, normalize);
          const greedy = route({ data, tokens: N, experts: E }, { k: K });
          const prob = probabilities(data, E, K, greedy.experts, normalize);
          const got = new Set<string>();
          let dropped = 0;
          for (let i = 0; i < N; i++) {
            let seenEmpty = false;
            for (let r2 = 0; r2 < K; r2++) {
              const j = r.experts[i * K + r2];
              if (j < 0) {
                dropped++;
                seenEmpty = true;
                assert.equal(r.weights[i * K + r2], 0);
              } else {
                assert.ok(!seenEmpty, "kept experts come first");
                got.add(`${i},${j}`);
                assert.equal(r.weights[i * K + r2], prob.get(`${i},${j}`));
              }
            }
          }
          assert.deepEqual(got, want);
          assert.equal(dropped, N * K - want.size, "dropped count");
          assert.ok(dropped > 0, "the instance overflows some expert");
          for (let j = 0; j < E; j++) {
            const n = [...want].filter((p) => p.endsWith(`,${j}`)).length;
            assert.equal(r.loads[j], n);
            assert.ok(r.loads[j] <= cap);
          }
        }
      },
    );
  }

  test("probs drops by the routing probability, not the raw score", () => {
    // Sigmoid scores, k = 2, normalised gates, capacity 1
    // (ceil(2 * 2 * 0.75 / 3) = 1). Both tokens select expert 0:
    //   token 0: scores 0.6 0.9 0.1, selects 1 and 0, p(0) = 0.6 / 1.5 = 0.4
    //   token 1: scores 0.5 0.1 0.2, selects 0 and 2, p(0) = 0.5 / 0.7 = 0.714
    // By raw score token 0 (0.6 > 0.5) would keep expert 0; by probability
    // (Megatron-Core's "probs") token 1 keeps it and token 0 drops it.
    const data = new Float32Array([0.6, 0.9, 0.1, 0.5, 0.1, 0.2]);
    const b = capacity({ layers: 1, experts: 3, k: 2, normalize: true }, {
      capacityFactor: 0.75,
    });
    const r = b.route(0, { data, tokens: 2, experts: 3 });
    assert.deepEqual([...r.experts], [1, -1, 0, 2]);
    const f = Math.fround;
    assert.deepEqual([...r.weights], [
      f(f(0.9) * (1 / (f(0.9) + f(0.6)))),
      0,
      f(f(0.5) * (1 / (f(0.5) + f(0.2)))),
      f(f(0.2) * (1 / (f(0.5) + f(0.2)))),
    ]);
    assert.deepEqual([...r.loads], [1, 1, 1]);
    // Without normalisation the probability is the score: token 1 drops.
    const raw = capacity({ layers: 1, experts: 3, k: 2 }, {
      capacityFactor: 0.75,
    }).route(0, { data, tokens: 2, experts: 3 });
    assert.deepEqual([...raw.experts], [1, 0, 2, -1]);
  });

  test("causal with position dropping only", () => {
    const ctx = { layers: 1, experts: 4, k: 1 };
    assert.equal(capacity(ctx, { drop: "position" }).causal, true);
    assert.equal(capacity(ctx, { drop: "probs" }).causal, false);
    assert.equal(capacity(ctx).causal, false);
    assert.throws(
      () => capacity(ctx, { drop: "random" as "probs" }),
      RangeError,
    );
    assert.throws(() => capacity(ctx, { capacityFactor: 0 }), RangeError);
  });
});
