// The RMSNorm ops of the transformer: forward and backward. "cpu" kernels
// here, "webgpu" in kernels/rms_norm.ts.
import { checkInteger, checkNumber, checkObject } from "../validate.ts";
import { defineOp, registerKernel } from "./registry.ts";
import { checkAllDisjoint, checkFlag, checkFloats } from "./_tensor_check.ts";

/** What the RMSNorm op's validator takes. */
export interface RmsNormRequest {
  /** Input rows, `rows x dim`. */
  x: Float32Array;
  /** Gain per column, `dim`. */
  gain: Float32Array;
  /** Output, `rows x dim`. Default: a new one. */
  out?: Float32Array;
  /** `1 / sqrt(mean(x²) + eps)` per row, kept for the backward. Default: a new one. */
  rstd?: Float32Array;
  /** Rows. */
  rows: number;
  /** Width of a row. */
  dim: number;
  /** Added to the mean square. Default: 1e-6. */
  eps?: number;
}

/** Checked arguments of every RMSNorm kernel. */
export interface RmsNormArgs extends RmsNormRequest {
  out: Float32Array;
  rstd: Float32Array;
  eps: number;
}

/**
 * RMSNorm (Zhang and Sennrich, 2019) per row:
 * `rstd = 1 / sqrt(mean(x²) + eps)`, `out = x · rstd · gain`. Returns
 * `out`; `rstd` is written for the backward.
 *
 * Precision: the `"cpu"` kernel sums in float64 and rounds `rstd` to
 * float32 before using it, so the backward sees the value the forward
 * used; the `"webgpu"` kernel works in float32.
 *
 * @example One row of two: mean square 12.5, rstd ≈ 0.2828
 * ```ts
 * import { requireKernel, rmsNormOp } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const args = rmsNormOp.validate({
 *   x: new Float32Array([3, 4]), gain: new Float32Array([1, 2]), rows: 1, dim: 2, eps: 0,
 * });
 * const out = requireKernel(rmsNormOp, "cpu").run(args, {});
 * const r = 1 / Math.sqrt(12.5);
 * assert.ok(Math.abs(out[0] - 3 * r) < 1e-6 && Math.abs(out[1] - 8 * r) < 1e-6);
 * ```
 */
export const rmsNormOp = defineOp<RmsNormRequest, RmsNormArgs, Float32Array>({
  name: "rmsNorm",
  summary: "out = x · gain / sqrt(mean(x²) + eps) per row",
  validate: checkRmsNorm,
});

function sizes(request: { rows: number; dim: number }) {
  checkObject("request", request);
  const rows = checkInteger("rows", request.rows);
  const dim = checkInteger("dim", request.dim, 1);
  return { rows, dim, shape: `rows x dim = ${rows} x ${dim}` };
}

function checkRmsNorm(request: RmsNormRequest): RmsNormArgs {
  const { rows, dim, shape } = sizes(request);
  const x = checkFloats("x", request.x, rows * dim, shape);
  const gain = checkFloats("gain", request.gain, dim, "dim");
  const eps = request.eps === undefined
    ? 1e-6
    : checkNumber("eps", request.eps, 0);
  const out = request.out === undefined
    ? new Float32Array(rows * dim)
    : checkFloats("out", request.out, rows * dim, shape);
  const rstd = request.rstd === undefined
    ? new Float32Array(rows)
    : checkFloats("rstd", request.rstd, rows, "rows");
  checkAllDisjoint({ out, rstd }, { x, gain });
  return { x, gain, out, rstd, rows, dim, eps };
}

/** The reference CPU kernel of {@linkcode rmsNormOp}; returns `args.out`. */
export function rmsNormCpu(args: RmsNormArgs): Float32Array {
  const { x, gain, out, rstd, rows, dim, eps } = args;
  for (let r = 0; r < rows; r++) {
    const at = r * dim;
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[at + d] * x[at + d];
    rstd[r] = 1 / Math.sqrt(ss / dim + eps);
    const s = rstd[r]; // rounded to float32: what the backward will see
    for (let d = 0; d < dim; d++) out[at + d] = x[at + d] * s * gain[d];
  }
  return out;
}

registerKernel({
  op: rmsNormOp,
  backend: "cpu",
  run: rmsNormCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});

