// Expert dispatch and combine, the data movement of a routed MoE layer,
// and their backwards, as four ops:
//
// - moeDispatch: token rows copied into one buffer grouped by expert
//   (expert 0's rows, then expert 1's, ...; by token index within an
//   expert), with the offsets of each expert's rows and, per routing slot,
//   the row it went to;
// - moeCombine: the experts' output rows weighted and summed back per
//   token;
// - moeCombineBackward: the gradients of combine with respect to the
//   expert rows and the routing weights;
// - moeDispatchBackward: the gradient with respect to the tokens, the
//   scatter-add of the dispatched rows' gradients.
//
// "cpu" kernels here, "webgpu" in kernels/moe_dispatch.ts. Each expert's
// rows are a contiguous `count x dim` block, so its feed-forward is one
// matmul over `out.subarray(offsets[e] * dim, offsets[e + 1] * dim)`.
import { checkInteger, checkObject } from "../validate.ts";
import { defineOp, registerKernel } from "./registry.ts";
import {
  checkAllDisjoint,
  checkFlag,
  checkFloats,
  checkInts,
} from "./_tensor_check.ts";

/** The sizes of a routed layer. */
export interface MoeShape {
  /** Tokens of the batch. */
  tokens: number;
  /** Routing slots per token (top-K). */
  k: number;
  /** Width of a token row. */
  dim: number;
}

/** What the dispatch op's validator takes. */
export interface MoeDispatchRequest extends MoeShape {
  /** Token rows, `tokens x dim`. */
  x: Float32Array;
  /** Expert of each slot, `tokens x k`; `-1` for none (a dropped slot). */
  experts: Int32Array;
  /** Experts of the layer. */
  numExperts: number;
  /** Dispatched rows, `tokens·k x dim` (rows past the last expert's are zeroed). Default: a new one. */
  out?: Float32Array;
  /** Row offset of each expert in `out`, `numExperts + 1` entries. Default: a new one. */
  offsets?: Int32Array;
  /** Row of `out` of each slot `t·k + j`, or `-1` when dropped. Default: a new one. */
  slotOf?: Int32Array;
}

/** Checked arguments of every dispatch kernel. */
export interface MoeDispatchArgs extends MoeDispatchRequest {
  out: Float32Array;
  offsets: Int32Array;
  slotOf: Int32Array;
}

/** What a dispatch writes. */
export interface MoeDispatchResult {
  out: Float32Array;
  offsets: Int32Array;
  slotOf: Int32Array;
}

/**
 * Groups token rows by expert: for each slot `s = t·k + j` with
 * `experts[s] = e >= 0`, row `x[t]` is copied to row `slotOf[s]` of `out`,
 * where expert `e`'s rows are `[offsets[e], offsets[e + 1])`, in slot
 * order (by token, then by `j`). Deterministic on every backend; values
 * are copied exactly.
 *
 * @example Three tokens, top-1, two experts
 * ```ts
 * import { moeDispatchOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const args = moeDispatchOp.validate({
 *   x: new Float32Array([10, 20, 30]), experts: new Int32Array([1, 0, 1]),
 *   tokens: 3, k: 1, dim: 1, numExperts: 2,
 * });
 * const { out, offsets, slotOf } = requireKernel(moeDispatchOp, "cpu").run(args, {});
 * assert.deepEqual([...out], [20, 10, 30]);
 * assert.deepEqual([...offsets], [0, 1, 3]);
 * assert.deepEqual([...slotOf], [1, 0, 2]);
 * ```
 */
export const moeDispatchOp = defineOp<
  MoeDispatchRequest,
  MoeDispatchArgs,
  MoeDispatchResult
>({
  name: "moeDispatch",
  summary: "token rows grouped by expert, with offsets and each slot's row",
  validate: checkDispatch,
});

