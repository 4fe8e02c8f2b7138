import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { auxLoss, zLoss } from "./aux_loss.ts";
import { gradError, randomize } from "./_gradcheck.ts";

const close = (a: number, b: number) => Math.abs(a - b) < 1e-12;

describe("auxLoss", () => {
  const scores = new Float64Array([0.9, 0.1, 0.8, 0.2]);
  test("pins the DeepSeek form by hand", () => {
    // Both tokens pick expert 0: f = E/(K N) c = [2, 0], P = [0.85, 0.15].
    const both = {
      scores,
      tokens: 2,
      experts: 2,
      selected: new Int32Array([0, 0]),
      k: 1,
    };
    assert.ok(close(auxLoss(both, { alpha: 0.1 }), 0.1 * 2 * 0.85));
    // Split: f = [1, 1], P = [0.85, 0.15]: alpha * 1.
    const split = { ...both, selected: new Int32Array([0, 1]) };
    assert.ok(close(auxLoss(split, { alpha: 0.1 }), 0.1));
    // Sequence-wise, one token a sequence: (2*0.9 + 2*0.2) / 2 = 1.1.
    assert.ok(close(auxLoss(split, { alpha: 0.1, seqLen: 1 }), 0.11));
  });

  test("normalised scores enter P_j as probabilities", () => {
    const s = new Float64Array([0.6, 0.2, 0.3, 0.3]); // rows sum 0.8 and 0.6
    const b = {
      scores: s,
      tokens: 2,
      experts: 2,
      selected: new Int32Array([0, 1]),
      k: 1,
    };
    // P = [(0.75 + 0.5) / 2, (0.25 + 0.5) / 2], f = [1, 1]: sum P = 1.
    assert.ok(close(auxLoss(b, { alpha: 1, normalize: true }), 1));
  });

  for (const normalize of [false, true]) {
    for (const seqLen of [12, 4]) {
      test(`gradient by finite differences (normalize ${normalize}, seqLen ${seqLen} of 12)`, () => {
        const rng = new Rng(1);
        const n = 12, E = 5, k = 2;
        const s = Float64Array.from(
          { length: n * E },
          () => 0.05 + rng.uniform(),
        );
        const selected = Int32Array.from(
          { length: n * k },
          (_, q) => (q * 3 + (q >> 2)) % E,
        );
        const batch = { scores: s, tokens: n, experts: E, selected, k };
        const grad = new Float64Array(n * E);
        const opts = { alpha: 0.3, seqLen, normalize };
        auxLoss(batch, { ...opts, grad });
        assert.ok(gradError(() => auxLoss(batch, opts), s, grad) < 1e-7);
      });
    }
  }

  test("rejects a sequence length that does not divide the batch", () => {
    const b = {
      scores,
      tokens: 2,
      experts: 2,
      selected: new Int32Array([0, 1]),
      k: 1,
    };
    assert.throws(() => auxLoss(b, { alpha: 1, seqLen: 3 }), RangeError);
    assert.throws(
      () => auxLoss({ ...b, selected: new Int32Array(1) }, { alpha: 1 }),
      TypeError,
    );
    assert.throws(() => auxLoss(b, { alpha: -1 }), RangeError);
  });
});

describe("zLoss", () => {
  test("gradient by finite differences", () => {
    const r = randomize(new Float64Array(8 * 5), new Rng(2), 2);
    const batch = { scores: r, tokens: 8, experts: 5 };
    const grad = new Float64Array(r.length);
    zLoss(batch, { coef: 0.01, grad });
    assert.ok(gradError(() => zLoss(batch, { coef: 0.01 }), r, grad) < 1e-7);
  });

  test("large logits cost quadratically", () => {
    const big = zLoss({
      scores: new Float64Array([100, 100]),
      tokens: 1,
      experts: 2,
    }, { coef: 1 });
    assert.ok(close(big / (100 + Math.LN2) ** 2, 1));
  });
});
