// The certificate rows op against a naive recomputation (token prices, a
// sort of each token's experts, loads, objective, the sum of
// max(0, s - p - q) over the experts a token does not hold), and its
// validator.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import {
  certificateRowsCpu,
  certificateRowsOp,
  type CertificateRowsRequest,
} from "./certificate_rows.ts";
import { certificateRowsWasm } from "./certificate_rows_wasm.ts";

/**
 * Scores with masked pairs, each token holding k random unmasked experts;
 * prices far from any optimum, so that most tokens have positive terms.
 */
function request(N: number, E: number, k: number, seed: number) {
  const rng = new Rng(seed);
  const data = new Float32Array(N * E);
  for (let x = 0; x < data.length; x++) {
    data[x] = rng.uniform() < 0.1
      ? -Infinity
      : Math.round(rng.normal() * 64) / 64;
  }
  const slots = new Int32Array(N * k);
  for (let i = 0; i < N; i++) {
    const open = [...Array(E).keys()].filter((j) =>
      data[i * E + j] > -Infinity
    );
    for (let r = 0; r < k; r++) {
      slots[i * k + r] = open.splice(rng.int(open.length), 1)[0];
    }
  }
  const expertPrices = Float64Array.from(
    { length: E },
    () => rng.normal() * 0.5,
  );
  return {
    scores: { data, tokens: N, experts: E },
    k,
    slots,
    expertPrices,
  } satisfies CertificateRowsRequest;
}

describe("certificateRows", () => {
  test("token prices, sorted experts, loads, objective and gap terms by hand", () => {
    const N = 70, E = 45, k = 4;
    const req = request(N, E, k, 11);
    const args = certificateRowsOp.validate(req);
    const s = req.scores.data, q = req.expertPrices;
    let positive = 0;
    for (
      const [name, got] of [
        ["cpu", certificateRowsCpu(args)],
        ["wasm", certificateRowsWasm(args)],
      ] as const
    ) {
      assert.equal(got.masked, -1, name);
      const loads = new Int32Array(E);
      let objective = 0;
      for (let i = 0; i < N; i++) {
        const held = [...req.slots.subarray(i * k, i * k + k)];
        const p = Math.min(...held.map((j) => s[i * E + j] - q[j]));
        assert.equal(got.tokenPrices[i], p, `${name}: p[${i}]`);
        const sorted = [...held].sort((a, b) =>
          s[i * E + b] - s[i * E + a] || a - b
        );
        assert.deepEqual(
          [...got.experts.subarray(i * k, i * k + k)],
          sorted,
          `${name}: experts of ${i}`,
        );
        for (const j of held) {
          loads[j]++;
          objective += s[i * E + j];
        }
        let want = 0;
        for (let j = 0; j < E; j++) {
          const x = s[i * E + j] - p - q[j];
          if (!held.includes(j) && x > 0) want += x;
        }
        // Halving a sum of doubled terms gives the sum of the terms.
        assert.equal(got.terms[i], want, `${name}: terms[${i}]`);
        if (want > 0) positive++;
      }
      assert.deepEqual(got.loads, loads, `${name}: loads`);
      assert.equal(got.objective, objective, `${name}: objective`);
    }
    assert.ok(positive > N, `${positive} tokens with a positive sum`);
  });

  test("reports the first token that holds a masked pair", () => {
    const req = request(30, 12, 3, 5);
    const d = req.scores.data;
    d[17 * 12 + req.slots[17 * 3 + 2]] = -Infinity;
    d[25 * 12 + req.slots[25 * 3]] = -Infinity;
    const args = certificateRowsOp.validate(req);
    assert.equal(certificateRowsCpu(args).masked, 17);
    assert.equal(certificateRowsWasm(args).masked, 17);
  });

  test("refuses slots, prices and k that do not fit, naming them", () => {
    const req = request(3, 5, 2, 4);
    const bad = (
      change: Partial<CertificateRowsRequest>,
      kind: typeof TypeError,
      text: RegExp,
    ) =>
      assert.throws(
        () => certificateRowsOp.validate({ ...req, ...change }),
        (e) => e instanceof kind && text.test((e as Error).message),
      );
    bad(
      { slots: new Int32Array(5) },
      TypeError,
      /slots must be an Int32Array of tokens x k = 6/,
    );
    bad(
      { slots: Int32Array.from([0, 1, 2, 5, 3, 4]) },
      RangeError,
      /distinct experts from 0 to 4 for each token: entry 3 is 5/,
    );
    bad(
      { slots: Int32Array.from([0, 1, 2, 2, 3, 4]) },
      RangeError,
      /entry 3 is 2/,
    );
    bad(
      { k: 6 },
      RangeError,
      /k must be an integer from 1 to the number of experts \(5\)/,
    );
    bad(
      { expertPrices: new Float64Array([0, 0, 1e290, 0, 0]) },
      RangeError,
      /expertPrices must be of magnitude below 1e280: entry 2 is 1e\+290/,
    );
    bad(
      { expertPrices: new Float64Array([0, NaN, 0, 0, 0]) },
      RangeError,
      /entry 1 is NaN/,
    );
    bad(
      { expertPrices: new Float64Array(4) },
      TypeError,
      /expertPrices must be a Float64Array of 5 entries/,
    );
  });
});