function checkShape(request: MoeShape) {
  checkObject("request", request);
  const tokens = checkInteger("tokens", request.tokens);
  const k = checkInteger("k", request.k, 1);
  const dim = checkInteger("dim", request.dim, 1);
  return {
    tokens,
    k,
    dim,
    tokenShape: `tokens x dim = ${tokens} x ${dim}`,
    slotShape: `tokens x k = ${tokens} x ${k}`,
    rowShape: `tokens·k x dim = ${tokens * k} x ${dim}`,
  };
}

function checkDispatch(request: MoeDispatchRequest): MoeDispatchArgs {
  const { tokens, k, dim, tokenShape, slotShape, rowShape } = checkShape(
    request,
  );
  const numExperts = checkInteger("numExperts", request.numExperts, 1);
  const x = checkFloats("x", request.x, tokens * dim, tokenShape);
  const experts = checkInts("experts", request.experts, tokens * k, slotShape);
  for (let s = 0; s < experts.length; s++) {
    const e = experts[s];
    if (!(e >= -1 && e < numExperts)) {
      throw new RangeError(
        `experts must hold -1 or experts in [0, ${numExperts}): slot ${s} is ${e}`,
      );
    }
  }
  const out = request.out === undefined
    ? new Float32Array(tokens * k * dim)
    : checkFloats("out", request.out, tokens * k * dim, rowShape);
  const offsets = request.offsets === undefined
    ? new Int32Array(numExperts + 1)
    : checkInts(
      "offsets",
      request.offsets,
      numExperts + 1,
      "numExperts + 1",
    );
  const slotOf = request.slotOf === undefined
    ? new Int32Array(tokens * k)
    : checkInts("slotOf", request.slotOf, tokens * k, slotShape);
  checkAllDisjoint({ out, offsets, slotOf }, { x, experts });
  return { x, experts, out, offsets, slotOf, tokens, k, dim, numExperts };
}

/** The reference CPU kernel of {@linkcode moeDispatchOp}. */
export function moeDispatchCpu(args: MoeDispatchArgs): MoeDispatchResult {
  const { x, experts, out, offsets, slotOf, tokens, k, dim, numExperts } = args;
  offsets.fill(0);
  for (let s = 0; s < tokens * k; s++) {
    if (experts[s] >= 0) offsets[experts[s] + 1]++;
  }
  for (let e = 0; e < numExperts; e++) offsets[e + 1] += offsets[e];
  // Next free row per expert: offsets[e] advanced as rows are placed
  // (kept in slotOf's sense: the count so far, added to the offset).
  const next = offsets.slice(0, numExperts);
  for (let s = 0; s < tokens * k; s++) {
    const e = experts[s];
    if (e < 0) {
      slotOf[s] = -1;
      continue;
    }
    const row = next[e]++;
    slotOf[s] = row;
    const t = (s / k) | 0;
    out.set(x.subarray(t * dim, (t + 1) * dim), row * dim);
  }
  out.fill(0, offsets[numExperts] * dim);
  return { out, offsets, slotOf };
}

registerKernel({
  op: moeDispatchOp,
  backend: "cpu",
  run: moeDispatchCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});

/** What the combine op's validator takes. */
export interface MoeCombineRequest extends MoeShape {
  /** The experts' output rows in dispatch order, `tokens·k x dim`. */
  y: Float32Array;
  /** Routing weight of each slot, `tokens x k`. */
  weights: Float32Array;
  /** Row of `y` of each slot, or `-1` (from the dispatch). */
  slotOf: Int32Array;
  /** Token rows, `tokens x dim`. Default: a new one. */
  out?: Float32Array;
  /** Add to `out` instead of overwriting it. Default: false. */
  accumulate?: boolean;
}

/** Checked arguments of every combine kernel. */
export interface MoeCombineArgs extends MoeCombineRequest {
  out: Float32Array;
  accumulate: boolean;
}

