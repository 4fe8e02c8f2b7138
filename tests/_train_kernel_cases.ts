// The conformance cases of the training ops (matmul, attention and its
// backward): inputs with sizes off the 4 x 4 CPU tile and off the GPU
// workgroup tiles, every transpose, accumulation; comparisons exact on the
// CPU backends and within the float32 bound of each op on WebGPU. Merged
// into CONFORMANCE by _kernel_cases.ts.
import assert from "node:assert/strict";
import { Rng } from "../lib/scores/rng.ts";
import {
  type AnyOp,
  KERNEL_BACKENDS,
  type KernelBackend,
} from "../lib/ops/registry.ts";
import { trainTransformer } from "../lib/train/transformer/train.ts";
import { type MatmulArgs, matmulOp } from "../lib/ops/matmul.ts";
import {
  type AttentionArgs,
  type AttentionBackwardArgs,
  attentionBackwardOp,
  attentionCpu,
  type AttentionGrads,
  attentionOp,
  type AttentionShape,
} from "../lib/ops/attention.ts";
import {
  type RmsNormArgs,
  type RmsNormBackwardArgs,
  rmsNormBackwardOp,
  rmsNormCpu,
  type RmsNormGrads,
  rmsNormOp,
} from "../lib/ops/rms_norm.ts";
import {
  type MoeCombineArgs,
  type MoeCombineBackwardArgs,
  moeCombineBackwardOp,
  type MoeCombineGrads,
  moeCombineOp,
  type MoeDispatchArgs,
  type MoeDispatchBackwardArgs,
  moeDispatchBackwardOp,
  moeDispatchCpu,
  moeDispatchOp,
  type MoeDispatchResult,
  type MoeShape,
} from "../lib/ops/moe_dispatch.ts";

/** float32's unit roundoff. */
const U32 = 2 ** -24;

interface TrainCase<A> {
  label: string;
  make(): A;
}

interface TrainRun<A> {
  input: A;
  gotArgs: A;
  wantArgs: A;
}

interface TrainConformance<A, R> {
  cases(): TrainCase<A>[];
  compare(
    got: R,
    want: R,
    run: TrainRun<A>,
    backend: string,
    what: string,
  ): void;
}

/** Uniform values in [-1, 1) from `seed`. */
export function randomFloats(seed: number, n: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => 2 * rng.uniform() - 1);
}

/** `|got - want| <= bound[i]` entry by entry. */
function withinBound(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  bound: (i: number) => number,
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    assert.ok(
      d <= bound(i) || got[i] === want[i],
      `${what}[${i}]: ${got[i]} vs ${want[i]} (bound ${bound(i)})`,
    );
  }
}

/** Sizes of the matmul cases: `[m, n, k]`. */
const MATMUL_SIZES = [
  [1, 1, 1],
  [0, 5, 3], // no rows (an expert without tokens)
  [4, 3, 0], // no inner dimension: out is 0 (or kept)
  [5, 7, 3],
  [16, 16, 16],
  [64, 64, 64], // above the cpu-threads threshold: workers run
  [65, 33, 17],
  [130, 67, 45],
  [3, 300, 257],
];

const MATMUL: TrainConformance<MatmulArgs, Float32Array> = {
  cases() {
    const out: TrainCase<MatmulArgs>[] = [];
    let seed = 100;
    for (const [m, n, k] of MATMUL_SIZES) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const s = seed++;
          const accumulate = s % 2 === 1;
          out.push({
            label: `${m}x${n}x${k}${transA ? " transA" : ""}${
              transB ? " transB" : ""
            }${accumulate ? " accumulate" : ""}`,
            make: () =>
              matmulOp.validate({
                a: randomFloats(s, m * k),
                b: randomFloats(s + 1000, k * n),
                out: randomFloats(s + 2000, m * n),
                m,
                n,
                k,
                transA,
                transB,
                accumulate,
              }),
          });
        }
      }
    }
    return out;
  },
  compare(got, want, { input }, backend, what) {
    if (backend !== "webgpu") return assert.deepEqual(got, want, what);
    // A float32 sum of k products: k 2⁻²³ Σ|a b| (plus the old value's rounding).
    const { a, b, m, n, k, transA, transB, accumulate } = input;
    const bound = (e: number) => {
      const i = Math.floor(e / n), j = e % n;
      let s = 0;
      for (let p = 0; p < k; p++) {
        s += Math.abs(
          (transA ? a[p * m + i] : a[i * k + p]) *
            (transB ? b[j * k + p] : b[p * n + j]),
        );
      }
      const old = accumulate ? Math.abs(input.out[e]) : 0;
      return 2 * (k + 2) * U32 * (s + old) + 1e-30;
    };
    withinBound(got, want, bound, what);
  },
};

