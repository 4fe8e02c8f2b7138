// The gap terms op against a naive sum of max(0, s - p - q) over each
// token's unheld experts, and its validator.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { gapTermsCpu, gapTermsOp, type GapTermsRequest } from "./gap_terms.ts";
import { gapTermsWasm } from "./gap_terms_wasm.ts";

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
  const tokenPrices = Float64Array.from({ length: N }, () => rng.normal());
  return {
    scores: { data, tokens: N, experts: E },
    k,
    slots,
    tokenPrices,
    expertPrices,
  } satisfies GapTermsRequest;
}

describe("gapTerms", () => {
  test("each token's sum of max(0, s - p - q) over the experts it does not hold", () => {
    const N = 70, E = 45, k = 4;
    const req = request(N, E, k, 11);
    const args = gapTermsOp.validate(req);
    const s = req.scores.data;
    let positive = 0;
    for (
      const [name, got] of [["cpu", gapTermsCpu(args)], [
        "wasm",
        gapTermsWasm(args),
      ]] as const
    ) {
      for (let i = 0; i < N; i++) {
        const held = new Set(req.slots.subarray(i * k, i * k + k));
        let want = 0;
        for (let j = 0; j < E; j++) {
          const x = s[i * E + j] - req.tokenPrices[i] - req.expertPrices[j];
          if (!held.has(j) && x > 0) want += x;
        }
        // Halving a sum of doubled terms gives the sum of the terms.
        assert.equal(got[i], want, `${name}: token ${i}`);
        if (want > 0) positive++;
      }
    }
    assert.ok(positive > N, `${positive} tokens with a positive sum`);
  });

  test("refuses slots, prices and k that do not fit, naming them", () => {
    const req = request(3, 5, 2, 4);
    const bad = (
      change: Partial<GapTermsRequest>,
      kind: typeof TypeError,
      text: RegExp,
    ) =>
      assert.throws(
        () => gapTermsOp.validate({ ...req, ...change }),
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
      /entry 3 is 5/,
    );
    bad(
      { k: 6 },
      RangeError,
      /k must be an integer from 1 to the number of experts \(5\)/,
    );
    bad(
      { tokenPrices: new Float64Array([0, NaN, 0]) },
      RangeError,
      /tokenPrices must be of magnitude below 1e280: entry 1 is NaN/,
    );
    bad(
      { expertPrices: new Float64Array([0, 0, 1e290, 0, 0]) },
      RangeError,
      /expertPrices must be of magnitude below 1e280: entry 2 is 1e\+290/,
    );
    bad(
      { expertPrices: new Float64Array(4) },
      TypeError,
      /expertPrices must be a Float64Array of 5 entries/,
    );
  });
});
