// The attention ops: the core of causal multi-head self-attention, after
// the q/k/v projections and before the output projection, and its
// backward. "cpu" kernels here, "webgpu" in kernels/attention.ts.
import { checkInteger, checkObject } from "../validate.ts";
import { defineOp, registerKernel } from "./registry.ts";
import { checkAllDisjoint, checkFloats } from "./_tensor_check.ts";
import { attentionBackwardHeads, attentionHeads } from "./_attention_heads.ts";

/** The sizes of an attention call. */
export interface AttentionShape {
  /** Sequences. */
  batch: number;
  /** Heads per sequence. */
  heads: number;
  /** Positions per sequence. */
  seq: number;
  /** Width of one head. */
  headDim: number;
}

/** What the attention op's validator takes. */
export interface AttentionRequest extends AttentionShape {
  /** Queries, `(batch, heads, seq, headDim)`. */
  q: Float32Array;
  /** Keys, `(batch, heads, seq, headDim)`. */
  k: Float32Array;
  /** Values, `(batch, heads, seq, headDim)`. */
  v: Float32Array;
  /** Output, `(batch, heads, seq, headDim)`. Default: a new one. */
  out?: Float32Array;
  /** Attention weights, `(batch, heads, seq, seq)`, kept for the backward. Default: a new one. */
  probs?: Float32Array;
}

/** Checked arguments of every attention kernel. */
export interface AttentionArgs extends AttentionRequest {
  out: Float32Array;
  probs: Float32Array;
}

/**
 * Causal scaled dot-product attention per sequence and head:
 * `probs[i, j] = softmax_j(q_i · k_j / sqrt(headDim))` over `j <= i` (0
 * above the diagonal) and `out_i = Σ_j probs[i, j] v_j`. Tensors are
 * row-major `(batch, heads, seq, headDim)`, `probs` `(batch, heads, seq,
 * seq)`; returns `out`.
 *
 * Precision: the `"cpu"` kernel computes scores, the softmax (after
 * subtracting the row maximum) and the weighted sums in float64 and rounds
 * each stored value once to float32; the `"webgpu"` kernel works in float32
 * and agrees within float32 rounding.
 *
 * @example One head of two positions: the first attends to itself only
 * ```ts
 * import { attentionOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const q = new Float32Array([1, 0, 1, 0]); // (1, 1, 2, 2)
 * const k = new Float32Array([1, 0, 0, 0]);
 * const v = new Float32Array([2, 4, 6, 8]);
 * const args = attentionOp.validate({ q, k, v, batch: 1, heads: 1, seq: 2, headDim: 2 });
 * const out = requireKernel(attentionOp, "cpu").run(args, {});
 * // Row 1: scores 1/sqrt(2) and 0, so weights e^{0.7071} : 1.
 * const p = 1 / (1 + Math.exp(-Math.SQRT1_2));
 * assert.deepEqual([...args.probs].map((x) => +x.toFixed(6)), [1, 0, +p.toFixed(6), +(1 - p).toFixed(6)]);
 * assert.ok(Math.abs(out[2] - (2 * p + 6 * (1 - p))) < 1e-6);
 * ```
 */
export const attentionOp = defineOp<
  AttentionRequest,
  AttentionArgs,
  Float32Array
>({
  name: "attention",
  summary: "causal softmax(q kᵀ / sqrt(d)) v per sequence and head",
  validate: checkAttention,
});

/** Checks the four sizes; returns them and the tensor lengths. */
function checkShape(request: AttentionShape): AttentionShape & {
  size: number;
  probSize: number;
  dims: string;
} {
  checkObject("request", request);
  const batch = checkInteger("batch", request.batch, 1);
  const heads = checkInteger("heads", request.heads, 1);
  const seq = checkInteger("seq", request.seq, 1);
  const headDim = checkInteger("headDim", request.headDim, 1);
  return {
    batch,
    heads,
    seq,
    headDim,
    size: batch * heads * seq * headDim,
    probSize: batch * heads * seq * seq,
    dims:
      `batch x heads x seq x headDim = ${batch} x ${heads} x ${seq} x ${headDim}`,
  };
}

function probDims(s: AttentionShape): string {
  return `batch x heads x seq x seq = ${s.batch} x ${s.heads} x ${s.seq} x ${s.seq}`;
}

function checkAttention(request: AttentionRequest): AttentionArgs {
  const shape = checkShape(request);
  const { size, probSize, dims } = shape;
  const q = checkFloats("q", request.q, size, dims);
  const k = checkFloats("k", request.k, size, dims);
  const v = checkFloats("v", request.v, size, dims);
  const out = request.out === undefined
    ? new Float32Array(size)
    : checkFloats("out", request.out, size, dims);
  const probs = request.probs === undefined
    ? new Float32Array(probSize)
    : checkFloats("probs", request.probs, probSize, probDims(shape));
  checkAllDisjoint({ out, probs }, { q, k, v });
  const { batch, heads, seq, headDim } = shape;
  return { q, k, v, out, probs, batch, heads, seq, headDim };
}