/** Shapes of the attention cases. */
const ATTENTION_SHAPES: AttentionShape[] = [
  { batch: 1, heads: 1, seq: 1, headDim: 1 },
  { batch: 2, heads: 3, seq: 5, headDim: 4 },
  { batch: 1, heads: 2, seq: 17, headDim: 7 },
  { batch: 2, heads: 2, seq: 65, headDim: 16 }, // off a 64-wide workgroup
  { batch: 1, heads: 1, seq: 130, headDim: 33 },
];

function attentionInput(seed: number, s: AttentionShape): AttentionArgs {
  const n = s.batch * s.heads * s.seq * s.headDim;
  return attentionOp.validate({
    q: randomFloats(seed, n),
    k: randomFloats(seed + 1, n),
    v: randomFloats(seed + 2, n),
    // Garbage in the outputs: kernels must overwrite all of them.
    out: randomFloats(seed + 3, n),
    probs: randomFloats(seed + 4, s.batch * s.heads * s.seq * s.seq),
    ...s,
  });
}

const label = (s: AttentionShape) =>
  `b${s.batch} h${s.heads} s${s.seq} d${s.headDim}`;

const ATTENTION: TrainConformance<AttentionArgs, Float32Array> = {
  cases() {
    return ATTENTION_SHAPES.map((s, c) => ({
      label: label(s),
      make: () => attentionInput(200 + c, s),
    }));
  },
  compare(got, want, { gotArgs, wantArgs }, backend, what) {
    if (backend !== "webgpu") {
      assert.deepEqual(gotArgs.probs, wantArgs.probs, `${what}: probs`);
      return assert.deepEqual(got, want, what);
    }
    // Scores are float32 dot products of headDim terms of size <= 1, and
    // the softmax and the weighted sum add seq terms: relative errors of
    // (headDim + seq) float32 roundings, on values of size <= 1.
    const { seq, headDim } = gotArgs;
    const tol = 4 * (seq + headDim + 8) * U32;
    withinBound(gotArgs.probs, wantArgs.probs, () => tol, `${what}: probs`);
    withinBound(got, want, () => tol, what);
  },
};

const ATTENTION_BACKWARD: TrainConformance<
  AttentionBackwardArgs,
  AttentionGrads
> = {
  cases() {
    return ATTENTION_SHAPES.map((s, c) => ({
      label: label(s),
      make: () => {
        const f = attentionInput(300 + c, s);
        attentionCpu(f);
        const n = f.out.length;
        return attentionBackwardOp.validate({
          q: f.q,
          k: f.k,
          v: f.v,
          probs: f.probs,
          dOut: randomFloats(400 + c, n),
          dq: randomFloats(500 + c, n),
          dk: randomFloats(600 + c, n),
          dv: randomFloats(700 + c, n),
          ...s,
        });
      },
    }));
  },
  compare(got, want, { gotArgs }, backend, what) {
    for (const g of ["dq", "dk", "dv"] as const) {
      if (backend !== "webgpu") {
        assert.deepEqual(got[g], want[g], `${what}: ${g}`);
        continue;
      }
      // Sums of seq terms, each a product of values of size <= 1 and of
      // dOut·v dot products of headDim terms: an absolute bound scaled by
      // the largest gradient entry.
      const { seq, headDim } = gotArgs;
      let big = 1;
      for (const x of want[g]) big = Math.max(big, Math.abs(x));
      const tol = 8 * (seq + headDim + 8) * U32 * big;
      withinBound(got[g], want[g], () => tol, `${what}: ${g}`);
    }
  },
};

/** Sizes of the RMSNorm cases: `[rows, dim]`. */
const NORM_SIZES = [[1, 1], [3, 5], [65, 64], [130, 257]];

