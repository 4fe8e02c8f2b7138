// The "cpu-threads" kernels of the attention ops: (sequence, head) pairs
// split between the calling thread and worker threads that share the
// tensors (_ops_pool.ts). Every thread runs the CPU kernels' loops
// (_attention_heads.ts) on the pairs it claims, so the answers are the CPU
// kernels' bit for bit.
import { registerKernel } from "./registry.ts";
import {
  type AttentionArgs,
  type AttentionBackwardArgs,
  attentionBackwardCpu,
  attentionBackwardOp,
  attentionCpu,
  type AttentionGrads,
  attentionOp,
  type AttentionShape,
} from "./attention.ts";
import { KIND } from "./_ops_worker.ts";
import { runOnPool } from "./_ops_pool.ts";

/** Below this many score multiply-adds (`pairs seq² headDim`) one thread runs. */
export const MIN_PARALLEL_ATTENTION = 1 << 16;

function split(s: AttentionShape, threads: number): number | undefined {
  const pairs = s.batch * s.heads;
  if (
    threads <= 1 || pairs < 2 ||
    pairs * s.seq * s.seq * s.headDim < MIN_PARALLEL_ATTENTION
  ) {
    return undefined;
  }
  return Math.max(1, Math.floor(pairs / (4 * threads)));
}

function job(kind: number, s: AttentionShape) {
  return {
    kind,
    units: s.batch * s.heads,
    m: 0,
    n: 0,
    k: 0,
    flags: 0,
    seq: s.seq,
    headDim: s.headDim,
  };
}

const input = (data: Float32Array) => ({ data, read: true, written: false });
const output = (data: Float32Array) => ({ data, read: false, written: true });

/**
 * Runs {@linkcode attentionOp} on `threads` threads, the calling one
 * included, in blocks of (sequence, head) pairs; small calls (fewer than
 * two pairs, or under 2¹⁶ score multiply-adds) run on the calling thread.
 * Tensors on a `SharedArrayBuffer` are used in place, others copied. The
 * bits are those of {@linkcode attentionCpu}.
 *
 * @example Two threads give the one-thread bits
 * ```ts
 * import { attentionCpu, attentionOp, attentionThreads } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const shape = { batch: 2, heads: 4, seq: 32, headDim: 16 };
 * const n = 2 * 4 * 32 * 16;
 * const x = (f: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(f * i));
 * const [q, k, v] = [x(1), x(2), x(3)];
 * const one = attentionCpu(attentionOp.validate({ q, k, v, ...shape }));
 * const two = attentionThreads(attentionOp.validate({ q, k, v, ...shape }), 2);
 * assert.deepEqual(two, one);
 * ```
 */
export function attentionThreads(
  args: AttentionArgs,
  threads: number,
): Float32Array {
  const block = split(args, threads);
  if (block === undefined) return attentionCpu(args);
  runOnPool(
    job(KIND.attention, args),
    [
      input(args.q),
      input(args.k),
      input(args.v),
      output(args.out),
      output(args.probs),
    ],
    threads,
    block,
  );
  return args.out;
}

/**
 * Runs {@linkcode attentionBackwardOp} on `threads` threads, as
 * {@linkcode attentionThreads} splits the forward; the bits are those of
 * {@linkcode attentionBackwardCpu}.
 */
export function attentionBackwardThreads(
  args: AttentionBackwardArgs,
  threads: number,
): AttentionGrads {
  const block = split(args, threads);
  if (block === undefined) return attentionBackwardCpu(args);
  runOnPool(
    job(KIND.attentionBackward, args),
    [
      input(args.q),
      input(args.k),
      input(args.v),
      input(args.probs),
      input(args.dOut),
      output(args.dq),
      output(args.dk),
      output(args.dv),
    ],
    threads,
    block,
  );
  return { dq: args.dq, dk: args.dk, dv: args.dv };
}

const threadsOf = (env: { threads?: number }) =>
  env.threads ?? navigator.hardwareConcurrency ?? 1;

registerKernel({
  op: attentionOp,
  backend: "cpu-threads",
  run: (args, env) => attentionThreads(args, threadsOf(env)),
  callers: ['trainTransformer() with backend "cpu-threads"'],
});

registerKernel({
  op: attentionBackwardOp,
  backend: "cpu-threads",
  run: (args, env) => attentionBackwardThreads(args, threadsOf(env)),
  callers: ['trainTransformer() with backend "cpu-threads"'],
});