/**
 * Sums the experts' rows back per token:
 * `out[t] (+)= Σ_j weights[t, j] · y[slotOf[t·k + j]]` over the slots
 * with `slotOf >= 0`. Returns `out`.
 *
 * Precision: the `"cpu"` kernel sums over `j` in float64, adds the old
 * value last when accumulating, and rounds once; the `"webgpu"` kernel
 * sums in float32 (k + 1 terms).
 *
 * @example Token 0 gets 0.25 of row 1 and 0.75 of row 0
 * ```ts
 * import { moeCombineOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const args = moeCombineOp.validate({
 *   y: new Float32Array([4, 8, 0, 0]), weights: new Float32Array([0.25, 0.75, 1, 0]),
 *   slotOf: new Int32Array([1, 0, -1, -1]), tokens: 2, k: 2, dim: 1,
 * });
 * assert.deepEqual([...requireKernel(moeCombineOp, "cpu").run(args, {})], [5, 0]);
 * ```
 */
export const moeCombineOp = defineOp<
  MoeCombineRequest,
  MoeCombineArgs,
  Float32Array
>({
  name: "moeCombine",
  summary: "expert rows weighted and summed back per token",
  validate: checkCombine,
});

/** Throws unless every slot row is -1 or a row of `tokens·k`. */
function checkSlots(slotOf: Int32Array, rows: number): void {
  for (let s = 0; s < slotOf.length; s++) {
    const r = slotOf[s];
    if (!(r >= -1 && r < rows)) {
      throw new RangeError(
        `slotOf must hold -1 or rows in [0, ${rows}): slot ${s} is ${r}`,
      );
    }
  }
}

function checkCombine(request: MoeCombineRequest): MoeCombineArgs {
  const { tokens, k, dim, tokenShape, slotShape, rowShape } = checkShape(
    request,
  );
  const y = checkFloats("y", request.y, tokens * k * dim, rowShape);
  const weights = checkFloats(
    "weights",
    request.weights,
    tokens * k,
    slotShape,
  );
  const slotOf = checkInts("slotOf", request.slotOf, tokens * k, slotShape);
  checkSlots(slotOf, tokens * k);
  const accumulate = checkFlag("accumulate", request.accumulate);
  const out = request.out === undefined
    ? new Float32Array(tokens * dim)
    : checkFloats("out", request.out, tokens * dim, tokenShape);
  checkAllDisjoint({ out }, { y, weights, slotOf });
  return { y, weights, slotOf, out, accumulate, tokens, k, dim };
}

let rowAcc = new Float64Array(0);

function rowScratch(dim: number): Float64Array {
  if (rowAcc.length < dim) rowAcc = new Float64Array(dim);
  return rowAcc;
}

/** The reference CPU kernel of {@linkcode moeCombineOp}; returns `args.out`. */
export function moeCombineCpu(args: MoeCombineArgs): Float32Array {
  const { y, weights, slotOf, out, accumulate, tokens, k, dim } = args;
  const acc = rowScratch(dim);
  for (let t = 0; t < tokens; t++) {
    acc.fill(0, 0, dim);
    for (let j = 0; j < k; j++) {
      const row = slotOf[t * k + j];
      if (row < 0) continue;
      const w = weights[t * k + j], at = row * dim;
      for (let d = 0; d < dim; d++) acc[d] += w * y[at + d];
    }
    const at = t * dim;
    for (let d = 0; d < dim; d++) {
      out[at + d] = accumulate ? acc[d] + out[at + d] : acc[d];
    }
  }
  return out;
}

registerKernel({
  op: moeCombineOp,
  backend: "cpu",
  run: moeCombineCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});

/** What the combine backward op's validator takes. */
export interface MoeCombineBackwardRequest extends MoeShape {
  /** The forward's expert rows, `tokens·k x dim`. */
  y: Float32Array;
  /** The forward's routing weights, `tokens x k`. */
  weights: Float32Array;
  /** The forward's slot rows. */
  slotOf: Int32Array;
  /** Gradient with respect to the forward's `out`, `tokens x dim`. */
  dOut: Float32Array;
  /** Gradient with respect to `y` (written; rows no slot uses are 0). Default: a new one. */
  dy?: Float32Array;
  /** Gradient with respect to `weights` (written; 0 for dropped slots). Default: a new one. */
  dWeights?: Float32Array;
}