/** What the RMSNorm backward op's validator takes. */
export interface RmsNormBackwardRequest {
  /** The forward's input rows. */
  x: Float32Array;
  /** The forward's gain. */
  gain: Float32Array;
  /** The forward's `rstd`. */
  rstd: Float32Array;
  /** Gradient with respect to the forward's `out`. */
  dOut: Float32Array;
  /** Gradient with respect to `x` (written, or added to with `accumulate`). Default: a new one. */
  dx?: Float32Array;
  /** Add to `dx` (a residual stream's gradient) instead of overwriting it. Default: false. */
  accumulate?: boolean;
  /** Gradient with respect to `gain` (accumulated). Default: a new one (zeros). */
  dGain?: Float32Array;
  /** Rows. */
  rows: number;
  /** Width of a row. */
  dim: number;
}

/** Checked arguments of every RMSNorm backward kernel. */
export interface RmsNormBackwardArgs extends RmsNormBackwardRequest {
  dx: Float32Array;
  dGain: Float32Array;
  accumulate: boolean;
}

/** The gradients of an RMSNorm backward. */
export interface RmsNormGrads {
  dx: Float32Array;
  dGain: Float32Array;
}

/**
 * The backward of {@linkcode rmsNormOp}, with `r` the stored `rstd` of a
 * row and `g = gain ∘ dOut`: `dx (+)= r g − x r³ (g · x) / dim` (written,
 * or added to the old value in float64 with `accumulate`) and
 * `dGain += Σ_rows dOut ∘ x r` (accumulated, over all rows in float64 on
 * the CPU, then added to the old value once).
 *
 * @example With gain 1 and one row of (3, 4), dx is orthogonal to x
 * ```ts
 * import { requireKernel, rmsNormBackwardOp } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const x = new Float32Array([3, 4]);
 * const args = rmsNormBackwardOp.validate({
 *   x, gain: new Float32Array([1, 1]), rstd: new Float32Array([1 / Math.sqrt(12.5)]),
 *   dOut: new Float32Array([1, 0]), rows: 1, dim: 2,
 * });
 * const { dx } = requireKernel(rmsNormBackwardOp, "cpu").run(args, {});
 * assert.ok(Math.abs(dx[0] * 3 + dx[1] * 4) < 1e-6);
 * ```
 */
export const rmsNormBackwardOp = defineOp<
  RmsNormBackwardRequest,
  RmsNormBackwardArgs,
  RmsNormGrads
>({
  name: "rmsNormBackward",
  summary: "gradients of RMSNorm with respect to x and the gain",
  validate: checkRmsNormBackward,
});

function checkRmsNormBackward(
  request: RmsNormBackwardRequest,
): RmsNormBackwardArgs {
  const { rows, dim, shape } = sizes(request);
  const x = checkFloats("x", request.x, rows * dim, shape);
  const gain = checkFloats("gain", request.gain, dim, "dim");
  const rstd = checkFloats("rstd", request.rstd, rows, "rows");
  const dOut = checkFloats("dOut", request.dOut, rows * dim, shape);
  const dx = request.dx === undefined
    ? new Float32Array(rows * dim)
    : checkFloats("dx", request.dx, rows * dim, shape);
  const dGain = request.dGain === undefined
    ? new Float32Array(dim)
    : checkFloats("dGain", request.dGain, dim, "dim");
  const accumulate = checkFlag("accumulate", request.accumulate);
  checkAllDisjoint({ dx, dGain }, { x, gain, rstd, dOut });
  return { x, gain, rstd, dOut, dx, dGain, accumulate, rows, dim };
}

let gainAcc = new Float64Array(0);

/** The reference CPU kernel of {@linkcode rmsNormBackwardOp}. */
export function rmsNormBackwardCpu(args: RmsNormBackwardArgs): RmsNormGrads {
  const { x, gain, rstd, dOut, dx, dGain, accumulate, rows, dim } = args;
  if (gainAcc.length < dim) gainAcc = new Float64Array(dim);
  const acc = gainAcc;
  acc.fill(0, 0, dim);
  for (let r = 0; r < rows; r++) {
    const at = r * dim, s = rstd[r];
    let dot = 0;
    for (let d = 0; d < dim; d++) {
      const g = dOut[at + d];
      dot += gain[d] * g * x[at + d];
      acc[d] += g * x[at + d] * s;
    }
    const c = s * s * s * dot / dim;
    for (let d = 0; d < dim; d++) {
      const g = s * gain[d] * dOut[at + d] - x[at + d] * c;
      dx[at + d] = accumulate ? g + dx[at + d] : g;
    }
  }
  for (let d = 0; d < dim; d++) dGain[d] = acc[d] + dGain[d];
  return { dx, dGain };
}

registerKernel({
  op: rmsNormBackwardOp,
  backend: "cpu",
  run: rmsNormBackwardCpu,
  callers: [
    'trainTransformer() with backend "cpu" (or "cpu-threads" without a threaded kernel)',
  ],
});
