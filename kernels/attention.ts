// The attention ops on the GPU (lib/ops/attention.ts), in float32. Forward:
// one thread per (sequence, head, query position) computes its causal
// scores into its row of probs, the softmax in place (after subtracting the
// row maximum) and the weighted sum of the values. Backward: one thread per
// query row writes dP, then dS = P (dP − rowsum(P dP)) scaled, into a
// scratch matrix, and dq; a second pass, one thread per key row, sums dk
// and dv down its column (no atomics: the same sums on every run). Heads
// go in runs that fit one storage binding.
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type AttentionArgs,
  type AttentionBackwardArgs,
  attentionBackwardOp,
  type AttentionGrads,
  attentionOp,
  type AttentionShape,
} from "../lib/ops/attention.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { type Binding, dispatch, FLAT_ID, type GpuProgram } from "./program.ts";
import {
  downloadAll,
  params,
  runsOf,
  scratch,
  submit,
  upload,
} from "./_train_io.ts";

const WG = 64;

const HEADER = `${FLAT_ID}
struct Params { heads: u32, seq: u32, dim: u32, pad: u32, scale: f32, p0: u32, p1: u32, p2: u32 }`;

const FORWARD: GpuProgram = {
  key: "train-attention",
  label: "causal attention",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> outv: array<f32>;
@group(0) @binding(1) var<storage, read_write> probs: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = flat_id(wid, nwg, lid, ${WG}u);
  let S = params.seq; let D = params.dim;
  if (row >= params.heads * S) { return; }
  let h = row / S; let i = row % S;
  let base = h * S * D; let qi = base + i * D; let pi = row * S;
  var mx = -3.4e38;
  for (var j = 0u; j <= i; j++) {
    var s = 0.0;
    let kj = base + j * D;
    for (var d = 0u; d < D; d++) { s = s + q[qi + d] * k[kj + d]; }
    s = s * params.scale;
    probs[pi + j] = s;
    mx = max(mx, s);
  }
  var sum = 0.0;
  for (var j = 0u; j <= i; j++) {
    let e = exp(probs[pi + j] - mx);
    probs[pi + j] = e;
    sum = sum + e;
  }
  for (var j = i + 1u; j < S; j++) { probs[pi + j] = 0.0; }
  let inv = 1.0 / sum;
  for (var d = 0u; d < D; d++) { outv[qi + d] = 0.0; }
  for (var j = 0u; j <= i; j++) {
    let p = probs[pi + j] * inv;
    probs[pi + j] = p;
    let vj = base + j * D;
    for (var d = 0u; d < D; d++) { outv[qi + d] = outv[qi + d] + p * v[vj + d]; }
  }
}`,
};

const BACKWARD_ROWS: GpuProgram = {
  key: "train-attention-backward-rows",
  label: "causal attention backward (dS, dq)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dq: array<f32>;
@group(0) @binding(1) var<storage, read_write> ds: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> probs: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = flat_id(wid, nwg, lid, ${WG}u);
  let S = params.seq; let D = params.dim;
  if (row >= params.heads * S) { return; }
  let h = row / S; let i = row % S;
  let base = h * S * D; let gi = base + i * D; let pi = row * S;
  var dot = 0.0;
  for (var j = 0u; j <= i; j++) {
    var dp = 0.0;
    let vj = base + j * D;
    for (var d = 0u; d < D; d++) { dp = dp + dout[gi + d] * v[vj + d]; }
    ds[pi + j] = dp;
    dot = dot + probs[pi + j] * dp;
  }
  for (var j = i + 1u; j < S; j++) { ds[pi + j] = 0.0; }
  for (var d = 0u; d < D; d++) { dq[gi + d] = 0.0; }
  for (var j = 0u; j <= i; j++) {
    let g = probs[pi + j] * (ds[pi + j] - dot) * params.scale;
    ds[pi + j] = g;
    let kj = base + j * D;
    for (var d = 0u; d < D; d++) { dq[gi + d] = dq[gi + d] + g * k[kj + d]; }
  }
}`,
};

