import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { capacity } from "./capacity.ts";
import { route } from "./route.ts";
import { Rng } from "../scores/rng.ts";

/**
 * The kept (token, expert) pairs, by a twin that sorts each expert's
 * takers: by score, descending, ties to the earlier token ("probs"), or by
 * token index ("position"), and keeps the first `cap`.
 */
function bruteKept(
  s: Float32Array,
  N: number,
  E: number,
  K: number,
  cap: number,
  drop: "probs" | "position",
): Set<string> {
  const greedy = route({ data: s, tokens: N, experts: E }, { k: K });
  const kept = new Set<string>();
  for (let j = 0; j < E; j++) {
    const takers: number[] = [];
    for (let i = 0; i < N; i++) {
      for (let r = 0; r < K; r++) {
        if (greedy.experts[i * K + r] === j) takers.push(i);
      }
    }
    if (drop === "probs") {
      takers.sort((a, b) => s[b * E + j] - s[a * E + j] || a - b);
    }
    for (const i of takers.slice(0, cap)) kept.add(`${i},${j}`);
  }
  return kept;
}

describe("capacity", () => {
  for (const drop of ["probs", "position"] as const) {
    test(`drops the over-capacity assignments by ${drop}, as the twin does`, () => {
      const rng = new Rng(drop === "probs" ? 1 : 2);
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
            data[i * E + j] = Math.floor((rng.uniform() + 2 / (j + 1)) * 8) / 8;
          }
        }
        const b = capacity({ layers: 1, experts: E, k: K }, {
          capacityFactor: cf,
          drop,
        });
        const r = b.route(0, { data, tokens: N, experts: E });
        const cap = Math.ceil(Math.round(N * K * cf / E * 1e9) / 1e9);
        const want = bruteKept(data, N, E, K, cap, drop);
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
              assert.equal(r.weights[i * K + r2], data[i * E + j]);
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
    });
  }

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
