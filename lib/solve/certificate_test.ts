// The certificate against a naive recomputation of the dual: any feasible
// assignment and any prices (far from optimal, so that every kind of term
// is non-zero), with masked pairs.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { certify } from "./_certificate.ts";
import { resolveProblem } from "./_problem.ts";

/** Scores with about one pair in ten masked; each token keeps >= k. */
function instance(N: number, E: number, k: number, seed: number) {
  const rng = new Rng(seed);
  const data = new Float32Array(N * E);
  const slots = new Int32Array(N * k);
  for (let i = 0; i < N; i++) {
    const order = [...Array(E).keys()].sort(() => rng.uniform() - 0.5);
    for (let r = 0; r < E; r++) {
      const j = order[r];
      data[i * E + j] = r >= k && rng.uniform() < 0.1
        ? -Infinity
        : Math.round(rng.normal() * 64) / 64;
      if (r < k) slots[i * k + r] = j;
    }
  }
  return { scores: { data, tokens: N, experts: E }, slots };
}

describe("certify", () => {
  test("the gap and token prices equal a naive recomputation of D(p, q)", () => {
    const N = 60, E = 12, k = 3, rng = new Rng(9);
    const { scores, slots } = instance(N, E, k, 3);
    const problem = resolveProblem(scores, { k, capacity: N });
    const q = Float64Array.from({ length: E }, () => rng.uniform() * 2);
    const a = certify(problem, slots, q, "ssp");
    const s = scores.data;
    let objective = 0, dual = 0;
    for (let j = 0; j < E; j++) dual += N * q[j];
    for (let i = 0; i < N; i++) {
      const mine = [...slots.subarray(i * k, i * k + k)];
      const p = Math.min(...mine.map((j) => s[i * E + j] - q[j]));
      assert.equal(a.tokenPrices[i], p);
      // Best score first, ties to the lower expert.
      const sorted = mine.sort((x, y) => s[i * E + y] - s[i * E + x] || x - y);
      assert.deepEqual([...a.experts.subarray(i * k, i * k + k)], sorted);
      dual += k * p;
      for (let j = 0; j < E; j++) {
        const x = s[i * E + j] - p - q[j];
        if (x > 0) dual += x;
      }
      for (const j of mine) objective += s[i * E + j];
    }
    assert.ok(Math.abs(a.objective - objective) <= 1e-12 * N);
    assert.ok(a.dualityGap > 1, `${a.dualityGap}`);
    assert.ok(
      Math.abs(a.dualityGap - (dual - objective)) <= 1e-9 * dual,
      `${a.dualityGap} vs ${dual - objective}`,
    );
  });

  test("refuses prices that are negative, not finite or absurdly large", () => {
    const { scores, slots } = instance(8, 4, 2, 4);
    const problem = resolveProblem(scores, { k: 2, capacity: 8 });
    for (const bad of [-1e-9, Infinity, NaN, 1e290]) {
      const q = new Float64Array(4);
      q[2] = bad;
      assert.throws(
        () => certify(problem, slots, q, "ssp"),
        (e: Error) =>
          e.message === `ssp returned expert price ${bad} for expert 2`,
      );
    }
  });

  test("refuses a repeated, masked or overloaded expert", () => {
    const { scores, slots } = instance(8, 4, 2, 5);
    const problem = resolveProblem(scores, { k: 2, capacity: 4 });
    const q = new Float64Array(4);
    const twice = slots.slice();
    twice[1] = twice[0];
    assert.throws(() => certify(problem, twice, q, "ssp"), /invalid expert/);
    // Token 0's first expert masked.
    const data = scores.data.slice();
    data[slots[0]] = -Infinity;
    const maskedProblem = resolveProblem({ ...scores, data }, {
      k: 2,
      capacity: 4,
    });
    assert.throws(
      () => certify(maskedProblem, slots, q, "ssp"),
      /token 0 an invalid expert/,
    );
    // The first bad slot in slot order is named, on either host.
    for (const host of ["wasm", "cpu"] as const) {
      const masked = scores.data.slice();
      masked[2 * 4 + slots[2 * 2 + 1]] = -Infinity;
      const later = resolveProblem({ ...scores, data: masked }, {
        k: 2,
        capacity: 4,
        host,
      });
      const outside = slots.slice();
      outside[5 * 2] = 99;
      assert.throws(
        () => certify(later, outside, q, "ssp"),
        new RegExp(`token 2 an invalid expert ${slots[5]}$`),
      );
      outside[5 * 2] = slots[5 * 2];
      outside[1 * 2] = 99;
      assert.throws(
        () => certify(later, outside, q, "ssp"),
        /token 1 an invalid expert 99$/,
      );
      assert.throws(
        () => certify(later, slots, q, "ssp"),
        new RegExp(`token 2 an invalid expert ${slots[5]}$`),
      );
    }
    const roomy = resolveProblem(scores, { k: 2, capacity: 8 });
    assert.doesNotThrow(() => certify(roomy, slots, q, "ssp"));
    const all = new Int32Array(16).map((_, x) => x % 2);
    const tight = resolveProblem(
      { data: new Float32Array(32).fill(1), tokens: 8, experts: 4 },
      { k: 2, capacity: 4 },
    );
    assert.throws(() => certify(tight, all, q, "ssp"), /over the capacity/);
  });
});
