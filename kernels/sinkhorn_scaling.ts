// Sinkhorn scaling on the GPU: the algorithm of the `sinkhorn` balancer
// (S-BASE; docs/algorithms.md section 8), not a variant of it. The matrix
// scaled is exp((s - rowmax) / tau); the column scale starts from the
// layer's last one (exp(logV / tau)); each iteration normalises the rows
// (u[i] = 1 / sum_j K[i][j] v[j]), sums the columns, measures the largest
// relative deviation of a column sum from tokens / experts, and either
// stops (within the tolerance, or at the iteration cap) or normalises the
// columns. At the end logV = tau * (log v - mean log v).
//
// The stopping test runs on the device: every iteration is recorded in one
// pass, rows and columns as indirect dispatches whose workgroup counts the
// test zeroes once it stops (the test itself then returns at once), so the
// host never waits between iterations.
// Float32 sums (per 256-row block, then over blocks) where the CPU sums in
// float64: the scale agrees within float32 rounding of the sums, and the
// iteration count is the CPU's unless an iteration's deviation lands
// within that rounding of the tolerance.
import type { ScoreMatrix } from "../lib/types.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type SinkhornArgs,
  sinkhornOp,
  type SinkhornResult,
} from "../lib/ops/sinkhorn.ts";
import { type Gpu, gpuOf } from "./device.ts";
import {
  FLAT_ID,
  type GpuProgram,
  type GpuTimer,
  readBack,
  span,
  storage,
  uniformSet,
} from "./program.ts";
import {
  releaseScores,
  type ResidentScores,
  type UniformMaker,
  uploadScores,
} from "./resident_scores.ts";

const WG = 64, BLOCK = 256, ONE = 256;
const PARAMS = `struct Params {
  rows: u32, first: u32, blocks: u32, max_iter: u32,
  tau: f32, tol: f32, goal: f32, slots: u32,
  zero: u32, pad0: u32, pad1: u32, pad2: u32,
}`;
// state: [0] iterations, [1] error (f32 bits), [2] stopped.
// Compensated (Kahan) sums keep the column sums, and so the stopping
// test, near the CPU's float64; opaque() keeps the compiler from folding
// the compensation away (see _exact_key.ts).
const HEAD = (E: number) => `
const E: u32 = ${E}u;
${PARAMS}
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) | params.zero); }
struct Sum { s: f32, c: f32 }
fn add(a: Sum, x: f32) -> Sum {
  let y = opaque(x - a.c);
  let t = opaque(a.s + y);
  return Sum(t, opaque(t - a.s) - y);
}`;

function rowMaxProgram(E: number): GpuProgram {
  return {
    key: `sinkhorn-max:${E}`,
    label: `sinkhorn row max ${E}`,
    workgroupSize: WG,
    wgsl: `${FLAT_ID}${HEAD(E)}
@group(0) @binding(0) var<storage, read_write> m: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  var x = scores[i * E];
  for (var j = 1u; j < E; j++) { x = max(x, scores[i * E + j]); }
  // A row of -Infinity scores is shifted by 0.
  m[params.first + i] = select(0.0, x, x >= -3.40282347e38);
}`,
  };
}

function initProgram(E: number): GpuProgram {
  return {
    key: `sinkhorn-init:${E}`,
    label: `sinkhorn init ${E}`,
    workgroupSize: ONE,
    wgsl: `${HEAD(E)}
@group(0) @binding(0) var<storage, read_write> v: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;
@group(0) @binding(2) var<storage, read> log_v: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${ONE})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  for (var j = lid.x; j < E; j += ${ONE}u) { v[j] = exp(log_v[j] / params.tau); }
  if (lid.x == 0u) { state[0] = 0u; state[1] = 0x7f800000u; state[2] = 0u; }
}`,
  };
}

/** Rows: `u[i] = 1 / sum_j exp((s - m_i) / tau) v[j]`, or 0. */
function rowProgram(E: number): GpuProgram {
  return {
    key: `sinkhorn-rows:${E}`,
    label: `sinkhorn rows ${E}`,
    workgroupSize: WG,
    wgsl: `${FLAT_ID}${HEAD(E)}
@group(0) @binding(0) var<storage, read_write> u: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  let mi = m[params.first + i];
  var r = Sum(0.0, 0.0);
  for (var j = 0u; j < E; j++) { r = add(r, exp((scores[i * E + j] - mi) / params.tau) * v[j]); }
  u[params.first + i] = select(0.0, 1.0 / r.s, r.s > 0.0);
}`,
  };
}

