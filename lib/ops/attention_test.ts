import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import {
  attentionBackwardCpu,
  attentionBackwardOp,
  attentionCpu,
  attentionOp,
  type AttentionShape,
} from "./attention.ts";
import {
  attentionBackwardThreads,
  attentionThreads,
} from "./attention_threads.ts";

function randomArray(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
}

/**
 * Attention by its definition in float64: the full score matrix with
 * -Infinity above the diagonal, a softmax per row, then P V.
 */
function naiveForward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionShape,
): { out: Float64Array; probs: Float64Array } {
  const { batch, heads, seq: S, headDim: D } = s;
  const out = new Float64Array(batch * heads * S * D);
  const probs = new Float64Array(batch * heads * S * S);
  for (let h = 0; h < batch * heads; h++) {
    const at = (x: number, i: number, d: number) => x + (h * S + i) * D + d;
    for (let i = 0; i < S; i++) {
      const scores: number[] = [];
      for (let j = 0; j < S; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[at(0, i, d)] * k[at(0, j, d)];
        scores.push(j <= i ? dot / Math.sqrt(D) : -Infinity);
      }
      const max = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - max));
      const total = e.reduce((x, y) => x + y, 0);
      for (let j = 0; j < S; j++) probs[(h * S + i) * S + j] = e[j] / total;
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let j = 0; j < S; j++) {
          o += probs[(h * S + i) * S + j] * v[at(0, j, d)];
        }
        out[at(0, i, d)] = o;
      }
    }
  }
  return { out, probs };
}

function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    assert.ok(
      err <= tol * (1 + Math.abs(want[i])),
      `${what}[${i}]: ${got[i]} against ${want[i]}`,
    );
  }
}

const SHAPES: AttentionShape[] = [
  { batch: 1, heads: 1, seq: 1, headDim: 1 },
  { batch: 2, heads: 3, seq: 5, headDim: 4 },
  { batch: 1, heads: 2, seq: 17, headDim: 7 },
];

test("attention: a hand-computed causal head", () => {
  // seq 3, headDim 1 (scale 1). Row 0 attends to itself; row 1 has equal
  // scores (q = 0): weights 1/2, 1/2; row 2: scores q k = [0, 0, ln 2].
  const q = new Float32Array([0, 0, 1]);
  const k = new Float32Array([0, 0, Math.log(2)]);
  const v = new Float32Array([3, 5, 9]);
  const args = attentionOp.validate({
    q,
    k,
    v,
    batch: 1,
    heads: 1,
    seq: 3,
    headDim: 1,
  });
  const out = attentionCpu(args);
  // Row 2: scores [0, 0, ln 2] -> weights [1/4, 1/4, 1/2].
  assertClose(
    args.probs,
    [1, 0, 0, 0.5, 0.5, 0, 0.25, 0.25, 0.5],
    1e-7,
    "probs",
  );
  assertClose(out, [3, 4, 0.75 + 1.25 + 4.5], 1e-7, "out");
});

test("attention: forward agrees with the definition in float64 within float32 rounding", () => {
  const rng = new Rng(3);
  for (const s of SHAPES) {
    const n = s.batch * s.heads * s.seq * s.headDim;
    const q = randomArray(rng, n),
      k = randomArray(rng, n),
      v = randomArray(rng, n);
    const args = attentionOp.validate({ q, k, v, ...s });
    attentionCpu(args);
    const want = naiveForward(q, k, v, s);
    assertClose(args.out, want.out, 2e-7, "out");
    assertClose(args.probs, want.probs, 2e-7, "probs");
  }
});

test("attention: backward matches central differences of the float64 forward", () => {
  const rng = new Rng(5);
  for (const s of SHAPES) {
    const n = s.batch * s.heads * s.seq * s.headDim;
    const q = randomArray(rng, n),
      k = randomArray(rng, n),
      v = randomArray(rng, n);
    const dOut = randomArray(rng, n);
    const fwd = attentionOp.validate({ q, k, v, ...s });
    attentionCpu(fwd);
    const g = attentionBackwardCpu(
      attentionBackwardOp.validate({ q, k, v, probs: fwd.probs, dOut, ...s }),
    );
    // L = Σ dOut ∘ out; dL/dx by central differences on float64 copies.
    const loss = (x: Float64Array[]) => {
      const { out } = naiveForward(x[0], x[1], x[2], s);
      let l = 0;
      for (let i = 0; i < n; i++) l += dOut[i] * out[i];
      return l;
    };
    const inputs = [
      Float64Array.from(q),
      Float64Array.from(k),
      Float64Array.from(v),
    ];
    const grads = [g.dq, g.dk, g.dv];
    const h = 1e-6;
    for (let t = 0; t < 3; t++) {
      for (let i = 0; i < n; i++) {
        const keep = inputs[t][i];
        inputs[t][i] = keep + h;
        const up = loss(inputs);
        inputs[t][i] = keep - h;
        const down = loss(inputs);
        inputs[t][i] = keep;
        const want = (up - down) / (2 * h);
        assert.ok(
          Math.abs(grads[t][i] - want) <= 1e-5 * (1 + Math.abs(want)),
          `${["dq", "dk", "dv"][t]}[${i}] of ${JSON.stringify(s)}: ${
            grads[t][i]
          } against ${want}`,
        );
      }
    }
  }
});