/** The reference CPU kernel of {@linkcode attentionOp}; returns `args.out`. */
export function attentionCpu(args: AttentionArgs): Float32Array {
  const { q, k, v, out, probs, batch, heads, seq, headDim } = args;
  attentionHeads(q, k, v, out, probs, seq, headDim, 0, batch * heads);
  return out;
}

registerKernel({
  op: attentionOp,
  backend: "cpu",
  run: attentionCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});

/** What the attention backward op's validator takes. */
export interface AttentionBackwardRequest extends AttentionShape {
  /** The forward's queries, keys and values. */
  q: Float32Array;
  /** Keys of the forward. */
  k: Float32Array;
  /** Values of the forward. */
  v: Float32Array;
  /** The forward's attention weights. */
  probs: Float32Array;
  /** Gradient of the loss with respect to the forward's `out`. */
  dOut: Float32Array;
  /** Gradient with respect to `q` (written). Default: a new one. */
  dq?: Float32Array;
  /** Gradient with respect to `k` (written). Default: a new one. */
  dk?: Float32Array;
  /** Gradient with respect to `v` (written). Default: a new one. */
  dv?: Float32Array;
}

/** Checked arguments of every attention backward kernel. */
export interface AttentionBackwardArgs extends AttentionBackwardRequest {
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/** The three gradients of an attention backward. */
export interface AttentionGrads {
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/**
 * The backward of {@linkcode attentionOp}: with `P` the stored `probs`
 * and `s = 1 / sqrt(headDim)`, per sequence and head
 * `dV = Pᵀ dOut`, `dP = dOut Vᵀ`, `dS = P ∘ (dP − rowsum(P ∘ dP))`,
 * `dQ = s dS K`, `dK = s dSᵀ Q` (only `j <= i` terms). `dq`, `dk`, `dv`
 * are overwritten (not accumulated). The `"cpu"` kernel sums in float64.
 *
 * @example The gradient of Σ out with one position is all in dv
 * ```ts
 * import { attentionBackwardOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const one = (x: number[]) => new Float32Array(x);
 * const args = attentionBackwardOp.validate({
 *   q: one([1, 2]), k: one([3, 4]), v: one([5, 6]), probs: one([1]),
 *   dOut: one([1, 1]), batch: 1, heads: 1, seq: 1, headDim: 2,
 * });
 * const { dq, dk, dv } = requireKernel(attentionBackwardOp, "cpu").run(args, {});
 * assert.deepEqual([...dv], [1, 1]); // out = v
 * assert.deepEqual([...dq, ...dk], [0, 0, 0, 0]); // softmax of one score is 1
 * ```
 */
export const attentionBackwardOp = defineOp<
  AttentionBackwardRequest,
  AttentionBackwardArgs,
  AttentionGrads
>({
  name: "attentionBackward",
  summary: "gradients of causal attention with respect to q, k and v",
  validate: checkAttentionBackward,
});

function checkAttentionBackward(
  request: AttentionBackwardRequest,
): AttentionBackwardArgs {
  const shape = checkShape(request);
  const { size, probSize, dims } = shape;
  const q = checkFloats("q", request.q, size, dims);
  const k = checkFloats("k", request.k, size, dims);
  const v = checkFloats("v", request.v, size, dims);
  const probs = checkFloats("probs", request.probs, probSize, probDims(shape));
  const dOut = checkFloats("dOut", request.dOut, size, dims);
  const grad = (name: string, x: Float32Array | undefined) =>
    x === undefined ? new Float32Array(size) : checkFloats(name, x, size, dims);
  const dq = grad("dq", request.dq);
  const dk = grad("dk", request.dk);
  const dv = grad("dv", request.dv);
  checkAllDisjoint({ dq, dk, dv }, { q, k, v, probs, dOut });
  const { batch, heads, seq, headDim } = shape;
  return { q, k, v, probs, dOut, dq, dk, dv, batch, heads, seq, headDim };
}

/** The reference CPU kernel of {@linkcode attentionBackwardOp}. */
export function attentionBackwardCpu(
  args: AttentionBackwardArgs,
): AttentionGrads {
  const { q, k, v, probs, dOut, dq, dk, dv, batch, heads, seq, headDim } = args;
  attentionBackwardHeads(
    q,
    k,
    v,
    probs,
    dOut,
    dq,
    dk,
    dv,
    seq,
    headDim,
    0,
    batch * heads,
  );
  return { dq, dk, dv };
}

registerKernel({
  op: attentionBackwardOp,
  backend: "cpu",
  run: attentionBackwardCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});