/** Columns: per block of 256 rows, `sum_i u[i] exp((s - m_i) / tau)` per expert. */
function blockProgram(E: number): GpuProgram {
  return {
    key: `sinkhorn-blocks:${E}`,
    label: `sinkhorn column blocks ${E}`,
    workgroupSize: WG,
    wgsl: `${HEAD(E)}
@group(0) @binding(0) var<storage, read_write> partial: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read> u: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let local_block = wid.y * nwg.x + wid.x;
  let first = local_block * ${BLOCK}u;
  if (first >= params.rows) { return; }
  let last = min(first + ${BLOCK}u, params.rows);
  let block = params.first / ${BLOCK}u + local_block;
  for (var j = lid.x; j < E; j += ${WG}u) {
    var s = Sum(0.0, 0.0);
    for (var i = first; i < last; i++) {
      let g = params.first + i;
      s = add(s, u[g] * exp((scores[i * E + j] - m[g]) / params.tau));
    }
    partial[block * E + j] = s.s;
  }
}`,
  };
}

/**
 * One workgroup, nothing once stopped: the column sums, the largest
 * relative deviation (NaN counts as +Infinity), and then either the stop
 * (zeroing every indirect workgroup count) or the column normalisation.
 */
function testProgram(E: number): GpuProgram {
  return {
    key: `sinkhorn-test:${E}`,
    label: `sinkhorn stopping test ${E}`,
    workgroupSize: ONE,
    wgsl: `${HEAD(E)}
@group(0) @binding(0) var<storage, read_write> v: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> args: array<u32>;
@group(0) @binding(3) var<storage, read> partial: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
var<workgroup> worst: array<f32, ${ONE}>;

@compute @workgroup_size(${ONE})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  if (state[2] == 1u) { return; }
  let inf = bitcast<f32>(0x7f800000u);
  let goal = params.goal;
  var w = 0.0;
  for (var j = lid.x; j < E; j += ${ONE}u) {
    var c = Sum(0.0, 0.0);
    for (var b = 0u; b < params.blocks; b++) { c = add(c, partial[b * E + j]); }
    let dev = abs(c.s * v[j] - goal) / goal;
    w = max(w, select(inf, dev, dev == dev));
  }
  worst[lid.x] = w;
  let iterations = state[0] + 1u;
  workgroupBarrier();
  for (var half = ${ONE / 2}u; half > 0u; half >>= 1u) {
    if (lid.x < half) { worst[lid.x] = max(worst[lid.x], worst[lid.x + half]); }
    workgroupBarrier();
  }
  let error = worst[0];
  let stop = error <= params.tol || iterations >= params.max_iter;
  if (stop) {
    for (var a = lid.x; a < params.slots * 3u; a += ${ONE}u) { args[a] = 0u; }
  } else {
    for (var j = lid.x; j < E; j += ${ONE}u) {
      var c = Sum(0.0, 0.0);
      for (var b = 0u; b < params.blocks; b++) { c = add(c, partial[b * E + j]); }
      // An expert no token can reach keeps its scale.
      if (c.s > 0.0) { v[j] = goal / c.s; }
    }
  }
  if (lid.x == 0u) {
    state[0] = iterations;
    state[1] = bitcast<u32>(error);
    state[2] = select(0u, 1u, stop);
  }
}`,
  };
}

/** `logV = tau * (log v - mean log v)`. */
function finalProgram(E: number): GpuProgram {
  return {
    key: `sinkhorn-final:${E}`,
    label: `sinkhorn log scale ${E}`,
    workgroupSize: ONE,
    wgsl: `${HEAD(E)}
@group(0) @binding(0) var<storage, read_write> log_v: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
var<workgroup> part: array<f32, ${ONE}>;

@compute @workgroup_size(${ONE})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var j = lid.x; j < E; j += ${ONE}u) { s += log(v[j]); }
  part[lid.x] = s;
  workgroupBarrier();
  for (var half = ${ONE / 2}u; half > 0u; half >>= 1u) {
    if (lid.x < half) { part[lid.x] += part[lid.x + half]; }
    workgroupBarrier();
  }
  let mean = part[0] / f32(E);
  for (var j = lid.x; j < E; j += ${ONE}u) { log_v[j] = params.tau * (log(v[j]) - mean); }
}`,
  };
}

/** Settings of the scaling (the balancer's options, checked). */
export interface SinkhornSettings {
  /** Temperature `tau`. */
  temperature: number;
  /** Relative tolerance on the column sums. */
  tolerance: number;
  /** Iteration cap. */
  maxIterations: number;
}

