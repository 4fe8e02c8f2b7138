// The matmul op: out = (accumulate ? out : 0) + op(a) op(b) on row-major
// float32 matrices, the dense layers of the transformer and their
// backward passes. Its "cpu" kernel is here; "cpu-threads" is in
// matmul_threads.ts and "webgpu" in kernels/matmul.ts.
import { checkInteger, checkObject } from "../validate.ts";
import { checkDisjoint, checkFlag, checkFloats } from "./_tensor_check.ts";
import { defineOp, registerKernel } from "./registry.ts";
import { matmulRows } from "./_matmul_rows.ts";

/** What the matmul op's validator takes. */
export interface MatmulRequest {
  /** `op(a)`'s storage: `m x k`, or `k x m` when `transA`. */
  a: Float32Array;
  /** `op(b)`'s storage: `k x n`, or `n x k` when `transB`. */
  b: Float32Array;
  /** Output, `m x n` (must not overlap `a` or `b`). Default: a new one. */
  out?: Float32Array;
  /** Rows of `op(a)` and of `out`. */
  m: number;
  /** Columns of `op(b)` and of `out`. */
  n: number;
  /** Columns of `op(a)`, rows of `op(b)`. */
  k: number;
  /** Use `a`ᵀ (`a` stored `k x m`). Default: false. */
  transA?: boolean;
  /** Use `b`ᵀ (`b` stored `n x k`). Default: false. */
  transB?: boolean;
  /** Add to `out` instead of overwriting it. Default: false. */
  accumulate?: boolean;
}

/** Checked arguments of every matmul kernel. */
export interface MatmulArgs extends MatmulRequest {
  out: Float32Array;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
}

/**
 * `out (m x n) = (accumulate ? out : 0) + op(a) · op(b)`, where `op(a)` is
 * `a` (stored `m x k`) or `aᵀ` (`a` stored `k x m`, `transA`), and `op(b)`
 * is `b` (stored `k x n`) or `bᵀ` (`b` stored `n x k`, `transB`). All
 * row-major `Float32Array`s; returns `out`.
 *
 * The backward of `Y = X Wᵀ` is `dX = dY W` and `dW += dYᵀ X`
 * (`transA`, `accumulate`).
 *
 * Precision: the `"cpu"` and `"cpu-threads"` kernels sum each entry in
 * float64 over `p = 0 .. k-1` (the products of float32 values are exact)
 * and round once to float32, adding the old value first when
 * accumulating, so both give the same bits for any thread count. The
 * `"webgpu"` kernel sums in float32: it agrees within
 * `k · 2⁻²³ · Σₚ |op(a)ᵢₚ op(b)ₚⱼ|` per entry. Values are not scanned:
 * NaN and infinities propagate as in any matrix product.
 *
 * @example A 2 x 3 by 3 x 2 product, then the same with b stored transposed
 * ```ts
 * import { matmulOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const a = new Float32Array([1, 2, 3, 4, 5, 6]); // 2 x 3
 * const b = new Float32Array([1, 0, 0, 1, 1, 1]); // 3 x 2
 * const args = matmulOp.validate({ a, b, m: 2, n: 2, k: 3 });
 * const out = requireKernel(matmulOp, "cpu").run(args, {});
 * assert.deepEqual([...out], [4, 5, 10, 11]);
 *
 * const bT = new Float32Array([1, 0, 1, 0, 1, 1]); // bᵀ, 2 x 3
 * const again = matmulOp.validate({ a, b: bT, m: 2, n: 2, k: 3, transB: true });
 * assert.deepEqual([...requireKernel(matmulOp, "cpu").run(again, {})], [4, 5, 10, 11]);
 * ```
 */
export const matmulOp = defineOp<MatmulRequest, MatmulArgs, Float32Array>({
  name: "matmul",
  summary: "out = (accumulate ? out : 0) + op(a) op(b), float32 row-major",
  validate: checkMatmul,
});

function checkMatmul(request: MatmulRequest): MatmulArgs {
  checkObject("request", request);
  const m = checkInteger("m", request.m);
  const n = checkInteger("n", request.n);
  const k = checkInteger("k", request.k);
  const transA = checkFlag("transA", request.transA);
  const transB = checkFlag("transB", request.transB);
  const accumulate = checkFlag("accumulate", request.accumulate);
  const a = checkFloats(
    "a",
    request.a,
    m * k,
    transA ? `k x m = ${k} x ${m}` : `m x k = ${m} x ${k}`,
  );
  const b = checkFloats(
    "b",
    request.b,
    k * n,
    transB ? `n x k = ${n} x ${k}` : `k x n = ${k} x ${n}`,
  );
  const out = request.out === undefined
    ? new Float32Array(m * n)
    : checkFloats("out", request.out, m * n, `m x n = ${m} x ${n}`);
  checkDisjoint("out", out, "a", a);
  checkDisjoint("out", out, "b", b);
  return { a, b, out, m, n, k, transA, transB, accumulate };
}

/** The reference CPU kernel of {@linkcode matmulOp}; returns `args.out`. */
export function matmulCpu(args: MatmulArgs): Float32Array {
  matmulRows(args.a, args.b, args.out, args, 0, args.m);
  return args.out;
}

registerKernel({
  op: matmulOp,
  backend: "cpu",
  run: matmulCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});
