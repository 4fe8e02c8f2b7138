import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { quantile } from "./quantile.ts";
import { route } from "./route.ts";
import { Rng } from "../scores/rng.ts";

/**
 * Quantile Balancing's update as its definition reads, with sorts: the
 * quantile at level 1 - K/E of N values is the one of ascending rank
 * floor(N * (1 - K/E)) (1-based), computed in integers.
 */
function bruteUpdate(
  s: Float32Array,
  N: number,
  E: number,
  K: number,
  b: number[],
): number[] {
  const a = Array.from({ length: N }, (_, i) => {
    const row = Array.from({ length: E }, (_, j) => s[i * E + j] + b[j]);
    row.sort((x, y) => y - x);
    return row[K]; // (K+1)-th largest
  });
  const rank = Math.floor((N * E - N * K) / E); // floor(N (1 - K/E))
  const next = Array.from({ length: E }, (_, j) => {
    const col = Array.from({ length: N }, (_, i) => s[i * E + j] - a[i]);
    col.sort((x, y) => x - y);
    return -col[rank - 1];
  });
  const mean = next.reduce((x, y) => x + y, 0) / E;
  return next.map((v) => v - mean);
}

describe("quantile", () => {
  test("each update matches the definition, batch after batch", () => {
    const rng = new Rng(11);
    for (const [N, E, K] of [[50, 8, 2], [37, 5, 1], [64, 16, 6], [9, 3, 2]]) {
      const b = quantile({ layers: 2, experts: E, k: K });
      let twin = new Array<number>(E).fill(0);
      for (let step = 0; step < 5; step++) {
        const data = new Float32Array(N * E);
        for (let i = 0; i < data.length; i++) {
          // Coarse values on odd steps: ties.
          data[i] = step % 2
            ? Math.floor(rng.uniform() * 6) / 6
            : rng.uniform();
        }
        const scores = { data, tokens: N, experts: E };
        const r = b.route(1, scores);
        b.update(1, scores, r);
        twin = bruteUpdate(data, N, E, K, twin);
        const got = b.biases(1);
        for (let j = 0; j < E; j++) {
          assert.ok(
            Math.abs(got[j] - twin[j]) < 1e-9,
            `N=${N} E=${E} K=${K} step ${step} expert ${j}: ${got[j]} != ${
              twin[j]
            }`,
          );
        }
      }
      assert.deepEqual([...b.biases(0)], new Array(E).fill(0));
    }
  });

  test("routes with the bias from the previous batch only (causal)", () => {
    const b = quantile({ layers: 1, experts: 4, k: 1 });
    assert.equal(b.causal, true);
    const rng = new Rng(5);
    const data = new Float32Array(32 * 4).map(() => rng.uniform());
    const scores = { data, tokens: 32, experts: 4 };
    const first = [...b.route(0, scores).experts];
    // Routing the same batch again before any update gives the same answer:
    // the batch itself did not move the bias.
    assert.deepEqual([...b.route(0, scores).experts], first);
  });

  test("routes as route() does with its bias, normalised or not, grouped or not", () => {
    const rng = new Rng(17);
    for (const normalize of [false, true]) {
      for (const groups of [1, 4]) {
        const ctx = {
          layers: 1,
          experts: 8,
          k: 3,
          normalize,
          groups,
          topGroups: groups === 1 ? 1 : 2,
        };
        const b = quantile(ctx);
        for (let step = 0; step < 3; step++) {
          const data = new Float32Array(40 * 8).map(() =>
            Math.floor(rng.uniform() * 10) / 10
          );
          const scores = { data, tokens: 40, experts: 8 };
          const bias = b.biases(0);
          const r = b.route(0, scores);
          const twin = route(scores, {
            k: 3,
            bias,
            normalize,
            groups,
            topGroups: ctx.topGroups,
          });
          assert.deepEqual([...r.experts], [...twin.experts]);
          assert.deepEqual([...r.weights], [...twin.weights]);
          assert.deepEqual([...r.loads], [...twin.loads]);
          b.update(0, scores, r);
        }
      }
    }
  });

  test("K = E leaves the bias at zero", () => {
    const b = quantile({ layers: 1, experts: 2, k: 2 });
    const scores = {
      data: new Float32Array([0.9, 0.1, 0.8, 0.2]),
      tokens: 2,
      experts: 2,
    };
    b.update(0, scores, b.route(0, scores));
    assert.deepEqual([...b.biases(0)], [0, 0]);
  });
});
