import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import {
  moeCombineBackwardCpu,
  moeCombineBackwardOp,
  moeCombineCpu,
  moeCombineOp,
  moeDispatchBackwardCpu,
  moeDispatchBackwardOp,
  moeDispatchCpu,
  moeDispatchOp,
} from "./moe_dispatch.ts";

function randomArray(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

/** Distinct experts per token, a fifth of the slots dropped (-1). */
function randomExperts(
  rng: Rng,
  tokens: number,
  k: number,
  E: number,
): Int32Array {
  const experts = new Int32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const order = Array.from({ length: E }, (_, e) => e);
    for (let j = 0; j < k; j++) {
      const pick = j + rng.int(E - j);
      [order[j], order[pick]] = [order[pick], order[j]];
      experts[t * k + j] = rng.uniform() < 0.2 ? -1 : order[j];
    }
  }
  return experts;
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

test("moeDispatch: rows grouped by expert, by token within an expert, like a per-expert scan", () => {
  const rng = new Rng(1);
  for (
    const [tokens, k, dim, E] of [[1, 1, 1, 1], [7, 2, 3, 4], [50, 3, 5, 8], [
      0,
      2,
      4,
      3,
    ]]
  ) {
    const x = randomArray(rng, tokens * dim);
    const experts = randomExperts(rng, tokens, k, E);
    const args = moeDispatchOp.validate({
      x,
      experts,
      tokens,
      k,
      dim,
      numExperts: E,
      out: randomArray(rng, tokens * k * dim),
    });
    const { out, offsets, slotOf } = moeDispatchCpu(args);
    // Brute force: for each expert in turn, its slots in order.
    let row = 0;
    const wantSlot = new Int32Array(tokens * k).fill(-1);
    const wantOffsets = [0];
    const wantOut = new Float32Array(tokens * k * dim);
    for (let e = 0; e < E; e++) {
      for (let t = 0; t < tokens; t++) {
        for (let j = 0; j < k; j++) {
          if (experts[t * k + j] !== e) continue;
          wantSlot[t * k + j] = row;
          for (let d = 0; d < dim; d++) {
            wantOut[row * dim + d] = x[t * dim + d];
          }
          row++;
        }
      }
      wantOffsets.push(row);
    }
    assert.deepEqual([...offsets], wantOffsets);
    assert.deepEqual(slotOf, wantSlot);
    assert.deepEqual(out, wantOut);
  }
});

test("moeCombine: a hand-computed sum and its accumulation", () => {
  const y = new Float32Array([1, 2, 3, 4, 5, 6]); // rows (1,2), (3,4), (5,6)
  const weights = new Float32Array([0.5, 2, 1, 0]);
  const slotOf = new Int32Array([2, 0, 1, -1]);
  const out = new Float32Array([10, 20, 30, 40]);
  moeCombineCpu(
    moeCombineOp.validate({
      y: new Float32Array([...y, 0, 0]),
      weights,
      slotOf,
      out,
      tokens: 2,
      k: 2,
      dim: 2,
      accumulate: true,
    }),
  );
  // Token 0: 0.5 (5, 6) + 2 (1, 2) = (4.5, 7); token 1: (3, 4).
  assert.deepEqual([...out], [14.5, 27, 33, 44]);
});

test("moe backwards are the adjoints of dispatch and combine; dWeights by differences", () => {
  const rng = new Rng(2);
  for (
    const [tokens, k, dim, E] of [[1, 1, 1, 1], [9, 2, 4, 4], [40, 4, 7, 8]]
  ) {
    const x = randomArray(rng, tokens * dim);
    const experts = randomExperts(rng, tokens, k, E);
    const d = moeDispatchOp.validate({
      x,
      experts,
      tokens,
      k,
      dim,
      numExperts: E,
    });
    moeDispatchCpu(d);
    const rows = tokens * k * dim;
    // <dispatch(x), R> = <x, dispatchBackward(R)> for any R.
    const R = randomArray(rng, rows);
    const dx = moeDispatchBackwardCpu(
      moeDispatchBackwardOp.validate({
        dRows: R,
        slotOf: d.slotOf,
        tokens,
        k,
        dim,
      }),
    );
    const lhs = dot(d.out, R), rhs = dot(x, dx);
    assert.ok(
      Math.abs(lhs - rhs) <= 1e-5 * (1 + Math.abs(lhs)),
      `${lhs} vs ${rhs}`,
    );
    // Combine is linear in y: <combine(y), G> = <y, dy>; and in each weight.
    const y = randomArray(rng, rows), w = randomArray(rng, tokens * k);
    const G = randomArray(rng, tokens * dim);
    const combine = (weights: Float32Array) =>
      moeCombineCpu(
        moeCombineOp.validate({ y, weights, slotOf: d.slotOf, tokens, k, dim }),
      );
    const g = moeCombineBackwardCpu(
      moeCombineBackwardOp.validate({
        y,
        weights: w,
        slotOf: d.slotOf,
        dOut: G,
        dy: randomArray(rng, rows),
        tokens,
        k,
        dim,
      }),
    );
    const base = dot(combine(w), G);
    const adj = dot(y, g.dy);
    assert.ok(
      Math.abs(base - adj) <= 1e-5 * (1 + Math.abs(base)),
      `${base} vs ${adj}`,
    );
    for (let s = 0; s < tokens * k; s++) {
      const moved = w.slice();
      moved[s] += 1; // linear in w: the difference is the derivative
      const want = dot(combine(moved), G) - base;
      assert.ok(
        Math.abs(g.dWeights[s] - want) <= 1e-5 * (1 + Math.abs(want)),
        `dWeights[${s}]`,
      );
    }
    // Rows no slot uses get a zero gradient.
    const used = new Set(d.slotOf);
    for (let r = 0; r < tokens * k; r++) {
      if (!used.has(r)) {
        for (let c = 0; c < dim; c++) assert.equal(g.dy[r * dim + c], 0);
      }
    }
  }
});

test("moe ops: bad arguments are errors naming them and showing the value", () => {
  const x = new Float32Array(4);
  assert.throws(
    () =>
      moeDispatchOp.validate({
        x,
        experts: new Int32Array([0, 5]),
        tokens: 2,
        k: 1,
        dim: 2,
        numExperts: 4,
      }),
    {
      name: "RangeError",
      message: "experts must hold -1 or experts in [0, 4): slot 1 is 5",
    },
  );
  assert.throws(
    () =>
      moeDispatchOp.validate({
        x,
        experts: new Float32Array(2) as unknown as Int32Array,
        tokens: 2,
        k: 1,
        dim: 2,
        numExperts: 4,
      }),
    {
      name: "TypeError",
      message:
        "experts must be an Int32Array: current value is a Float32Array of length 2",
    },
  );
  assert.throws(
    () =>
      moeCombineOp.validate({
        y: x,
        weights: new Float32Array(2),
        slotOf: new Int32Array([0, 2]),
        tokens: 2,
        k: 1,
        dim: 2,
      }),
    {
      name: "RangeError",
      message: "slotOf must hold -1 or rows in [0, 2): slot 1 is 2",
    },
  );
  assert.throws(
    () =>
      moeDispatchBackwardOp.validate({
        dRows: x,
        slotOf: new Int32Array(2),
        tokens: 2,
        k: 1,
        dim: 2,
        accumulate: "yes" as unknown as boolean,
      }),
    {
      name: "TypeError",
      message: 'accumulate must be a boolean: current value is "yes"',
    },
  );
});