/** Checked arguments of every combine backward kernel. */
export interface MoeCombineBackwardArgs extends MoeCombineBackwardRequest {
  dy: Float32Array;
  dWeights: Float32Array;
}

/** The gradients of a combine backward. */
export interface MoeCombineGrads {
  dy: Float32Array;
  dWeights: Float32Array;
}

/**
 * The backward of {@linkcode moeCombineOp}: for each slot `s = t·k + j`
 * with row `r = slotOf[s] >= 0`, `dy[r] = weights[s] · dOut[t]` and
 * `dWeights[s] = dOut[t] · y[r]` (a float64 dot product on the CPU);
 * other rows of `dy` and dropped slots of `dWeights` are 0.
 *
 * @example The gradients of out = 0.5 · y[0]
 * ```ts
 * import { moeCombineBackwardOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const args = moeCombineBackwardOp.validate({
 *   y: new Float32Array([3, 4]), weights: new Float32Array([0.5]),
 *   slotOf: new Int32Array([0]), dOut: new Float32Array([2, 1]), tokens: 1, k: 1, dim: 2,
 * });
 * const { dy, dWeights } = requireKernel(moeCombineBackwardOp, "cpu").run(args, {});
 * assert.deepEqual([...dy], [1, 0.5]);
 * assert.deepEqual([...dWeights], [10]);
 * ```
 */
export const moeCombineBackwardOp = defineOp<
  MoeCombineBackwardRequest,
  MoeCombineBackwardArgs,
  MoeCombineGrads
>({
  name: "moeCombineBackward",
  summary: "gradients of the combine with respect to expert rows and weights",
  validate: checkCombineBackward,
});

function checkCombineBackward(
  request: MoeCombineBackwardRequest,
): MoeCombineBackwardArgs {
  const { tokens, k, dim, tokenShape, slotShape, rowShape } = checkShape(
    request,
  );
  const y = checkFloats("y", request.y, tokens * k * dim, rowShape);
  const weights = checkFloats(
    "weights",
    request.weights,
    tokens * k,
    slotShape,
  );
  const slotOf = checkInts("slotOf", request.slotOf, tokens * k, slotShape);
  checkSlots(slotOf, tokens * k);
  const dOut = checkFloats("dOut", request.dOut, tokens * dim, tokenShape);
  const dy = request.dy === undefined
    ? new Float32Array(tokens * k * dim)
    : checkFloats("dy", request.dy, tokens * k * dim, rowShape);
  const dWeights = request.dWeights === undefined
    ? new Float32Array(tokens * k)
    : checkFloats("dWeights", request.dWeights, tokens * k, slotShape);
  checkAllDisjoint({ dy, dWeights }, { y, weights, slotOf, dOut });
  return { y, weights, slotOf, dOut, dy, dWeights, tokens, k, dim };
}

/** The reference CPU kernel of {@linkcode moeCombineBackwardOp}. */
export function moeCombineBackwardCpu(
  args: MoeCombineBackwardArgs,
): MoeCombineGrads {
  const { y, weights, slotOf, dOut, dy, dWeights, tokens, k, dim } = args;
  dy.fill(0);
  for (let s = 0; s < tokens * k; s++) {
    const row = slotOf[s];
    if (row < 0) {
      dWeights[s] = 0;
      continue;
    }
    const t = (s / k) | 0, w = weights[s];
    const at = row * dim, g = t * dim;
    let dot = 0;
    for (let d = 0; d < dim; d++) {
      dot += dOut[g + d] * y[at + d];
      dy[at + d] = w * dOut[g + d];
    }
    dWeights[s] = dot;
  }
  return { dy, dWeights };
}

