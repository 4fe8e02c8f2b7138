// The "cpu-threads" kernel of the matmul op: blocks of output rows split
// between the calling thread and worker threads (node:worker_threads,
// under Deno and Bun) that share the operands (_ops_pool.ts). Every thread
// runs the CPU kernel's row code (_matmul_rows.ts), whose sums do not
// depend on the split, so the answers are the CPU kernel's bit for bit.
import { registerKernel } from "./registry.ts";
import { type MatmulArgs, matmulCpu, matmulOp } from "./matmul.ts";
import { TILE_ROWS } from "./_matmul_rows.ts";
import { ACCUMULATE, KIND, TRANS_A, TRANS_B } from "./_ops_worker.ts";
import { runOnPool } from "./_ops_pool.ts";

/** Below this many multiply-adds (`m n k`) one thread is faster than waking others. */
export const MIN_PARALLEL_WORK = 1 << 18;

/**
 * Runs {@linkcode matmulOp} on `threads` threads, the calling one
 * included: blocks of output rows are claimed from a shared counter.
 * Small products (under 2¹⁸ multiply-adds, or fewer than 8 rows) run on the
 * calling thread. Operands on a `SharedArrayBuffer` are used in place
 * (views at any offset: a model's workspace can be one shared buffer);
 * others are copied to staging buffers kept between calls, and `out` is
 * copied back. The bits are those of {@linkcode matmulCpu}.
 *
 * @example Two threads give the one-thread bits
 * ```ts
 * import { matmulCpu, matmulOp, matmulThreads } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const m = 64, n = 64, k = 96;
 * const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
 * const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
 * const one = matmulCpu(matmulOp.validate({ a, b, m, n, k }));
 * const two = matmulThreads(matmulOp.validate({ a, b, m, n, k }), 2);
 * assert.deepEqual(two, one);
 * ```
 */
export function matmulThreads(args: MatmulArgs, threads: number): Float32Array {
  const { m, n, k } = args;
  const blockRows = Math.max(
    TILE_ROWS,
    Math.ceil(m / (4 * threads) / TILE_ROWS) * TILE_ROWS,
  );
  if (threads <= 1 || m < 8 || m * n * k < MIN_PARALLEL_WORK) {
    return matmulCpu(args);
  }
  const flags = (args.transA ? TRANS_A : 0) | (args.transB ? TRANS_B : 0) |
    (args.accumulate ? ACCUMULATE : 0);
  runOnPool(
    { kind: KIND.matmul, units: m, m, n, k, flags, seq: 0, headDim: 0 },
    [
      { data: args.a, read: true, written: false },
      { data: args.b, read: true, written: false },
      { data: args.out, read: args.accumulate, written: true },
    ],
    threads,
    blockRows,
  );
  return args.out;
}

registerKernel({
  op: matmulOp,
  backend: "cpu-threads",
  run: (args, env) =>
    matmulThreads(args, env.threads ?? navigator.hardwareConcurrency ?? 1),
  callers: ['trainTransformer() with backend "cpu-threads"'],
});
