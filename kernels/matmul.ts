// The matmul op on the GPU (lib/ops/matmul.ts): a tiled product, each
// workgroup of 16 x 16 threads computing a 64 x 64 tile of out from
// 64 x 16 and 16 x 64 tiles of op(a) and op(b) staged in workgroup memory,
// each thread 4 x 4 entries in registers, summed in float32 over p in
// order. Transposes are read through the index (no copy). Rows of out go
// in runs that fit one storage binding when a is not transposed (its rows
// are then contiguous); the other operands must fit one binding.
import { registerKernel } from "../lib/ops/registry.ts";
import { type MatmulArgs, matmulOp } from "../lib/ops/matmul.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { type Binding, dispatch, type GpuProgram } from "./program.ts";
import {
  checkBinding,
  download,
  params,
  runsOf,
  scratch,
  submit,
  upload,
} from "./_train_io.ts";

/** Side of the output tile of a workgroup. */
export const MATMUL_TILE = 64;
const T = MATMUL_TILE;
/** Depth of the op(a) and op(b) tiles staged per step. */
const TK = 16;
/** Threads per side of the workgroup (each computes 4 x 4 entries). */
const W = 16;

/** Flag bits of the program's `flags` uniform. */
const TRANS_A = 1, TRANS_B = 2, ACCUMULATE = 4;

const PROGRAM: GpuProgram = {
  key: "train-matmul-64",
  label: "matmul (tiled)",
  workgroupSize: W * W,
  wgsl: `
struct Params { m: u32, n: u32, k: u32, flags: u32, tilesN: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<storage, read_write> outm: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> ta: array<f32, ${T * TK}>; // op(a): ${T} rows x ${TK} columns
var<workgroup> tb: array<f32, ${TK * T}>; // op(b): ${TK} rows x ${T} columns

@compute @workgroup_size(${W * W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let M = params.m; let N = params.n; let K = params.k;
  let tile = wid.y * nwg.x + wid.x;
  let i0 = (tile / params.tilesN) * ${T}u;
  let j0 = (tile % params.tilesN) * ${T}u;
  // This thread's entries: rows i0 + r + ${W} x, columns j0 + c + ${W} y.
  let r = li / ${W}u;
  let c = li % ${W}u;
  let transA = (params.flags & ${TRANS_A}u) != 0u;
  let transB = (params.flags & ${TRANS_B}u) != 0u;
  var acc: array<array<f32, 4>, 4>;
  for (var x = 0u; x < 4u; x++) { for (var y = 0u; y < 4u; y++) { acc[x][y] = 0.0; } }
  for (var p0 = 0u; p0 < K; p0 += ${TK}u) {
    for (var t = 0u; t < 4u; t++) {
      let e = li + t * ${W * W}u;
      // ta[e]: op(a)[i0 + e / TK, p0 + e % TK]
      let ai = i0 + e / ${TK}u; let ap = p0 + e % ${TK}u;
      var x = 0.0;
      if (ai < M && ap < K) {
        if (transA) { x = a[ap * M + ai]; } else { x = a[ai * K + ap]; }
      }
      ta[e] = x;
      // tb[e]: op(b)[p0 + e / T, j0 + e % T]
      let bp = p0 + e / ${T}u; let bj = j0 + e % ${T}u;
      var y = 0.0;
      if (bp < K && bj < N) {
        if (transB) { y = b[bj * K + bp]; } else { y = b[bp * N + bj]; }
      }
      tb[e] = y;
    }
    workgroupBarrier();
    for (var q = 0u; q < ${TK}u; q++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var x = 0u; x < 4u; x++) { av[x] = ta[(r + ${W}u * x) * ${TK}u + q]; }
      for (var y = 0u; y < 4u; y++) { bv[y] = tb[q * ${T}u + c + ${W}u * y]; }
      for (var x = 0u; x < 4u; x++) {
        for (var y = 0u; y < 4u; y++) { acc[x][y] = acc[x][y] + av[x] * bv[y]; }
      }
    }
    workgroupBarrier();
  }
  let add = (params.flags & ${ACCUMULATE}u) != 0u;
  for (var x = 0u; x < 4u; x++) {
    let i = i0 + r + ${W}u * x;
    for (var y = 0u; y < 4u; y++) {
      let j = j0 + c + ${W}u * y;
      if (i < M && j < N) {
        let o = i * N + j;
        if (add) { outm[o] = outm[o] + acc[x][y]; } else { outm[o] = acc[x][y]; }
      }
    }
  }
}`,
};

/**
 * Records `out = (accumulate ? out : 0) + op(a) op(b)` over resident
 * buffers (`m x n` floats in `out` from its start, `a` and `b` laid out as
 * {@linkcode matmulOp} says) into `encoder`. `uniform` makes the
 * parameter buffer (the caller releases it after submitting).
 */
export function recordMatmul(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  out: Binding,
  a: Binding,
  b: Binding,
  shape: Pick<MatmulArgs, "m" | "n" | "k" | "transA" | "transB" | "accumulate">,
  uniform: (words: number[]) => GPUBuffer,
): void {
  const { m, n, k } = shape;
  if (m === 0 || n === 0) return;
  const tilesN = Math.ceil(n / T);
  const flags = (shape.transA ? TRANS_A : 0) | (shape.transB ? TRANS_B : 0) |
    (shape.accumulate ? ACCUMULATE : 0);
  const u = uniform([m, n, k, flags, tilesN]);
  const tiles = Math.ceil(m / T) * tilesN;
  dispatch(gpu, encoder, PROGRAM, [out, a, b, u], tiles * W * W);
}

/** The registered kernel on host arrays: upload, run, read `out` back. */
async function matmulWebGpu(
  args: MatmulArgs,
  env: { gpu?: unknown },
): Promise<Float32Array> {
  const gpu = gpuOf(env);
  const { m, n, k, transA } = args;
  if (m === 0 || n === 0) return args.out;
  checkBinding(gpu, "b", 4 * k * n);
  // Rows of out (and of a, unless transposed) in runs of one binding.
  const runs = transA
    ? (checkBinding(gpu, "a", 4 * m * k), [[0, m]] as [number, number][])
    : runsOf(gpu, m, 4 * Math.max(k, n));
  if (transA) checkBinding(gpu, "out", 4 * m * n);
  const b = upload(gpu, "matmul b", args.b);
  for (const [from, to] of runs) {
    const rows = to - from;
    const a = upload(
      gpu,
      "matmul a",
      transA ? args.a : args.a.subarray(from * k, to * k),
    );
    const outRows = args.out.subarray(from * n, to * n);
    const out = args.accumulate
      ? upload(gpu, "matmul out", outRows)
      : scratch(gpu, "matmul out", outRows.length);
    const made: GPUBuffer[] = [];
    submit(
      gpu,
      "matmul",
      (enc) =>
        recordMatmul(gpu, enc, out, a, b, { ...args, m: rows }, (w) => {
          const u = params(gpu, "matmul params", w);
          made.push(u);
          return u;
        }),
    );
    await download(gpu, out, outRows);
    gpu.pool.release(a, out, ...made);
  }
  gpu.pool.release(b);
  return args.out;
}

/** The registered matmul/webgpu kernel. */
export const matmulKernel = registerKernel({
  op: matmulOp,
  backend: "webgpu",
  run: matmulWebGpu,
  callers: ['trainTransformer() with backend "webgpu"'],
});