/** Scratch of the scaling for one batch shape (and its chunks). */
export interface SinkhornScratch {
  /** Row shifts (tokens). */
  m: GPUBuffer;
  /** Row scales (tokens). */
  u: GPUBuffer;
  /** Column scale (experts). */
  v: GPUBuffer;
  /** Column sums per block (blocks x experts). */
  partial: GPUBuffer;
  /** `[iterations, error bits, stopped]`. */
  state: GPUBuffer;
  /** Indirect workgroup counts (rows and blocks per chunk). */
  args: GPUBuffer;
  /** Their values at the start of a batch. */
  nominal: GPUBuffer;
  /** Slots of three counts in `args`. */
  slots: number;
}

function groupsOf(gpu: Gpu, groups: number): [number, number, number] {
  const x = Math.max(1, Math.min(groups, gpu.maxGroups));
  return [x, Math.ceil(Math.max(1, groups) / x), 1];
}

/** Allocates the scratch of a batch of `scores` (its chunks fix the dispatch sizes). */
export function sinkhornScratchOnGpu(
  gpu: Gpu,
  scores: ResidentScores,
): SinkhornScratch {
  const { tokens: N, experts: E, chunks } = scores;
  const blocks = Math.max(1, Math.ceil(N / BLOCK));
  const slots = 2 * chunks.length;
  const counts = new Uint32Array(3 * slots);
  chunks.forEach((c, n) => {
    counts.set(groupsOf(gpu, Math.ceil(c.rows / WG)), 6 * n);
    counts.set(groupsOf(gpu, Math.ceil(c.rows / BLOCK)), 6 * n + 3);
  });
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.INDIRECT |
    GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const args = gpu.pool.acquire(4 * 3 * slots, usage, "sinkhorn indirect");
  const nominal = gpu.pool.acquire(4 * 3 * slots, usage, "sinkhorn nominal");
  gpu.device.queue.writeBuffer(nominal, 0, counts);
  return {
    m: storage(gpu, "sinkhorn row shift", 4 * Math.max(1, N)),
    u: storage(gpu, "sinkhorn row scale", 4 * Math.max(1, N)),
    v: storage(gpu, "sinkhorn column scale", 4 * E),
    partial: storage(gpu, "sinkhorn column blocks", 4 * blocks * E),
    state: storage(gpu, "sinkhorn state", 16),
    args,
    nominal,
    slots,
  };
}

/** Gives a scratch's buffers back to the pool. */
export function releaseSinkhornScratch(gpu: Gpu, s: SinkhornScratch): void {
  gpu.pool.release(s.m, s.u, s.v, s.partial, s.state, s.args, s.nominal);
}

/**
 * Records the scaling of the resident batch `scores` into `encoder`,
 * starting from and writing `logV` (experts, f32). The iterations run
 * until the stopping test, all in one pass.
 */