const BACKWARD_COLUMNS: GpuProgram = {
  key: "train-attention-backward-columns",
  label: "causal attention backward (dk, dv)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dk: array<f32>;
@group(0) @binding(1) var<storage, read_write> dv: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> ds: array<f32>;
@group(0) @binding(4) var<storage, read> probs: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = flat_id(wid, nwg, lid, ${WG}u);
  let S = params.seq; let D = params.dim;
  if (col >= params.heads * S) { return; }
  let h = col / S; let j = col % S;
  let base = h * S * D; let at = base + j * D;
  for (var d = 0u; d < D; d++) { dk[at + d] = 0.0; dv[at + d] = 0.0; }
  for (var i = j; i < S; i++) {
    let e = (h * S + i) * S + j;
    let g = ds[e]; let p = probs[e];
    let qi = base + i * D;
    for (var d = 0u; d < D; d++) {
      dk[at + d] = dk[at + d] + g * q[qi + d];
      dv[at + d] = dv[at + d] + p * dout[qi + d];
    }
  }
}`,
};

function uniformWords(heads: number, s: AttentionShape): number[] {
  const scale =
    new Uint32Array(new Float32Array([1 / Math.sqrt(s.headDim)]).buffer)[0];
  return [heads, s.seq, s.headDim, 0, scale];
}

/** Runs of heads (sequence x head pairs) that fit one binding each. */
function headRuns(gpu: Gpu, s: AttentionShape): [number, number][] {
  const perHead = 4 * s.seq * Math.max(s.seq, s.headDim);
  return runsOf(gpu, s.batch * s.heads, perHead);
}

/**
 * Records the forward over resident buffers holding `heads` (sequence,
 * head) pairs: `out` and `probs` written from `q`, `k`, `v`.
 */
export function recordAttention(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: { out: Binding; probs: Binding; q: Binding; k: Binding; v: Binding },
  heads: number,
  shape: AttentionShape,
  uniform: (words: number[]) => GPUBuffer,
): void {
  const u = uniform(uniformWords(heads, shape));
  dispatch(
    gpu,
    encoder,
    FORWARD,
    [b.out, b.probs, b.q, b.k, b.v, u],
    heads * shape.seq,
  );
}

/**
 * Records the backward over resident buffers (`ds`: a scratch of
 * `heads x seq x seq` floats).
 */
export function recordAttentionBackward(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: {
    dq: Binding;
    dk: Binding;
    dv: Binding;
    ds: Binding;
    q: Binding;
    k: Binding;
    v: Binding;
    probs: Binding;
    dOut: Binding;
  },
  heads: number,
  shape: AttentionShape,
  uniform: (words: number[]) => GPUBuffer,
): void {
  const u = uniform(uniformWords(heads, shape));
  const rows = heads * shape.seq;
  dispatch(gpu, encoder, BACKWARD_ROWS, [
    b.dq,
    b.ds,
    b.k,
    b.v,
    b.probs,
    b.dOut,
    u,
  ], rows);
  dispatch(gpu, encoder, BACKWARD_COLUMNS, [
    b.dk,
    b.dv,
    b.q,
    b.ds,
    b.probs,
    b.dOut,
    u,
  ], rows);
}

/** A uniform maker that remembers its buffers for release. */
function uniformsOf(gpu: Gpu, made: GPUBuffer[]) {
  return (w: number[]) => {
    const u = params(gpu, "attention params", w);
    made.push(u);
    return u;
  };
}

async function attentionWebGpu(
  args: AttentionArgs,
  env: { gpu?: unknown },
): Promise<Float32Array> {
  const gpu = gpuOf(env);
  const { seq: S, headDim: D } = args;
  for (const [from, to] of headRuns(gpu, args)) {
    const h = to - from;
    const part = (x: Float32Array, w: number) =>
      x.subarray(from * S * w, to * S * w);
    const outHost = part(args.out, D), probsHost = part(args.probs, S);
    const q = upload(gpu, "attention q", part(args.q, D));
    const k = upload(gpu, "attention k", part(args.k, D));
    const v = upload(gpu, "attention v", part(args.v, D));
    const out = scratch(gpu, "attention out", h * S * D);
    const probs = scratch(gpu, "attention probs", h * S * S);
    const made: GPUBuffer[] = [];
    submit(
      gpu,
      "attention",
      (enc) =>
        recordAttention(
          gpu,
          enc,
          { out, probs, q, k, v },
          h,
          args,
          uniformsOf(gpu, made),
        ),
    );
    await downloadAll(gpu, [[out, outHost], [probs, probsHost]]);
    gpu.pool.release(q, k, v, out, probs, ...made);
  }
  return args.out;
}

async function attentionBackwardWebGpu(
  args: AttentionBackwardArgs,
  env: { gpu?: unknown },
): Promise<AttentionGrads> {
  const gpu = gpuOf(env);
  const { seq: S, headDim: D } = args;
  for (const [from, to] of headRuns(gpu, args)) {
    const h = to - from;
    const part = (x: Float32Array, w: number) =>
      x.subarray(from * S * w, to * S * w);
    const q = upload(gpu, "attention q", part(args.q, D));
    const k = upload(gpu, "attention k", part(args.k, D));
    const v = upload(gpu, "attention v", part(args.v, D));
    const probs = upload(gpu, "attention probs", part(args.probs, S));
    const dOut = upload(gpu, "attention dOut", part(args.dOut, D));
    const dq = scratch(gpu, "attention dq", h * S * D);
    const dk = scratch(gpu, "attention dk", h * S * D);
    const dv = scratch(gpu, "attention dv", h * S * D);
    const ds = scratch(gpu, "attention ds", h * S * S);
    const made: GPUBuffer[] = [];
    submit(gpu, "attention backward", (enc) =>
      recordAttentionBackward(
        gpu,
        enc,
        { dq, dk, dv, ds, q, k, v, probs, dOut },
        h,
        args,
        uniformsOf(gpu, made),
      ));
    await downloadAll(gpu, [
      [dq, part(args.dq, D)],
      [dk, part(args.dk, D)],
      [dv, part(args.dv, D)],
    ]);
    gpu.pool.release(q, k, v, probs, dOut, dq, dk, dv, ds, ...made);
  }
  return { dq: args.dq, dk: args.dk, dv: args.dv };
}

/** The registered attention/webgpu kernel. */
export const attentionKernel = registerKernel({
  op: attentionOp,
  backend: "webgpu",
  run: attentionWebGpu,
  callers: ['trainTransformer() with backend "webgpu"'],
});

/** The registered attentionBackward/webgpu kernel. */
export const attentionBackwardKernel = registerKernel({
  op: attentionBackwardOp,
  backend: "webgpu",
  run: attentionBackwardWebGpu,
  callers: ['trainTransformer() with backend "webgpu"'],
});
