import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { sinkhorn, sinkhornScaling } from "./sinkhorn.ts";
import { route } from "./route.ts";
import { Rng } from "../scores/rng.ts";

/** Column sums of P = u * exp(s) * v with rows normalised, recomputed from scratch. */
function columnSums(
  s: Float32Array,
  N: number,
  E: number,
  logV: Float64Array,
  tau = 1,
): number[] {
  const sums = new Array<number>(E).fill(0);
  for (let i = 0; i < N; i++) {
    let row = 0;
    for (let j = 0; j < E; j++) row += Math.exp((s[i * E + j] + logV[j]) / tau);
    for (let j = 0; j < E; j++) {
      sums[j] += Math.exp((s[i * E + j] + logV[j]) / tau) / row;
    }
  }
  return sums;
}

function skewed(seed: number, N: number, E: number, spread: number) {
  const rng = new Rng(seed);
  const data = new Float32Array(N * E);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < E; j++) {
      // Expert j is favoured in proportion to j: greedy piles onto the last.
      data[i * E + j] = spread * (rng.uniform() + j / E);
    }
  }
  return { data, tokens: N, experts: E };
}

describe("sinkhornScaling", () => {
  test("column sums end within the tolerance of tokens / experts", () => {
    for (
      const [N, E, spread, tol] of [
        [256, 16, 1, 1e-4],
        [500, 7, 4, 1e-6],
        [64, 64, 2, 1e-4],
      ]
    ) {
      const s = skewed(N + E, N, E, spread);
      const r = sinkhornScaling(s, { tolerance: tol });
      assert.ok(r.converged, `N=${N} E=${E}: error ${r.error}`);
      const sums = columnSums(s.data, N, E, r.logColumnScale);
      for (const c of sums) {
        assert.ok(
          Math.abs(c - N / E) / (N / E) <= tol * 1.0001,
          `column sum ${c}, target ${N / E}`,
        );
      }
    }
  });

  test("with a temperature, the column sums of exp(s / tau) are uniform", () => {
    const s = skewed(8, 200, 6, 1);
    const r = sinkhornScaling(s, { temperature: 0.1 });
    assert.ok(r.converged);
    for (const c of columnSums(s.data, 200, 6, r.logColumnScale, 0.1)) {
      assert.ok(Math.abs(c - 200 / 6) / (200 / 6) <= 1.0001e-4, `sum ${c}`);
    }
  });

  test("stops at the cap and says so", () => {
    const s = skewed(1, 300, 8, 30);
    const r = sinkhornScaling(s, { maxIterations: 2 });
    assert.equal(r.iterations, 2);
    assert.equal(r.converged, false);
    assert.ok(r.error > 1e-4);
  });

  test("scores shifted by a large constant give the same scale (no overflow)", () => {
    const s = skewed(2, 100, 5, 1);
    const shifted = { ...s, data: s.data.map((v) => v + 500) };
    const a = sinkhornScaling(s).logColumnScale;
    const b = sinkhornScaling(shifted).logColumnScale;
    for (let j = 0; j < 5; j++) {
      assert.ok(Number.isFinite(b[j]));
      assert.ok(Math.abs(a[j] - b[j]) < 1e-4);
    }
  });
});

describe("sinkhorn balancer", () => {
  test("selects top-K of s + log v, weights unbiased, not causal", () => {
    const s = skewed(4, 400, 8, 1);
    const b = sinkhorn({ layers: 1, experts: 8, k: 2 });
    assert.equal(b.causal, false);
    const r = b.route(0, s);
    const logV = sinkhornScaling(s).logColumnScale;
    const twin = route(s, { k: 2, bias: logV });
    assert.deepEqual([...r.experts], [...twin.experts]);
    assert.deepEqual([...r.weights], [...twin.weights]);
    // Far better balanced than greedy.
    const greedy = route(s, { k: 2 });
    assert.ok(Math.max(...r.loads) < Math.max(...greedy.loads));
  });
});