test("attention: the backward overwrites its outputs", () => {
  const s = { batch: 1, heads: 1, seq: 2, headDim: 2 };
  const q = new Float32Array([1, 2, 3, 4]), k = q.slice(), v = q.slice();
  const fwd = attentionOp.validate({ q, k, v, ...s });
  attentionCpu(fwd);
  const fresh = attentionBackwardCpu(
    attentionBackwardOp.validate({ q, k, v, probs: fwd.probs, dOut: q, ...s }),
  );
  const dirty = new Float32Array(4).fill(99);
  const again = attentionBackwardCpu(
    attentionBackwardOp.validate({
      q,
      k,
      v,
      probs: fwd.probs,
      dOut: q,
      dq: dirty.slice(),
      dk: dirty.slice(),
      dv: dirty.slice(),
      ...s,
    }),
  );
  assert.deepEqual(again, fresh);
});

test("attention: bad arguments are errors naming them and showing the value", () => {
  const x = new Float32Array(8);
  const s = { batch: 1, heads: 2, seq: 2, headDim: 2 };
  assert.throws(
    () => attentionOp.validate({ q: x, k: x, v: x, ...s, seq: 0 }),
    {
      name: "RangeError",
      message: "seq must be an integer of at least 1: current value is 0",
    },
  );
  assert.throws(
    () => attentionOp.validate({ q: x, k: x, v: new Float32Array(7), ...s }),
    {
      name: "RangeError",
      message:
        "v must hold batch x heads x seq x headDim = 1 x 2 x 2 x 2 = 8 entries: current length is 7",
    },
  );
  assert.throws(
    () =>
      attentionOp.validate({
        q: x,
        k: x,
        v: x,
        probs: new Float64Array(8) as unknown as Float32Array,
        ...s,
      }),
    {
      name: "TypeError",
      message:
        "probs must be a Float32Array: current value is a Float64Array of length 8",
    },
  );
  assert.throws(
    () => attentionOp.validate({ q: x, k: x, v: x, out: x, ...s }),
    { name: "RangeError", message: /^out must not overlap q/ },
  );
  assert.throws(
    () =>
      attentionBackwardOp.validate({
        q: x,
        k: x,
        v: x,
        probs: new Float32Array(7),
        dOut: x,
        dq: new Float32Array(8),
        dk: new Float32Array(8),
        dv: new Float32Array(8),
        ...s,
      }),
    {
      name: "RangeError",
      message:
        "probs must hold batch x heads x seq x seq = 1 x 2 x 2 x 2 = 8 entries: current length is 7",
    },
  );
});

test("attention: cpu-threads gives the CPU kernels' bits for 1 to 3 threads", () => {
  const rng = new Rng(13);
  const s = { batch: 3, heads: 3, seq: 40, headDim: 12 };
  const n = s.batch * s.heads * s.seq * s.headDim;
  const q = randomArray(rng, n),
    k = randomArray(rng, n),
    v = randomArray(rng, n);
  const dOut = randomArray(rng, n);
  const want = attentionOp.validate({ q, k, v, ...s });
  attentionCpu(want);
  const grads = attentionBackwardCpu(
    attentionBackwardOp.validate({ q, k, v, probs: want.probs, dOut, ...s }),
  );
  for (const threads of [1, 2, 3]) {
    const got = attentionOp.validate({ q, k, v, ...s });
    attentionThreads(got, threads);
    assert.deepEqual(got.out, want.out, `out, ${threads} threads`);
    assert.deepEqual(got.probs, want.probs, `probs, ${threads} threads`);
    const g = attentionBackwardThreads(
      attentionBackwardOp.validate({ q, k, v, probs: want.probs, dOut, ...s }),
      threads,
    );
    assert.deepEqual(g, grads, `grads, ${threads} threads`);
  }
});