registerKernel({
  op: moeCombineBackwardOp,
  backend: "cpu",
  run: moeCombineBackwardCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});

/** What the dispatch backward op's validator takes. */
export interface MoeDispatchBackwardRequest extends MoeShape {
  /** Gradient with respect to the dispatched rows, `tokens·k x dim`. */
  dRows: Float32Array;
  /** The dispatch's slot rows. */
  slotOf: Int32Array;
  /** Gradient with respect to the token rows, `tokens x dim`. Default: a new one. */
  dx?: Float32Array;
  /** Add to `dx` instead of overwriting it. Default: false. */
  accumulate?: boolean;
}

/** Checked arguments of every dispatch backward kernel. */
export interface MoeDispatchBackwardArgs extends MoeDispatchBackwardRequest {
  dx: Float32Array;
  accumulate: boolean;
}

/**
 * The backward of {@linkcode moeDispatchOp}:
 * `dx[t] (+)= Σ_j dRows[slotOf[t·k + j]]` over the slots with
 * `slotOf >= 0` (in float64 on the CPU, the old value added last, one
 * rounding). Returns `dx`.
 *
 * @example Token 0 went to rows 0 and 2
 * ```ts
 * import { moeDispatchBackwardOp, requireKernel } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const args = moeDispatchBackwardOp.validate({
 *   dRows: new Float32Array([1, 2, 4, 8]), slotOf: new Int32Array([0, 2, 1, -1]),
 *   tokens: 2, k: 2, dim: 1,
 * });
 * assert.deepEqual([...requireKernel(moeDispatchBackwardOp, "cpu").run(args, {})], [5, 2]);
 * ```
 */
export const moeDispatchBackwardOp = defineOp<
  MoeDispatchBackwardRequest,
  MoeDispatchBackwardArgs,
  Float32Array
>({
  name: "moeDispatchBackward",
  summary:
    "gradient of the dispatch: dispatched row gradients summed per token",
  validate: checkDispatchBackward,
});

function checkDispatchBackward(
  request: MoeDispatchBackwardRequest,
): MoeDispatchBackwardArgs {
  const { tokens, k, dim, tokenShape, slotShape, rowShape } = checkShape(
    request,
  );
  const dRows = checkFloats("dRows", request.dRows, tokens * k * dim, rowShape);
  const slotOf = checkInts("slotOf", request.slotOf, tokens * k, slotShape);
  checkSlots(slotOf, tokens * k);
  const accumulate = checkFlag("accumulate", request.accumulate);
  const dx = request.dx === undefined
    ? new Float32Array(tokens * dim)
    : checkFloats("dx", request.dx, tokens * dim, tokenShape);
  checkAllDisjoint({ dx }, { dRows, slotOf });
  return { dRows, slotOf, dx, accumulate, tokens, k, dim };
}

/** The reference CPU kernel of {@linkcode moeDispatchBackwardOp}; returns `args.dx`. */
export function moeDispatchBackwardCpu(
  args: MoeDispatchBackwardArgs,
): Float32Array {
  const { dRows, slotOf, dx, accumulate, tokens, k, dim } = args;
  const acc = rowScratch(dim);
  for (let t = 0; t < tokens; t++) {
    acc.fill(0, 0, dim);
    for (let j = 0; j < k; j++) {
      const row = slotOf[t * k + j];
      if (row < 0) continue;
      const at = row * dim;
      for (let d = 0; d < dim; d++) acc[d] += dRows[at + d];
    }
    const at = t * dim;
    for (let d = 0; d < dim; d++) {
      dx[at + d] = accumulate ? acc[d] + dx[at + d] : acc[d];
    }
  }
  return dx;
}

registerKernel({
  op: moeDispatchBackwardOp,
  backend: "cpu",
  run: moeDispatchBackwardCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});