const RMS_NORM: TrainConformance<RmsNormArgs, Float32Array> = {
  cases() {
    return NORM_SIZES.map(([rows, dim], c) => ({
      label: `${rows}x${dim}`,
      make: () =>
        rmsNormOp.validate({
          x: randomFloats(800 + c, rows * dim),
          gain: randomFloats(900 + c, dim),
          out: randomFloats(1000 + c, rows * dim),
          rstd: randomFloats(1100 + c, rows),
          rows,
          dim,
          eps: 1e-5,
        }),
    }));
  },
  compare(got, want, { gotArgs, wantArgs }, backend, what) {
    if (backend !== "webgpu") {
      assert.deepEqual(gotArgs.rstd, wantArgs.rstd, `${what}: rstd`);
      return assert.deepEqual(got, want, what);
    }
    // A float32 mean square of dim terms, then two products.
    const tol = 2 * (gotArgs.dim + 8) * U32;
    const rel = (w: ArrayLike<number>) => (i: number) =>
      tol * Math.max(1, Math.abs(w[i]));
    withinBound(
      gotArgs.rstd,
      wantArgs.rstd,
      rel(wantArgs.rstd),
      `${what}: rstd`,
    );
    withinBound(got, want, rel(want), what);
  },
};

const RMS_NORM_BACKWARD: TrainConformance<RmsNormBackwardArgs, RmsNormGrads> = {
  cases() {
    return NORM_SIZES.flatMap(([rows, dim], c) =>
      [false, true].map((accumulate) => ({
        label: `${rows}x${dim}${accumulate ? " accumulate" : ""}`,
        make: () => {
          const f = rmsNormOp.validate({
            x: randomFloats(1200 + c, rows * dim),
            gain: randomFloats(1300 + c, dim),
            rows,
            dim,
            eps: 1e-5,
          });
          rmsNormCpu(f);
          return rmsNormBackwardOp.validate({
            x: f.x,
            gain: f.gain,
            rstd: f.rstd,
            dOut: randomFloats(1400 + c, rows * dim),
            dx: randomFloats(1500 + c, rows * dim),
            dGain: randomFloats(1600 + c, dim),
            accumulate,
            rows,
            dim,
          });
        },
      }))
    );
  },
  compare(got, want, { gotArgs }, backend, what) {
    for (const g of ["dx", "dGain"] as const) {
      if (backend !== "webgpu") {
        assert.deepEqual(got[g], want[g], `${what}: ${g}`);
        continue;
      }
      // dx: a dot product of dim terms; dGain: a sum over the rows.
      const { rows, dim } = gotArgs;
      let big = 1;
      for (const x of want[g]) big = Math.max(big, Math.abs(x));
      const tol = 4 * ((g === "dx" ? dim : rows) + 8) * U32 * big;
      withinBound(got[g], want[g], () => tol, `${what}: ${g}`);
    }
  },
};

/** Sizes of the dispatch cases: `[tokens, k, dim, experts]`. */
const MOE_SIZES = [
  [0, 2, 4, 3], // no tokens
  [1, 1, 1, 1],
  [7, 2, 3, 4],
  [65, 2, 16, 8],
  [300, 4, 33, 16],
];

