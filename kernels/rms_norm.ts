// The RMSNorm ops on the GPU (lib/ops/rms_norm.ts), in float32: one thread
// per row for the forward and for dx, one thread per column for the gain's
// gradient (summed down the rows in order, no atomics). Rows go in runs
// that fit one storage binding; the gain's gradient accumulates over them.
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type RmsNormArgs,
  type RmsNormBackwardArgs,
  rmsNormBackwardOp,
  type RmsNormGrads,
  rmsNormOp,
} from "../lib/ops/rms_norm.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { type Binding, dispatch, FLAT_ID, type GpuProgram } from "./program.ts";
import {
  checkBinding,
  download,
  downloadAll,
  params,
  runsOf,
  scratch,
  submit,
  upload,
} from "./_train_io.ts";

const WG = 64;

const HEADER = `${FLAT_ID}
struct Params { rows: u32, dim: u32, accumulate: u32, p1: u32, eps: f32, p2: u32, p3: u32, p4: u32 }`;

const FORWARD: GpuProgram = {
  key: "train-rms-norm",
  label: "rms norm",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> outv: array<f32>;
@group(0) @binding(1) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gain: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = flat_id(wid, nwg, lid, ${WG}u);
  if (r >= params.rows) { return; }
  let D = params.dim; let at = r * D;
  var ss = 0.0;
  for (var d = 0u; d < D; d++) { ss = ss + x[at + d] * x[at + d]; }
  let s = 1.0 / sqrt(ss / f32(D) + params.eps);
  rstd[r] = s;
  for (var d = 0u; d < D; d++) { outv[at + d] = x[at + d] * s * gain[d]; }
}`,
};

const BACKWARD_ROWS: GpuProgram = {
  key: "train-rms-norm-backward-rows",
  label: "rms norm backward (dx)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dx: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = flat_id(wid, nwg, lid, ${WG}u);
  if (r >= params.rows) { return; }
  let D = params.dim; let at = r * D; let s = rstd[r];
  var dot = 0.0;
  for (var d = 0u; d < D; d++) { dot = dot + gain[d] * dout[at + d] * x[at + d]; }
  let c = s * s * s * dot / f32(D);
  let add = params.accumulate != 0u;
  for (var d = 0u; d < D; d++) {
    let g = s * gain[d] * dout[at + d] - x[at + d] * c;
    if (add) { dx[at + d] = g + dx[at + d]; } else { dx[at + d] = g; }
  }
}`,
};

