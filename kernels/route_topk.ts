// Biased top-K routing on the GPU: one thread per token keeps its top k in
// registers (insertion, with the k-th largest as a threshold), gate weights
// from the unbiased scores, loads counted in workgroup memory and added to
// the global counts once per workgroup. The "webgpu" kernel of the route
// op (lib/ops/route.ts), compared with its CPU kernel by
// tests/kernels_conformance_test.ts.
import type { Routing, ScoreMatrix } from "../lib/types.ts";
import { badScore } from "../lib/_validate.ts";
import { createRouting } from "../lib/select/routing.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import { type RouteArgs, routeOp } from "../lib/ops/route.ts";
import { type Gpu, gpuOf } from "./device.ts";
import {
  dispatch,
  FLAT_ID,
  type GpuProgram,
  type GpuTimer,
  readBack,
  storage,
  uniforms,
  writeFloats,
} from "./program.ts";

/** Largest `k` and expert count the kernel accepts (registers, workgroup memory). */
export const GPU_MAX_K = 32, GPU_MAX_EXPERTS = 4096;
const WG = 64;

/** Settings of {@linkcode routeOnGpu}. */
export interface GpuRouteSettings {
  /** Per-expert bias, on the host or already on the GPU (float32). */
  bias?: ArrayLike<number> | GPUBuffer;
  multiply?: boolean;
  normalize?: boolean;
  scale?: number;
  /** Times the routing passes. */
  timer?: GpuTimer;
  /** Write the answer here (of the batch's shape). Default: a new Routing. */
  out?: Routing;
}

/**
 * Why the kernel does not take these settings, or `undefined` when it
 * does: `k` and the expert count are bounded by registers and workgroup
 * memory.
 */
export function gpuRouteRefuses(
  experts: number,
  k: number,
  groups = 1,
  topGroups = groups,
): string | undefined {
  if (k > GPU_MAX_K) return `k = ${k} exceeds the GPU kernel's ${GPU_MAX_K}`;
  if (experts > GPU_MAX_EXPERTS) {
    return `${experts} experts exceed the GPU kernel's ${GPU_MAX_EXPERTS}`;
  }
  if (groups > 1 && topGroups < groups) {
    return "group-limited routing runs on the CPU";
  }
  return undefined;
}

