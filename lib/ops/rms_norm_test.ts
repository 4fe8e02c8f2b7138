import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import {
  rmsNormBackwardCpu,
  rmsNormBackwardOp,
  rmsNormCpu,
  rmsNormOp,
} from "./rms_norm.ts";

function randomArray(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

/** RMSNorm by its definition in float64. */
function naive(
  x: ArrayLike<number>,
  gain: ArrayLike<number>,
  rows: number,
  dim: number,
  eps: number,
): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: dim }, (_, d) => x[r * dim + d]);
    const ms = row.reduce((s, v) => s + v * v, 0) / dim;
    for (let d = 0; d < dim; d++) {
      out[r * dim + d] = row[d] / Math.sqrt(ms + eps) * gain[d];
    }
  }
  return out;
}

test("rmsNorm: a hand-computed row", () => {
  // x = (1, 1, 1, 1) -> mean square 1, rstd 1/sqrt(1 + 3) = 1/2 with eps 3.
  const args = rmsNormOp.validate({
    x: new Float32Array([1, 1, 1, 1, 2, 0, 0, 0]),
    gain: new Float32Array([1, 2, 3, 4]),
    rows: 2,
    dim: 4,
    eps: 3,
  });
  const out = rmsNormCpu(args);
  // Row 1: mean square 1, rstd 1/2 again: out = (1, 0, 0, 0).
  assert.deepEqual([...out], [0.5, 1, 1.5, 2, 1, 0, 0, 0]);
  assert.deepEqual([...args.rstd], [0.5, 0.5]);
});

test("rmsNorm: forward agrees with the float64 definition; backward with central differences", () => {
  const rng = new Rng(9);
  for (const [rows, dim] of [[1, 1], [3, 5], [17, 64], [4, 130]]) {
    const x = randomArray(rng, rows * dim), gain = randomArray(rng, dim);
    const eps = 1e-5;
    const f = rmsNormOp.validate({ x, gain, rows, dim, eps });
    rmsNormCpu(f);
    const want = naive(x, gain, rows, dim, eps);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(f.out[i] - want[i]) <= 3e-7 * (1 + Math.abs(want[i])));
    }
    const dOut = randomArray(rng, rows * dim);
    const old = randomArray(rng, dim);
    const g = rmsNormBackwardCpu(
      rmsNormBackwardOp.validate({
        x,
        gain,
        rstd: f.rstd,
        dOut,
        dGain: old.slice(),
        rows,
        dim,
      }),
    );
    const loss = (xs: Float64Array, gs: Float64Array) =>
      naive(xs, gs, rows, dim, eps).reduce((s, v, i) => s + v * dOut[i], 0);
    const xs = Float64Array.from(x), gs = Float64Array.from(gain);
    const h = 1e-6;
    const central = (v: Float64Array, i: number) => {
      const keep = v[i];
      v[i] = keep + h;
      const up = loss(xs, gs);
      v[i] = keep - h;
      const down = loss(xs, gs);
      v[i] = keep;
      return (up - down) / (2 * h);
    };
    for (let i = 0; i < rows * dim; i++) {
      const want = central(xs, i);
      assert.ok(
        Math.abs(g.dx[i] - want) <= 1e-5 * (1 + Math.abs(want)),
        `dx[${i}] ${rows}x${dim}: ${g.dx[i]} vs ${want}`,
      );
    }
    for (let d = 0; d < dim; d++) {
      const want = old[d] + central(gs, d); // accumulated onto the old value
      assert.ok(
        Math.abs(g.dGain[d] - want) <= 1e-5 * (1 + Math.abs(want)),
        `dGain[${d}] ${rows}x${dim}: ${g.dGain[d]} vs ${want}`,
      );
    }
  }
});

test("rmsNorm: bad arguments are errors naming them and showing the value", () => {
  const x = new Float32Array(6), gain = new Float32Array(3);
  assert.throws(
    () => rmsNormOp.validate({ x, gain, rows: 2, dim: 3, eps: -1 }),
    {
      name: "RangeError",
      message: "eps must be a number of at least 0: current value is -1",
    },
  );
  assert.throws(
    () => rmsNormOp.validate({ x, gain: new Float32Array(2), rows: 2, dim: 3 }),
    {
      name: "RangeError",
      message: "gain must hold dim = 3 entries: current length is 2",
    },
  );
  assert.throws(
    () =>
      rmsNormBackwardOp.validate({
        x,
        gain,
        rstd: new Float32Array(2),
        dOut: x,
        dx: x,
        rows: 2,
        dim: 3,
      }),
    { name: "RangeError", message: /^dx must not overlap x/ },
  );
});

test("rmsNorm: the backward's accumulate adds the written dx to the old one", () => {
  const rng = new Rng(21);
  const [rows, dim] = [5, 7];
  const x = randomArray(rng, rows * dim), gain = randomArray(rng, dim);
  const f = rmsNormOp.validate({ x, gain, rows, dim });
  rmsNormCpu(f);
  const dOut = randomArray(rng, rows * dim), old = randomArray(rng, rows * dim);
  const base = { x, gain, rstd: f.rstd, dOut, rows, dim };
  const written = rmsNormBackwardCpu(rmsNormBackwardOp.validate(base)).dx;
  const added = rmsNormBackwardCpu(
    rmsNormBackwardOp.validate({ ...base, dx: old.slice(), accumulate: true }),
  ).dx;
  for (let i = 0; i < rows * dim; i++) {
    assert.ok(
      Math.abs(added[i] - (old[i] + written[i])) <=
        2e-7 * (1 + Math.abs(added[i])),
    );
  }
});