export function recordSinkhorn(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  settings: SinkhornSettings,
  scores: ResidentScores,
  logV: GPUBuffer,
  s: SinkhornScratch,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { tokens: N, experts: E, chunks } = scores;
  const blocks = Math.max(1, Math.ceil(N / BLOCK));
  const params = (rows: number, first: number) => {
    const buf = new ArrayBuffer(48);
    const w = new Uint32Array(buf), f = new Float32Array(buf);
    w.set([rows, first, blocks, settings.maxIterations]);
    f.set([settings.temperature, settings.tolerance, N / E], 4);
    w[7] = s.slots;
    return uniform(buf);
  };
  const tokensSpan = 4 * Math.max(1, N);
  const whole = params(0, 0);
  const group = (program: GpuProgram, bindings: GPUBuffer[] | object[]) => {
    const pipeline = gpu.pipelines.get(program);
    const bind = gpu.device.createBindGroup({
      label: program.label,
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((b, binding) => ({
        binding,
        resource: b instanceof GPUBuffer
          ? { buffer: b }
          : b as GPUBufferBinding,
      })),
    });
    return { pipeline, bind };
  };
  const perChunk = chunks.map((c) => {
    const p = params(c.rows, c.from);
    const rows = span(c.buffer, 4 * c.rows * E);
    return {
      c,
      max: group(rowMaxProgram(E), [span(s.m, tokensSpan), rows, p]),
      row: group(rowProgram(E), [
        span(s.u, tokensSpan),
        rows,
        span(s.m, tokensSpan),
        span(s.v, 4 * E),
        p,
      ]),
      block: group(blockProgram(E), [
        span(s.partial, 4 * blocks * E),
        rows,
        span(s.m, tokensSpan),
        span(s.u, tokensSpan),
        p,
      ]),
    };
  });
  const init = group(initProgram(E), [
    span(s.v, 4 * E),
    span(s.state, 16),
    span(logV, 4 * E),
    whole,
  ]);
  const test = group(testProgram(E), [
    span(s.v, 4 * E),
    span(s.state, 16),
    span(s.args, 12 * s.slots),
    span(s.partial, 4 * blocks * E),
    whole,
  ]);
  const last = group(finalProgram(E), [
    span(logV, 4 * E),
    span(s.v, 4 * E),
    whole,
  ]);
  encoder.copyBufferToBuffer(s.nominal, 0, s.args, 0, 12 * s.slots);
  const pass = encoder.beginComputePass({
    label: "sinkhorn scaling",
    timestampWrites: timer?.next(),
  });
  const run = (g: { pipeline: GPUComputePipeline; bind: GPUBindGroup }) => {
    pass.setPipeline(g.pipeline);
    pass.setBindGroup(0, g.bind);
  };
  for (const x of perChunk) {
    run(x.max);
    pass.dispatchWorkgroups(...groupsOf(gpu, Math.ceil(x.c.rows / WG)));
  }
  run(init);
  pass.dispatchWorkgroups(1);
  for (let t = 0; t < settings.maxIterations; t++) {
    perChunk.forEach((x, n) => {
      run(x.row);
      pass.dispatchWorkgroupsIndirect(s.args, 24 * n);
    });
    perChunk.forEach((x, n) => {
      run(x.block);
      pass.dispatchWorkgroupsIndirect(s.args, 24 * n + 12);
    });
    run(test);
    pass.dispatchWorkgroups(1);
  }
  run(last);
  pass.dispatchWorkgroups(1);
  pass.end();
}

/** What {@linkcode sinkhornScalingOnGpu} returns, as the CPU's `sinkhornScaling`. */
export interface GpuSinkhornScaling {
  /** `tau * log v`, centred (experts). */
  logColumnScale: Float32Array;
  /** Row normalisations done. */
  iterations: number;
  /** Largest relative deviation of a column sum at the end (NaN as +Infinity). */
  error: number;
  /** Whether `error <= tolerance`. */
  converged: boolean;
}

/**
 * Sinkhorn scaling of `scores` on the GPU from the column scale `logV`
 * (default zeros), by the `sinkhorn` balancer's algorithm.
 */
export async function sinkhornScalingOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  settings: SinkhornSettings,
  logV?: ArrayLike<number>,
  timer?: GpuTimer,
): Promise<GpuSinkhornScaling> {
  const E = scores.experts;
  const resident = uploadScores(gpu, scores);
  const scratch = sinkhornScratchOnGpu(gpu, resident);
  const lv = storage(
    gpu,
    "sinkhorn log scale",
    4 * E,
    logV ? Float32Array.from(logV) : new Float32Array(E),
  );
  const params = uniformSet(gpu, "sinkhorn params");
  const enc = gpu.device.createCommandEncoder({ label: "sinkhorn" });
  recordSinkhorn(gpu, enc, settings, resident, lv, scratch, params.make, timer);
  gpu.device.queue.submit([enc.finish()]);
  const [a, st] = await Promise.all([
    readBack(gpu, lv, 4 * E),
    readBack(gpu, scratch.state, 16),
  ]);
  gpu.pool.release(lv, ...params.buffers);
  releaseSinkhornScratch(gpu, scratch);
  releaseScores(gpu, resident);
  const state = new Uint32Array(st);
  const error = new Float32Array(st)[1];
  return {
    logColumnScale: new Float32Array(a),
    iterations: state[0],
    error,
    converged: error <= settings.tolerance,
  };
}

/** The registered kernel: scales from `args.logScale` and writes the result there. */
async function sinkhornWebGpu(
  args: SinkhornArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<SinkhornResult> {
  const r = await sinkhornScalingOnGpu(
    gpuOf(env),
    args.scores,
    args,
    args.logScale,
    env.timer as GpuTimer | undefined,
  );
  args.logScale.set(r.logColumnScale);
  return { iterations: r.iterations, error: r.error };
}

/** The registered sinkhorn/webgpu kernel. */
export const sinkhornKernel = registerKernel({
  op: sinkhornOp,
  backend: "webgpu",
  run: sinkhornWebGpu,
  refuses: (a) => a.scores.tokens === 0 ? "an empty batch" : undefined,
  callers: [
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (sinkhorn)',
  ],
});