/** The routing program for `experts`, `k` and the bias mode. */
export function routeProgram(
  experts: number,
  k: number,
  mode: 0 | 1 | 2,
  normalize: boolean,
): GpuProgram {
  const key = (j: string) =>
    mode === 0
      ? `scores[base + ${j}]`
      : `scores[base + ${j}] ${mode === 1 ? "+" : "*"} bias[${j}]`;
  const wgsl = `${FLAT_ID}
const E: u32 = ${experts}u;
const K: u32 = ${k}u;
struct Params { tokens: u32, scale: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read_write> out_experts: array<i32>;
@group(0) @binding(1) var<storage, read_write> out_weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> loads: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> scores: array<f32>;
${mode ? "@group(0) @binding(4) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${mode ? 5 : 4}) var<uniform> params: Params;
var<workgroup> local_loads: array<atomic<u32>, E>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  for (var j = lid.x; j < E; j += ${WG}u) { atomicStore(&local_loads[j], 0u); }
  workgroupBarrier();
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i < params.tokens) {
    var tv: array<f32, K>;
    var ti: array<u32, K>;
    let base = i * E;
    // The first k fill the list whatever their value; later ones enter
    // only when strictly larger than the k-th (ties keep the lower index).
    for (var j = 0u; j < K; j++) {
      let v = ${key("j")};
      var p = j;
      // Nested tests: lavapipe mis-runs '||' here (the read of tv[p - 1] at p = 0).
    loop { if (p == 0u) { break; } if (!(v > tv[p - 1u])) { break; } tv[p] = tv[p - 1u]; ti[p] = ti[p - 1u]; p--; }
      tv[p] = v; ti[p] = j;
    }
    var th = tv[K - 1u];
    for (var j = K; j < E; j++) {
      let v = ${key("j")};
      if (v > th) {
        var p = K - 1u;
        // Nested tests: lavapipe mis-runs '||' here (the read of tv[p - 1] at p = 0).
    loop { if (p == 0u) { break; } if (!(v > tv[p - 1u])) { break; } tv[p] = tv[p - 1u]; ti[p] = ti[p - 1u]; p--; }
        tv[p] = v; ti[p] = j;
        th = tv[K - 1u];
      }
    }
    var sum = 0.0;
    for (var r = 0u; r < K; r++) {
      let s = scores[base + ti[r]];
      // -Infinity (a masked expert) weighs 0; no infinity literal in WGSL.
      let w = select(0.0, s, s >= -3.40282347e38);
      tv[r] = w;
      sum += w;
      atomicAdd(&local_loads[ti[r]], 1u);
    }
    var f = params.scale;
    ${normalize ? "if (sum > 0.0) { f = params.scale / sum; }" : ""}
    for (var r = 0u; r < K; r++) {
      out_experts[i * K + r] = i32(ti[r]);
      out_weights[i * K + r] = tv[r] * f;
    }
  }
  workgroupBarrier();
  for (var j = lid.x; j < E; j += ${WG}u) {
    let c = atomicLoad(&local_loads[j]);
    if (c > 0u) { atomicAdd(&loads[j], c); }
  }
}`;
  return {
    key: `route:${experts}:${k}:${mode}:${normalize}`,
    label: `route top-${k} of ${experts}`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * Routes a batch on the GPU: top-`k` of float32 keys `s + b` (or `s * b`)
 * per token, ties to the lowest expert index, weights from the unbiased
 * scores (normalised over the selection when asked, times `scale`), loads
 * counted. Scores larger than one storage binding go in chunks of rows.
 * The scores are not checked for NaN here (the registered kernel does it).
 *
 * @throws {RangeError} If `k > 32` or `experts > 4096` (the CPU path takes those).
 */
export async function routeOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  k: number,
  settings: GpuRouteSettings = {},
): Promise<Routing> {
  const { data, tokens: N, experts: E } = scores;
  if (k > GPU_MAX_K || E > GPU_MAX_EXPERTS) {
    throw new RangeError(
      `GPU routing takes k <= ${GPU_MAX_K} and experts <= ${GPU_MAX_EXPERTS}: current values are ${k} and ${E}`,
    );
  }
  const out = settings.out ?? createRouting(N, k, E);
  if (N === 0) {
    out.loads.fill(0);
    return out;
  }
  const { device, pool } = gpu;
  const mode = settings.bias === undefined ? 0 : settings.multiply ? 2 : 1;
  const program = routeProgram(E, k, mode, settings.normalize ?? false);
  // Rows per chunk: a multiple of 64 so output offsets stay 256-aligned.
  const fit = Math.floor(gpu.maxBinding / (4 * E) / 64) * 64;
  const rows = Math.min(N, fit);
  const chunkScores = storage(gpu, "route scores", 4 * rows * E);
  const outE = storage(gpu, "route experts", 4 * N * k);
  const outW = storage(gpu, "route weights", 4 * N * k);
  const loads = storage(gpu, "route loads", 4 * E);
  let bias: GPUBuffer | undefined;
  let ownBias = false;
  if (settings.bias !== undefined) {
    if (settings.bias instanceof GPUBuffer) bias = settings.bias;
    else {
      bias = storage(
        gpu,
        "route bias",
        4 * E,
        Float32Array.from(settings.bias),
      );
      ownBias = true;
    }
  }
  const clear = device.createCommandEncoder({ label: "route clear" });
  clear.clearBuffer(loads, 0, 4 * E);
  device.queue.submit([clear.finish()]);
  const params: GPUBuffer[] = [];
  for (let from = 0; from < N; from += rows) {
    const n = Math.min(rows, N - from);
    writeFloats(gpu, chunkScores, data, from * E, n * E);
    const words = new ArrayBuffer(16);
    new Uint32Array(words)[0] = n;
    new Float32Array(words)[1] = settings.scale ?? 1;
    const p = uniforms(gpu, "route params", words);
    params.push(p);
    const enc = device.createCommandEncoder({ label: "route" });
    const bind = [
      { buffer: outE, offset: 4 * from * k, size: 4 * n * k },
      { buffer: outW, offset: 4 * from * k, size: 4 * n * k },
      loads,
      { buffer: chunkScores, offset: 0, size: 4 * n * E },
      ...(bias ? [{ buffer: bias, offset: 0, size: 4 * E }] : []),
      p,
    ];
    dispatch(gpu, enc, program, bind, n, settings.timer);
    device.queue.submit([enc.finish()]);
  }
  const [e, w, l] = await Promise.all([
    readBack(gpu, outE, 4 * N * k),
    readBack(gpu, outW, 4 * N * k),
    readBack(gpu, loads, 4 * E),
  ]);
  out.experts.set(new Int32Array(e));
  out.weights.set(new Float32Array(w));
  out.loads.set(new Int32Array(l));
  pool.release(chunkScores, outE, outW, loads, ...params);
  if (ownBias) pool.release(bias!);
  return out;
}

/**
 * The registered kernel: the route op's checked arguments (typed arrays on
 * the host), scanned for NaN and `+Infinity` as the CPU kernel does, then
 * uploaded, routed and read back into `args.out`.
 */
async function routeWebGpu(
  args: RouteArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<Routing> {
  const { scores } = args;
  const d = scores.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v !== v || v === Infinity) throw badScore("scores", scores, i);
  }
  return await routeOnGpu(gpuOf(env), scores, args.k, {
    bias: args.bias,
    multiply: args.multiply,
    normalize: args.normalize,
    scale: args.scale,
    timer: env.timer as GpuTimer | undefined,
    out: args.out,
  });
}

registerKernel({
  op: routeOp,
  backend: "webgpu",
  run: routeWebGpu,
  refuses: (a) => gpuRouteRefuses(a.scores.experts, a.k, a.groups, a.topGroups),
  callers: ['routeAsync() with backend "webgpu" or "auto"'],
});