const BACKWARD_GAIN: GpuProgram = {
  key: "train-rms-norm-backward-gain",
  label: "rms norm backward (dGain)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dgain: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let d = flat_id(wid, nwg, lid, ${WG}u);
  let D = params.dim;
  if (d >= D) { return; }
  var acc = 0.0;
  for (var r = 0u; r < params.rows; r++) { acc = acc + dout[r * D + d] * x[r * D + d] * rstd[r]; }
  dgain[d] = dgain[d] + acc;
}`,
};

function words(
  rows: number,
  dim: number,
  eps = 0,
  accumulate = false,
): number[] {
  const e = new Uint32Array(new Float32Array([eps]).buffer)[0];
  return [rows, dim, accumulate ? 1 : 0, 0, e];
}

/** Records the forward over resident buffers of `rows` rows. */
export function recordRmsNorm(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: { out: Binding; rstd: Binding; x: Binding; gain: Binding },
  rows: number,
  dim: number,
  eps: number,
  uniform: (words: number[]) => GPUBuffer,
): void {
  if (rows === 0) return;
  const u = uniform(words(rows, dim, eps));
  dispatch(gpu, encoder, FORWARD, [b.out, b.rstd, b.x, b.gain, u], rows);
}

/** Records the backward over resident buffers (`dGain` accumulated; `dx` too with `accumulate`). */
export function recordRmsNormBackward(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: {
    dx: Binding;
    dGain: Binding;
    x: Binding;
    gain: Binding;
    rstd: Binding;
    dOut: Binding;
  },
  rows: number,
  dim: number,
  accumulate: boolean,
  uniform: (words: number[]) => GPUBuffer,
): void {
  if (rows === 0) return;
  const u = uniform(words(rows, dim, 0, accumulate));
  dispatch(
    gpu,
    encoder,
    BACKWARD_ROWS,
    [b.dx, b.x, b.gain, b.rstd, b.dOut, u],
    rows,
  );
  dispatch(gpu, encoder, BACKWARD_GAIN, [b.dGain, b.x, b.rstd, b.dOut, u], dim);
}

function uniformsOf(gpu: Gpu, made: GPUBuffer[]) {
  return (w: number[]) => {
    const u = params(gpu, "rms norm params", w);
    made.push(u);
    return u;
  };
}

async function rmsNormWebGpu(
  args: RmsNormArgs,
  env: { gpu?: unknown },
): Promise<Float32Array> {
  const gpu = gpuOf(env);
  const { dim } = args;
  checkBinding(gpu, "gain", 4 * dim);
  const gain = upload(gpu, "rms norm gain", args.gain);
  for (const [from, to] of runsOf(gpu, args.rows, 4 * dim)) {
    const rows = to - from;
    const x = upload(gpu, "rms norm x", args.x.subarray(from * dim, to * dim));
    const out = scratch(gpu, "rms norm out", rows * dim);
    const rstd = scratch(gpu, "rms norm rstd", rows);
    const made: GPUBuffer[] = [];
    submit(
      gpu,
      "rms norm",
      (enc) =>
        recordRmsNorm(
          gpu,
          enc,
          { out, rstd, x, gain },
          rows,
          dim,
          args.eps,
          uniformsOf(gpu, made),
        ),
    );
    await downloadAll(gpu, [
      [out, args.out.subarray(from * dim, to * dim)],
      [rstd, args.rstd.subarray(from, to)],
    ]);
    gpu.pool.release(x, out, rstd, ...made);
  }
  gpu.pool.release(gain);
  return args.out;
}

async function rmsNormBackwardWebGpu(
  args: RmsNormBackwardArgs,
  env: { gpu?: unknown },
): Promise<RmsNormGrads> {
  const gpu = gpuOf(env);
  const { dim } = args;
  checkBinding(gpu, "gain", 4 * dim);
  const gain = upload(gpu, "rms norm gain", args.gain);
  const dGain = upload(gpu, "rms norm dGain", args.dGain);
  for (const [from, to] of runsOf(gpu, args.rows, 4 * dim)) {
    const rows = to - from;
    const part = (a: Float32Array) => a.subarray(from * dim, to * dim);
    const x = upload(gpu, "rms norm x", part(args.x));
    const dOut = upload(gpu, "rms norm dOut", part(args.dOut));
    const rstd = upload(gpu, "rms norm rstd", args.rstd.subarray(from, to));
    const dx = args.accumulate
      ? upload(gpu, "rms norm dx", part(args.dx))
      : scratch(gpu, "rms norm dx", rows * dim);
    const made: GPUBuffer[] = [];
    submit(gpu, "rms norm backward", (enc) =>
      recordRmsNormBackward(
        gpu,
        enc,
        { dx, dGain, x, gain, rstd, dOut },
        rows,
        dim,
        args.accumulate,
        uniformsOf(gpu, made),
      ));
    await download(gpu, dx, part(args.dx));
    gpu.pool.release(x, dOut, rstd, dx, ...made);
  }
  await download(gpu, dGain, args.dGain);
  gpu.pool.release(gain, dGain);
  return { dx: args.dx, dGain: args.dGain };
}

/** The registered rmsNorm/webgpu kernel. */
export const rmsNormKernel = registerKernel({
  op: rmsNormOp,
  backend: "webgpu",
  run: rmsNormWebGpu,
  callers: ['trainTransformer() with backend "webgpu"'],
});

/** The registered rmsNormBackward/webgpu kernel. */
export const rmsNormBackwardKernel = registerKernel({
  op: rmsNormBackwardOp,
  backend: "webgpu",
  run: rmsNormBackwardWebGpu,
  callers: ['trainTransformer() with backend "webgpu"'],
});
