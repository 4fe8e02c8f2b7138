import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { type MatmulArgs, matmulCpu, matmulOp } from "./matmul.ts";
import { matmulThreads } from "./matmul_threads.ts";
import { kernelFor } from "./registry.ts";

function randomArray(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform() * 2 - 1;
  return x;
}

/** The definition, one entry at a time: Σ_p op(a)[i,p] op(b)[p,j] in float64. */
function naive(args: MatmulArgs, before: Float32Array): Float32Array {
  const { a, b, m, n, k, transA, transB, accumulate } = args;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[p * m + i] : a[i * k + p];
        const y = transB ? b[j * k + p] : b[p * n + j];
        s += x * y;
      }
      out[i * n + j] = accumulate ? s + before[i * n + j] : s;
    }
  }
  return out;
}

test("matmul: a hand-computed product, each transpose and accumulate", () => {
  // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]: AB = [[19, 22], [43, 50]],
  // AᵀB = [[26, 30], [38, 44]], ABᵀ = [[17, 23], [39, 53]],
  // AᵀBᵀ = [[23, 31], [34, 46]].
  const A = new Float32Array([1, 2, 3, 4]), B = new Float32Array([5, 6, 7, 8]);
  const run = (transA: boolean, transB: boolean) => [...matmulCpu(
    matmulOp.validate({ a: A, b: B, m: 2, n: 2, k: 2, transA, transB }),
  )];
  assert.deepEqual(run(false, false), [19, 22, 43, 50]);
  assert.deepEqual(run(true, false), [26, 30, 38, 44]);
  assert.deepEqual(run(false, true), [17, 23, 39, 53]);
  assert.deepEqual(run(true, true), [23, 31, 34, 46]);
  const out = new Float32Array([1, 1, 1, 1]);
  matmulCpu(
    matmulOp.validate({ a: A, b: B, out, m: 2, n: 2, k: 2, accumulate: true }),
  );
  assert.deepEqual([...out], [20, 23, 44, 51]);
});

test("matmul: the CPU kernel gives the naive sum's bits on shapes off the 4 x 4 tile", () => {
  const rng = new Rng(7);
  for (
    const [m, n, k] of [
      [1, 1, 1],
      [5, 7, 3],
      [8, 8, 8],
      [13, 6, 17],
      [4, 9, 1],
      [3, 2, 0],
      [0, 4, 4],
      [33, 31, 29],
    ]
  ) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const accumulate of [false, true]) {
          const before = randomArray(rng, m * n);
          const args = matmulOp.validate({
            a: randomArray(rng, m * k),
            b: randomArray(rng, k * n),
            out: before.slice(),
            m,
            n,
            k,
            transA,
            transB,
            accumulate,
          });
          assert.deepEqual(
            matmulCpu(args),
            naive(args, before),
            `${m}x${n}x${k} transA=${transA} transB=${transB} accumulate=${accumulate}`,
          );
        }
      }
    }
  }
});

test("matmul: cpu-threads gives the CPU kernel's bits for 1 to 3 threads, shared or not", () => {
  const rng = new Rng(11);
  const kernel = kernelFor(matmulOp, "cpu-threads");
  assert.ok(kernel);
  for (const [m, n, k] of [[130, 67, 45], [64, 64, 64], [9, 300, 100]]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randomArray(rng, m * k), b = randomArray(rng, k * n);
        const before = randomArray(rng, m * n);
        const want = matmulCpu(
          matmulOp.validate({
            a,
            b,
            out: before.slice(),
            m,
            n,
            k,
            transA,
            transB,
            accumulate: true,
          }),
        );
        for (const threads of [1, 2, 3]) {
          const out = before.slice();
          kernel.run(
            matmulOp.validate({
              a,
              b,
              out,
              m,
              n,
              k,
              transA,
              transB,
              accumulate: true,
            }),
            { threads },
          );
          assert.deepEqual(out, want, `${m}x${n}x${k} ${threads} threads`);
        }
        // Operands as views at offsets of one shared buffer: used in place.
        const sab = new SharedArrayBuffer(4 * (3 + m * k + n * k + m * n));
        const sa = new Float32Array(sab, 4, m * k);
        const sb = new Float32Array(sab, 4 * (2 + m * k), n * k);
        const so = new Float32Array(sab, 4 * (3 + m * k + n * k), m * n);
        sa.set(a);
        sb.set(b);
        so.set(before);
        matmulThreads(
          matmulOp.validate({
            a: sa,
            b: sb,
            out: so,
            m,
            n,
            k,
            transA,
            transB,
            accumulate: true,
          }),
          2,
        );
        assert.deepEqual(so.slice(), want);
      }
    }
  }
});

test("matmul: bad arguments are errors naming them and showing the value", () => {
  const a = new Float32Array(6), b = new Float32Array(6);
  assert.throws(
    () => matmulOp.validate({ a, b, m: 2, n: 2, k: 3.5 }),
    {
      name: "RangeError",
      message: "k must be an integer of at least 0: current value is 3.5",
    },
  );
  assert.throws(
    () =>
      matmulOp.validate({
        a: [1, 2] as unknown as Float32Array,
        b,
        m: 2,
        n: 2,
        k: 3,
      }),
    {
      name: "TypeError",
      message:
        "a must be a Float32Array: current value is an array of length 2",
    },
  );
  assert.throws(
    () => matmulOp.validate({ a, b, m: 2, n: 3, k: 3 }),
    {
      name: "RangeError",
      message: "b must hold k x n = 3 x 3 = 9 entries: current length is 6",
    },
  );
  assert.throws(
    () => matmulOp.validate({ a, b, m: 3, n: 2, k: 2, transA: true }),
    /a must hold k x m = 2 x 3 = 6 entries|b must hold k x n = 2 x 2 = 4 entries/,
  );
  assert.throws(
    () =>
      matmulOp.validate({
        a,
        b,
        m: 2,
        n: 2,
        k: 3,
        transB: 1 as unknown as boolean,
      }),
    {
      name: "TypeError",
      message: "transB must be a boolean: current value is 1",
    },
  );
  const whole = new Float32Array(10);
  assert.throws(
    () =>
      matmulOp.validate({
        a: whole.subarray(0, 6),
        b,
        out: whole.subarray(5, 9),
        m: 2,
        n: 2,
        k: 3,
      }),
    {
      name: "RangeError",
      message:
        "out must not overlap a: bytes [20, 36) and [0, 24) of one buffer",
    },
  );
});
