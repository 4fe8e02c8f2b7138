// Expert dispatch and combine on the GPU (lib/ops/moe_dispatch.ts).
// Dispatch: one workgroup per expert counts, in 256 contiguous runs of
// slots, the slots of lower experts (its offset) and its own (a prefix over
// the runs gives each run its first row), then places its slots in slot
// order: the CPU kernel's rows exactly, without atomics. A second pass
// copies the rows and zeroes those past the last expert's. Combine and the
// backwards are one thread per output entry (or per slot), summing over the
// k slots of a token in order, in float32. Every tensor must fit one
// storage binding.
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type MoeCombineArgs,
  type MoeCombineBackwardArgs,
  moeCombineBackwardOp,
  type MoeCombineGrads,
  moeCombineOp,
  type MoeDispatchArgs,
  type MoeDispatchBackwardArgs,
  moeDispatchBackwardOp,
  moeDispatchOp,
  type MoeDispatchResult,
} from "../lib/ops/moe_dispatch.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { type Binding, dispatch, FLAT_ID, type GpuProgram } from "./program.ts";
import {
  checkBinding,
  download,
  downloadAll,
  params,
  scratch,
  submit,
  upload,
} from "./_train_io.ts";

const WG = 64;
/** Threads of a dispatch workgroup (one workgroup per expert). */
const RUNS = 256;

const HEADER = `${FLAT_ID}
struct Params { tokens: u32, k: u32, dim: u32, experts: u32, accumulate: u32, p0: u32, p1: u32, p2: u32 }`;

const SLOTS: GpuProgram = {
  key: "train-moe-dispatch-slots",
  label: "moe dispatch (slot rows)",
  workgroupSize: RUNS,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> slotOf: array<i32>;
@group(0) @binding(1) var<storage, read_write> offsets: array<i32>;
@group(0) @binding(2) var<storage, read> experts: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> own: array<u32, ${RUNS}>;
var<workgroup> lower: array<u32, ${RUNS}>;

@compute @workgroup_size(${RUNS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let e = wid.y * nwg.x + wid.x;
  let S = params.tokens * params.k;
  let per = (S + ${RUNS - 1}u) / ${RUNS}u;
  let lo = min(S, t * per);
  let hi = min(S, lo + per);
  let ei = i32(e);
  var mine = 0u; var below = 0u;
  for (var s = lo; s < hi; s++) {
    let x = experts[s];
    if (x == ei) { mine++; }
    if (x >= 0 && x < ei) { below++; }
  }
  own[t] = mine;
  lower[t] = below;
  workgroupBarrier();
  if (t == 0u) {
    var run = 0u; var low = 0u;
    for (var r = 0u; r < ${RUNS}u; r++) {
      let c = own[r];
      own[r] = run;
      run += c;
      low += lower[r];
    }
    lower[0] = low;
    lower[1] = run;
  }
  workgroupBarrier();
  if (e >= params.experts) { return; }
  let offset = lower[0];
  if (t == 0u) {
    offsets[e] = i32(offset);
    if (e + 1u == params.experts) { offsets[e + 1u] = i32(offset + lower[1]); }
  }
  var row = offset + own[t];
  for (var s = lo; s < hi; s++) {
    let x = experts[s];
    if (x == ei) { slotOf[s] = i32(row); row++; }
    if (x < 0 && e == 0u) { slotOf[s] = -1; }
  }
}`,
};

const ROWS: GpuProgram = {
  key: "train-moe-dispatch-rows",
  label: "moe dispatch (rows)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> outv: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> slotOf: array<i32>;
@group(0) @binding(3) var<storage, read> offsets: array<i32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  let D = params.dim;
  if (i >= params.tokens * params.k * D) { return; }
  let s = i / D; let d = i % D;
  let row = slotOf[s];
  if (row >= 0) { outv[u32(row) * D + d] = x[(s / params.k) * D + d]; }
  if (i32(s) >= offsets[params.experts]) { outv[s * D + d] = 0.0; }
}`,
};

const COMBINE: GpuProgram = {
  key: "train-moe-combine",
  label: "moe combine",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> outv: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> slotOf: array<i32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  let D = params.dim; let K = params.k;
  if (i >= params.tokens * D) { return; }
  let t = i / D; let d = i % D;
  var acc = 0.0;
  for (var j = 0u; j < K; j++) {
    let row = slotOf[t * K + j];
    if (row >= 0) { acc = acc + weights[t * K + j] * y[u32(row) * D + d]; }
  }
  if (params.accumulate != 0u) { outv[i] = acc + outv[i]; } else { outv[i] = acc; }
}`,
};

const COMBINE_DY: GpuProgram = {
  key: "train-moe-combine-backward-dy",
  label: "moe combine backward (dy)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dy: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> slotOf: array<i32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  let D = params.dim;
  if (i >= params.tokens * params.k * D) { return; }
  let s = i / D; let d = i % D;
  let row = slotOf[s];
  if (row >= 0) { dy[u32(row) * D + d] = weights[s] * dout[(s / params.k) * D + d]; }
}`,
};