/** Distinct experts per token, about a fifth of the slots dropped (-1). */
function moeExperts(seed: number, tokens: number, k: number, E: number) {
  const rng = new Rng(seed);
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

function dispatched(seed: number, [tokens, k, dim, E]: number[]) {
  const d = moeDispatchOp.validate({
    x: randomFloats(seed, tokens * dim),
    experts: moeExperts(seed + 1, tokens, k, E),
    tokens,
    k,
    dim,
    numExperts: E,
  });
  return moeDispatchCpu(d);
}

const moeLabel = ([tokens, k, dim, E]: number[]) =>
  `${tokens} tokens k=${k} dim=${dim} E=${E}`;

const MOE_DISPATCH: TrainConformance<MoeDispatchArgs, MoeDispatchResult> = {
  cases() {
    return MOE_SIZES.map((size, c) => {
      const [tokens, k, dim, E] = size;
      return {
        label: moeLabel(size),
        make: () =>
          moeDispatchOp.validate({
            x: randomFloats(1700 + c, tokens * dim),
            experts: moeExperts(1800 + c, tokens, k, E),
            tokens,
            k,
            dim,
            numExperts: E,
            out: randomFloats(1900 + c, tokens * k * dim),
            offsets: new Int32Array(E + 1).fill(77),
            slotOf: new Int32Array(tokens * k).fill(77),
          }),
      };
    });
  },
  // A copy: exact on every backend.
  compare(got, want, _run, _backend, what) {
    assert.deepEqual(got.offsets, want.offsets, `${what}: offsets`);
    assert.deepEqual(got.slotOf, want.slotOf, `${what}: slotOf`);
    assert.deepEqual(got.out, want.out, `${what}: out`);
  },
};

const MOE_COMBINE: TrainConformance<MoeCombineArgs, Float32Array> = {
  cases() {
    return MOE_SIZES.flatMap((size, c) => {
      const [tokens, k, dim] = size;
      return [false, true].map((accumulate) => ({
        label: `${moeLabel(size)}${accumulate ? " accumulate" : ""}`,
        make: () => {
          const d = dispatched(2000 + c, size);
          return moeCombineOp.validate({
            y: randomFloats(2100 + c, tokens * k * dim),
            weights: randomFloats(2200 + c, tokens * k),
            slotOf: d.slotOf,
            out: randomFloats(2300 + c, tokens * dim),
            accumulate,
            tokens,
            k,
            dim,
          });
        },
      }));
    });
  },
  compare(got, want, { gotArgs }, backend, what) {
    if (backend !== "webgpu") return assert.deepEqual(got, want, what);
    // k + 1 float32 terms of size <= 1.
    const tol = 2 * (gotArgs.k + 3) * U32;
    withinBound(got, want, () => tol, what);
  },
};

const MOE_COMBINE_BACKWARD: TrainConformance<
  MoeCombineBackwardArgs,
  MoeCombineGrads
> = {
  cases() {
    return MOE_SIZES.map((size, c) => {
      const [tokens, k, dim] = size;
      return {
        label: moeLabel(size),
        make: () => {
          const d = dispatched(2400 + c, size);
          return moeCombineBackwardOp.validate({
            y: randomFloats(2500 + c, tokens * k * dim),
            weights: randomFloats(2600 + c, tokens * k),
            slotOf: d.slotOf,
            dOut: randomFloats(2700 + c, tokens * dim),
            dy: randomFloats(2800 + c, tokens * k * dim),
            dWeights: randomFloats(2900 + c, tokens * k),
            tokens,
            k,
            dim,
          });
        },
      };
    });
  },
  compare(got, want, { gotArgs }, backend, what) {
    if (backend !== "webgpu") {
      assert.deepEqual(got.dy, want.dy, `${what}: dy`);
      return assert.deepEqual(got.dWeights, want.dWeights, `${what}: dWeights`);
    }
    // dy: one float32 product (exactly rounded); dWeights: a dot of dim terms.
    withinBound(got.dy, want.dy, () => U32, `${what}: dy`);
    const tol = 2 * (gotArgs.dim + 2) * U32 * Math.max(1, gotArgs.dim);
    withinBound(got.dWeights, want.dWeights, () => tol, `${what}: dWeights`);
  },
};

const MOE_DISPATCH_BACKWARD: TrainConformance<
  MoeDispatchBackwardArgs,
  Float32Array
> = {
  cases() {
    return MOE_SIZES.flatMap((size, c) => {
      const [tokens, k, dim] = size;
      return [false, true].map((accumulate) => ({
        label: `${moeLabel(size)}${accumulate ? " accumulate" : ""}`,
        make: () => {
          const d = dispatched(3000 + c, size);
          return moeDispatchBackwardOp.validate({
            dRows: randomFloats(3100 + c, tokens * k * dim),
            slotOf: d.slotOf,
            dx: randomFloats(3200 + c, tokens * dim),
            accumulate,
            tokens,
            k,
            dim,
          });
        },
      }));
    });
  },
  compare(got, want, { gotArgs }, backend, what) {
    if (backend !== "webgpu") return assert.deepEqual(got, want, what);
    const tol = 2 * (gotArgs.k + 3) * U32;
    withinBound(got, want, () => tol, what);
  },
};

/** The conformance of the training ops, by op name. */
// deno-lint-ignore no-explicit-any
export const TRAIN_CONFORMANCE: Record<string, TrainConformance<any, any>> = {
  matmul: MATMUL,
  attention: ATTENTION,
  attentionBackward: ATTENTION_BACKWARD,
  rmsNorm: RMS_NORM,
  rmsNormBackward: RMS_NORM_BACKWARD,
  moeDispatch: MOE_DISPATCH,
  moeCombine: MOE_COMBINE,
  moeCombineBackward: MOE_COMBINE_BACKWARD,
  moeDispatchBackward: MOE_DISPATCH_BACKWARD,
};

// ------------------------------------------------ reachability

/** The training ops, each with a "cpu" and a "webgpu" kernel. */
const TRAIN_OPS: AnyOp[] = [
  matmulOp,
  attentionOp,
  attentionBackwardOp,
  rmsNormOp,
  rmsNormBackwardOp,
  moeDispatchOp,
  moeCombineOp,
  moeCombineBackwardOp,
  moeDispatchBackwardOp,
];

/** The training ops with a "cpu-threads" kernel too. */
const CPU_THREADS = new Set([matmulOp, attentionOp, attentionBackwardOp]);

/** One step of a tiny transformer on `backend`, through the public trainer. */
async function trainTiny(
  backend: Exclude<KernelBackend, "wasm">,
): Promise<void> {
  const rng = new Rng(5);
  const tokens = (n: number) =>
    Int32Array.from({ length: n }, () => rng.int(16));
  await trainTransformer({ train: tokens(1024), valid: tokens(64) }, {
    vocab: 16,
    seqLen: 8,
    dim: 8,
    heads: 2,
    layers: 1,
    experts: 4,
    topK: 2,
    hidden: 8,
    steps: 1,
    batchSeqs: 2,
    validTokens: 16,
    backend,
  });
}

/**
 * A path per registered training-op kernel (`op/backend`) that must run
 * it: one step of `trainTransformer` on that backend, whose step calls
 * every training op through the registry.
 */
export const TRAIN_REACH: Record<string, () => Promise<void>> = {};
for (const op of TRAIN_OPS) {
  for (const backend of KERNEL_BACKENDS) {
    if (backend === "cpu-threads" && !CPU_THREADS.has(op)) continue;
    if (backend === "wasm") continue; // no training op has a wasm kernel
    TRAIN_REACH[`${op.name}/${backend}`] = () => trainTiny(backend);
  }
}

// ------------------------------------------------ chunked bindings

/**
 * The smallest storage binding (bytes) each training-op WebGPU kernel
 * takes for these arguments: the tensors it splits, one unit at a time;
 * those it does not split, whole. The conformance suite runs each kernel
 * under that limit too, so every split path runs.
 */
export const TRAIN_LEAST_BINDING: Record<string, (args: unknown) => number> = {
  // Rows of out (and of a, unless transposed) one at a time; b whole.
  matmul: (args) => {
    const x = args as MatmulArgs;
    const whole = x.transA ? Math.max(x.m * x.k, x.m * x.n) : 0;
    return 4 * Math.max(x.k * x.n, whole, x.k, x.n, 4);
  },
  // One (sequence, head) at a time.
  attention: (args) => headBytes(args as AttentionShape),
  attentionBackward: (args) => headBytes(args as AttentionShape),
  // One row at a time; the gain whole.
  rmsNorm: (args) => 4 * Math.max((args as RmsNormArgs).dim, 4),
  rmsNormBackward: (args) => 4 * Math.max((args as RmsNormArgs).dim, 4),
  // Nothing split: the largest tensor whole.
  moeDispatch: (args) => moeBytes(args as MoeShape),
  moeCombine: (args) => moeBytes(args as MoeShape),
  moeCombineBackward: (args) => moeBytes(args as MoeShape),
  moeDispatchBackward: (args) => moeBytes(args as MoeShape),
};

function headBytes(s: AttentionShape): number {
  return 4 * s.seq * Math.max(s.seq, s.headDim);
}

function moeBytes(s: MoeShape): number {
  return 4 * Math.max(16, s.tokens * s.k * s.dim);
}