const COMBINE_DW: GpuProgram = {
  key: "train-moe-combine-backward-dweights",
  label: "moe combine backward (dWeights)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dw: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> slotOf: array<i32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let s = flat_id(wid, nwg, lid, ${WG}u);
  let D = params.dim;
  if (s >= params.tokens * params.k) { return; }
  let row = slotOf[s];
  var acc = 0.0;
  if (row >= 0) {
    let g = (s / params.k) * D; let at = u32(row) * D;
    for (var d = 0u; d < D; d++) { acc = acc + dout[g + d] * y[at + d]; }
  }
  dw[s] = acc;
}`,
};

const DISPATCH_DX: GpuProgram = {
  key: "train-moe-dispatch-backward",
  label: "moe dispatch backward (dx)",
  workgroupSize: WG,
  wgsl: `${HEADER}
@group(0) @binding(0) var<storage, read_write> dx: array<f32>;
@group(0) @binding(1) var<storage, read> drows: array<f32>;
@group(0) @binding(2) var<storage, read> slotOf: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  let D = params.dim; let K = params.k;
  if (i >= params.tokens * D) { return; }
  let t = i / D; let d = i % D;
  var acc = 0.0;
  for (var j = 0u; j < K; j++) {
    let row = slotOf[t * K + j];
    if (row >= 0) { acc = acc + drows[u32(row) * D + d]; }
  }
  if (params.accumulate != 0u) { dx[i] = acc + dx[i]; } else { dx[i] = acc; }
}`,
};

/** Sizes of a routed layer as the programs read them. */
export interface MoeGpuShape {
  tokens: number;
  k: number;
  dim: number;
  numExperts?: number;
  accumulate?: boolean;
}

function words(s: MoeGpuShape): number[] {
  return [s.tokens, s.k, s.dim, s.numExperts ?? 0, s.accumulate ? 1 : 0];
}

/** Records the dispatch (slot rows, offsets, rows) over resident buffers. */
export function recordMoeDispatch(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: {
    out: Binding;
    offsets: Binding;
    slotOf: Binding;
    x: Binding;
    experts: Binding;
  },
  shape: MoeGpuShape & { numExperts: number },
  uniform: (words: number[]) => GPUBuffer,
): void {
  const u = uniform(words(shape));
  dispatch(
    gpu,
    encoder,
    SLOTS,
    [b.slotOf, b.offsets, b.experts, u],
    shape.numExperts * RUNS,
  );
  const entries = shape.tokens * shape.k * shape.dim;
  if (entries > 0) {
    dispatch(gpu, encoder, ROWS, [b.out, b.x, b.slotOf, b.offsets, u], entries);
  }
}

/** Records the combine over resident buffers. */
export function recordMoeCombine(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: { out: Binding; y: Binding; weights: Binding; slotOf: Binding },
  shape: MoeGpuShape,
  uniform: (words: number[]) => GPUBuffer,
): void {
  if (shape.tokens === 0) return;
  const u = uniform(words(shape));
  dispatch(
    gpu,
    encoder,
    COMBINE,
    [b.out, b.y, b.weights, b.slotOf, u],
    shape.tokens * shape.dim,
  );
}

/** Records the combine backward over resident buffers (`dy` is cleared first). */
export function recordMoeCombineBackward(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: {
    dy: GPUBuffer;
    dWeights: Binding;
    y: Binding;
    weights: Binding;
    slotOf: Binding;
    dOut: Binding;
  },
  shape: MoeGpuShape,
  uniform: (words: number[]) => GPUBuffer,
): void {
  const slots = shape.tokens * shape.k;
  if (slots === 0) return;
  const u = uniform(words(shape));
  encoder.clearBuffer(b.dy, 0, 4 * slots * shape.dim);
  dispatch(
    gpu,
    encoder,
    COMBINE_DY,
    [b.dy, b.weights, b.slotOf, b.dOut, u],
    slots * shape.dim,
  );
  dispatch(
    gpu,
    encoder,
    COMBINE_DW,
    [b.dWeights, b.y, b.slotOf, b.dOut, u],
    slots,
  );
}

/** Records the dispatch backward over resident buffers. */
export function recordMoeDispatchBackward(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  b: { dx: Binding; dRows: Binding; slotOf: Binding },
  shape: MoeGpuShape,
  uniform: (words: number[]) => GPUBuffer,
): void {
  if (shape.tokens === 0) return;
  const u = uniform(words(shape));
  dispatch(
    gpu,
    encoder,
    DISPATCH_DX,
    [b.dx, b.dRows, b.slotOf, u],
    shape.tokens * shape.dim,
  );
}

function uniformsOf(gpu: Gpu, made: GPUBuffer[]) {
  return (w: number[]) => {
    const u = params(gpu, "moe params", w);
    made.push(u);
    return u;
  };
}

/** Uploads each named array after checking it fits one binding. */
function uploadAll<K extends string>(
  gpu: Gpu,
  arrays: Record<K, Float32Array | Int32Array>,
): Record<K, GPUBuffer> {
  for (const [name, a] of Object.entries<Float32Array | Int32Array>(arrays)) {
    checkBinding(gpu, name, a.byteLength);
  }
  return Object.fromEntries(
    Object.entries<Float32Array | Int32Array>(arrays).map((
      [name, a],
    ) => [name, upload(gpu, `moe ${name}`, a)]),
  ) as Record<K, GPUBuffer>;
}

async function moeDispatchWebGpu(
  args: MoeDispatchArgs,
  env: { gpu?: unknown },
): Promise<MoeDispatchResult> {
  const gpu = gpuOf(env);
  const b = uploadAll(gpu, { x: args.x, experts: args.experts, out: args.out });
  const offsets = scratch(gpu, "moe offsets", args.numExperts + 1);
  const slotOf = scratch(gpu, "moe slotOf", args.slotOf.length);
  const made: GPUBuffer[] = [];
  submit(
    gpu,
    "moe dispatch",
    (enc) =>
      recordMoeDispatch(
        gpu,
        enc,
        { ...b, offsets, slotOf },
        args,
        uniformsOf(gpu, made),
      ),
  );
  await downloadAll(gpu, [
    [b.out, args.out],
    [offsets, args.offsets],
    [slotOf, args.slotOf],
  ]);
  gpu.pool.release(b.x, b.experts, b.out, offsets, slotOf, ...made);
  return { out: args.out, offsets: args.offsets, slotOf: args.slotOf };
}

async function moeCombineWebGpu(
  args: MoeCombineArgs,
  env: { gpu?: unknown },
): Promise<Float32Array> {
  const gpu = gpuOf(env);
  const b = uploadAll(gpu, {
    out: args.out,
    y: args.y,
    weights: args.weights,
    slotOf: args.slotOf,
  });
  const made: GPUBuffer[] = [];
  submit(
    gpu,
    "moe combine",
    (enc) => recordMoeCombine(gpu, enc, b, args, uniformsOf(gpu, made)),
  );
  await download(gpu, b.out, args.out);
  gpu.pool.release(...Object.values(b), ...made);
  return args.out;
}

async function moeCombineBackwardWebGpu(
  args: MoeCombineBackwardArgs,
  env: { gpu?: unknown },
): Promise<MoeCombineGrads> {
  const gpu = gpuOf(env);
  const b = uploadAll(gpu, {
    y: args.y,
    weights: args.weights,
    slotOf: args.slotOf,
    dOut: args.dOut,
    dy: args.dy,
  });
  const dWeights = scratch(gpu, "moe dWeights", args.dWeights.length);
  const made: GPUBuffer[] = [];
  submit(gpu, "moe combine backward", (enc) =>
    recordMoeCombineBackward(
      gpu,
      enc,
      { ...b, dWeights },
      args,
      uniformsOf(gpu, made),
    ));
  await downloadAll(gpu, [[b.dy, args.dy], [dWeights, args.dWeights]]);
  gpu.pool.release(...Object.values(b), dWeights, ...made);
  return { dy: args.dy, dWeights: args.dWeights };
}

async function moeDispatchBackwardWebGpu(
  args: MoeDispatchBackwardArgs,
  env: { gpu?: unknown },
): Promise<Float32Array> {
  const gpu = gpuOf(env);
  const b = uploadAll(gpu, {
    dx: args.dx,
    dRows: args.dRows,
    slotOf: args.slotOf,
  });
  const made: GPUBuffer[] = [];
  submit(
    gpu,
    "moe dispatch backward",
    (enc) =>
      recordMoeDispatchBackward(
        gpu,
        enc,
        b,
        args,
        uniformsOf(gpu, made),
      ),
  );
  await download(gpu, b.dx, args.dx);
  gpu.pool.release(...Object.values(b), ...made);
  return args.dx;
}

const CALLERS = ['trainTransformer() with backend "webgpu"'];

/** The registered moeDispatch/webgpu kernel. */
export const moeDispatchKernel = registerKernel({
  op: moeDispatchOp,
  backend: "webgpu",
  run: moeDispatchWebGpu,
  callers: CALLERS,
});

/** The registered moeCombine/webgpu kernel. */
export const moeCombineKernel = registerKernel({
  op: moeCombineOp,
  backend: "webgpu",
  run: moeCombineWebGpu,
  callers: CALLERS,
});

/** The registered moeCombineBackward/webgpu kernel. */
export const moeCombineBackwardKernel = registerKernel({
  op: moeCombineBackwardOp,
  backend: "webgpu",
  run: moeCombineBackwardWebGpu,
  callers: CALLERS,
});

/** The registered moeDispatchBackward/webgpu kernel. */
export const moeDispatchBackwardKernel = registerKernel({
  op: moeDispatchBackwardOp,
  backend: "webgpu",
  run: moeDispatchBackwardWebGpu,
  callers: CALLERS,
});
