// Biased top-K routing on the GPU: one thread per token keeps its top k in
// registers (insertion, with the k-th largest as a threshold), gate weights
// from the unbiased scores, loads counted in workgroup memory and added to
// the global counts once per workgroup. Keys are exact pairs compared as
// the CPU compares its float64 keys (_exact_key.ts), so the selection is
// the CPU kernel's for the same bias values; group-limited routing
// (DeepSeek-V3) scores groups in the same kernel. The "webgpu" kernel of
// the route op (lib/ops/route.ts), compared with its CPU kernel by
// tests/kernels_conformance_test.ts.
import type { Routing, ScoreMatrix } from "../lib/types.ts";
import { badScore } from "../lib/validate.ts";
import { createRouting } from "../lib/select/routing.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type GroupScore,
  groupTopCount,
  type RouteArgs,
  routeOp,
} from "../lib/ops/route.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { readRouting } from "./routing_readback.ts";
import {
  dispatch,
  FLAT_ID,
  type GpuProgram,
  type GpuTimer,
  readBack,
  span,
  storage,
  uniformSet,
} from "./program.ts";
import { KEY_WGSL, keyParts } from "./_exact_key.ts";
import {
  releaseScores,
  type ResidentScores,
  type UniformMaker,
  uploadScores,
  words4,
} from "./resident_scores.ts";

/** Largest `k`, expert count and group count the kernel accepts (registers, workgroup memory). */
export const GPU_MAX_K = 32, GPU_MAX_EXPERTS = 4096, GPU_MAX_GROUPS = 64;
const WG = 64;

/** Settings of {@linkcode routeOnGpu}. */
export interface GpuRouteSettings {
  /** Per-expert bias, on the host or already on the GPU (float32). */
  bias?: ArrayLike<number> | GPUBuffer;
  multiply?: boolean;
  normalize?: boolean;
  scale?: number;
  /** Group-limited routing: groups (default 1, off). */
  groups?: number;
  /** Groups kept (default: all). */
  topGroups?: number;
  /** How a group is scored (default `"megatron"`). */
  groupScore?: GroupScore;
  /** Times the routing passes. */
  timer?: GpuTimer;
  /** Write the answer here (of the batch's shape). Default: a new Routing. */
  out?: Routing;
}

/**
 * Why the kernel does not take these settings, or `undefined` when it
 * does: `k`, the expert count and the group count are bounded by
 * registers and workgroup memory.
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
  if (groups > GPU_MAX_GROUPS && topGroups < groups) {
    return `${groups} groups exceed the GPU kernel's ${GPU_MAX_GROUPS}`;
  }
  return undefined;
}

/** How a bias enters the key: `s`, `s + b`, `s * b` or `s - b`. */
export type BiasMode = "none" | "add" | "multiply" | "subtract";

const MODE = { none: 0, add: 1, multiply: 2, subtract: 3 } as const;

/** The shape of a routing program (its structural key). */
export interface RouteSpec {
  experts: number;
  k: number;
  bias: BiasMode;
  normalize: boolean;
  /** Groups (1: off). */
  groups: number;
  /** Groups kept. */
  topGroups: number;
  /** How a group is scored (default `"megatron"`). */
  groupScore?: GroupScore;
}

/**
 * The routing program: one thread per token keeps its top `k` keys (exact
 * pairs, _exact_key.ts) by insertion, so ties keep the lower index; with
 * groups it first scores each group by the float64 sum of its top
 * `groupTopCount` keys (`max(1, floor(k / topGroups))` by default; 2 for
 * `"v3"`, 1 for `"v2"`) and masks all but the `topGroups` best (ties to
 * the lower group), as the CPU kernel does.
 */
export function routeProgram(spec: RouteSpec): GpuProgram {
  const { experts: E, k: K, normalize } = spec;
  const mode = MODE[spec.bias];
  const grouped = spec.groups > 1 && spec.topGroups < spec.groups;
  const G = grouped ? spec.groups : 1;
  const GS = E / G;
  const P = groupTopCount(K, spec.topGroups, GS, spec.groupScore);
  const key = keyParts(mode, "s", "bias[j]");
  const hasBias = mode !== 0;
  const b = (n: number) => `@group(0) @binding(${n})`;
  // A key enters a descending list of length n at p or above; equal keys
  // stay behind. Nested tests: lavapipe mis-runs '||' here (the read of
  // tv[p - 1] at p = 0).
  const insert = (list: string, idx: string | null, v: string, j: string) =>
    `loop { if (p == 0u) { break; } if (!key_gt(${v}, ${list}[p - 1u])) { break; } ${list}[p] = ${list}[p - 1u]; ${
      idx ? `${idx}[p] = ${idx}[p - 1u]; ` : ""
    }p--; }
      ${list}[p] = ${v};${idx ? ` ${idx}[p] = ${j};` : ""}`;
  const groupPass = !grouped ? "" : `
    // Group scores: the float64 sum of each group's top P keys.
    var score: array<Key, G>;
    for (var g = 0u; g < G; g++) {
      var pv: array<Key, P>;
      var n = 0u;
      for (var j = g * GS; j < (g + 1u) * GS; j++) {
        let s = scores[base + j];
        let hi = ${key.hi};
        if (n == P && !(hi >= pv[P - 1u].hi)) { continue; }
        let v = Key(hi, ${key.lo("hi")});
        if (n == P) { if (!key_gt(v, pv[P - 1u])) { continue; } n--; }
        var p = n;
        ${insert("pv", null, "v", "j")}
        n++;
      }
      var sum = Key(0.0, 0.0);
      for (var r = 0u; r < P; r++) { sum = key_add(sum, pv[r]); }
      if (sum.hi != sum.hi) { sum = Key(NEG_INF, 0.0); }
      score[g] = sum;
    }
    // The M best groups stay, ties to the lower group.
    var kept: array<bool, G>;
    for (var t = 0u; t < M; t++) {
      var best = 0u;
      var found = false;
      for (var g = 0u; g < G; g++) {
        if (kept[g]) { continue; }
        if (!found || key_gt(score[g], score[best])) { best = g; found = true; }
      }
      kept[best] = true;
    }`;
  const hiOf = grouped ? `select(NEG_INF, ${key.hi}, kept[j / GS])` : key.hi;
  const wgsl = `${FLAT_ID}
struct Params { rows: u32, first: u32, scale: f32, zero: u32 }
${b(0)} var<storage, read_write> out_experts: array<i32>;
${b(1)} var<storage, read_write> out_weights: array<f32>;
${b(2)} var<storage, read_write> loads: array<atomic<u32>>;
// [0]: 0xffffffff less the lowest flat index of a NaN or +Infinity score; 0 when none.
${b(3)} var<storage, read_write> bad: array<atomic<u32>>;
${b(4)} var<storage, read> scores: array<f32>;
${hasBias ? `${b(5)} var<storage, read> bias: array<f32>;` : ""}
${b(hasBias ? 6 : 5)} var<uniform> params: Params;
${KEY_WGSL}
const E: u32 = ${E}u;
const K: u32 = ${K}u;
const G: u32 = ${G}u;
const GS: u32 = ${GS}u;
const P: u32 = ${P}u;
const M: u32 = ${grouped ? spec.topGroups : 1}u;
var<workgroup> local_loads: array<atomic<u32>, E>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  for (var j = lid.x; j < E; j += ${WG}u) { atomicStore(&local_loads[j], 0u); }
  workgroupBarrier();
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i < params.rows) {
    let base = i * E;
    let NEG_INF = bitcast<f32>(0xff800000u);
    ${groupPass}
    var tv: array<Key, K>;
    var ti: array<u32, K>;
    // The first k fill the list whatever their value; later ones enter
    // only when strictly larger than the k-th (ties keep the lower index).
    for (var j = 0u; j < K; j++) {
      let s = scores[base + j];
      let hi = ${hiOf};
      let v = Key(hi, select(0.0, ${key.lo("hi")}, hi != NEG_INF));
      var p = j;
      ${insert("tv", "ti", "v", "j")}
    }
    for (var j = K; j < E; j++) {
      let s = scores[base + j];
      if (!(s <= F32_MAX)) { atomicMax(&bad[0], 0xffffffffu - ((params.first + i) * E + j)); }
      let hi = ${hiOf};
      // Most keys fail on hi alone; lo is computed for the others.
      if (hi >= tv[K - 1u].hi) {
        let v = Key(hi, select(0.0, ${key.lo("hi")}, hi != NEG_INF));
        if (key_gt(v, tv[K - 1u])) {
          var p = K - 1u;
          ${insert("tv", "ti", "v", "j")}
        }
      }
    }
    var sum = 0.0;
    var w: array<f32, K>;
    for (var r = 0u; r < K; r++) {
      let s = scores[base + ti[r]];
      if (!(s <= F32_MAX)) { atomicMax(&bad[0], 0xffffffffu - ((params.first + i) * E + ti[r])); }
      // -Infinity (a masked expert) weighs 0.
      w[r] = select(0.0, s, s >= -F32_MAX);
      sum += w[r];
      atomicAdd(&local_loads[ti[r]], 1u);
    }
    var f = params.scale;
    ${normalize ? "if (sum > 0.0) { f = params.scale / sum; }" : ""}
    for (var r = 0u; r < K; r++) {
      out_experts[i * K + r] = i32(ti[r]);
      out_weights[i * K + r] = w[r] * f;
    }
  }
  workgroupBarrier();
  for (var j = lid.x; j < E; j += ${WG}u) {
    let c = atomicLoad(&local_loads[j]);
    if (c > 0u) { atomicAdd(&loads[j], c); }
  }
}`;
  return {
    key: `route:${E}:${K}:${mode}:${normalize}:${G}:${spec.topGroups}:${P}`,
    label: `route top-${K} of ${E}${
      grouped ? ` in ${spec.topGroups}/${G} groups` : ""
    }`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Buffers of one routing pass over resident scores. */
export interface RouteBuffers {
  /** The batch's scores. */
  scores: ResidentScores;
  /** Bias (experts, float32) unless the mode is `"none"`. */
  bias?: GPUBuffer;
  /** Out: experts (tokens x k, i32). */
  experts: GPUBuffer;
  /** Out: weights (tokens x k, f32). */
  weights: GPUBuffer;
  /** Out: loads (experts, u32); cleared here. */
  loads: GPUBuffer;
  /** Out: one u32, 0xffffffff less the first flat index of a NaN or +Infinity score (0: none); not cleared here. */
  bad: GPUBuffer;
}

/**
 * Records a routing pass of `spec` over every chunk of `buffers.scores`
 * into `encoder` (loads cleared first). `scale` multiplies the weights.
 */
export function recordRoute(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  spec: RouteSpec,
  buffers: RouteBuffers,
  scale: number,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { experts: E, k } = spec;
  const program = routeProgram(spec);
  encoder.clearBuffer(buffers.loads, 0, 4 * E);
  for (const c of buffers.scores.chunks) {
    dispatch(
      gpu,
      encoder,
      program,
      [
        {
          buffer: buffers.experts,
          offset: 4 * c.from * k,
          size: 4 * c.rows * k,
        },
        {
          buffer: buffers.weights,
          offset: 4 * c.from * k,
          size: 4 * c.rows * k,
        },
        span(buffers.loads, 4 * E),
        span(buffers.bad, 4),
        span(c.buffer, 4 * c.rows * E),
        ...(spec.bias === "none" ? [] : [span(buffers.bias!, 4 * E)]),
        uniform(words4(c.rows, c.from, { f32: scale }, 0)),
      ],
      c.rows,
      timer,
    );
  }
}

/**
 * Routes a batch on the GPU: top-`k` of `s + b` (or `s * b`) per token,
 * compared as the CPU kernel compares its float64 keys (exact pairs), so
 * the selection is the CPU's for the same bias values; ties to the lowest
 * expert index; group-limited when `groups > 1` and `topGroups < groups`.
 * Weights from the unbiased scores (normalised over the selection when
 * asked, times `scale`), within float32 rounding of the CPU's; loads
 * counted. Scores larger than one storage binding go in chunks of rows.
 *
 * @throws {RangeError} If `k > 32`, `experts > 4096` or more than 64
 * groups (the CPU path takes those), or if a score is NaN or `+Infinity`.
 */
export async function routeOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  k: number,
  settings: GpuRouteSettings = {},
): Promise<Routing> {
  const { tokens: N, experts: E } = scores;
  const groups = settings.groups ?? 1;
  const topGroups = settings.topGroups ?? groups;
  const refused = gpuRouteRefuses(E, k, groups, topGroups);
  if (refused) throw new RangeError(`GPU routing: ${refused}`);
  const out = settings.out ?? createRouting(N, k, E);
  if (N === 0) {
    out.loads.fill(0);
    return out;
  }
  const { device, pool } = gpu;
  const resident = uploadScores(gpu, scores);
  const outE = storage(gpu, "route experts", 4 * N * k);
  const outW = storage(gpu, "route weights", 4 * N * k);
  const loads = storage(gpu, "route loads", 4 * E);
  const bad = storage(gpu, "route bad score", 4);
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
  const params = uniformSet(gpu, "route params");
  const enc = device.createCommandEncoder({ label: "route" });
  enc.clearBuffer(bad, 0, 4);
  recordRoute(
    gpu,
    enc,
    {
      experts: E,
      k,
      bias: bias === undefined
        ? "none"
        : settings.multiply
        ? "multiply"
        : "add",
      normalize: settings.normalize ?? false,
      groups,
      topGroups,
      groupScore: settings.groupScore,
    },
    { scores: resident, bias, experts: outE, weights: outW, loads, bad },
    settings.scale ?? 1,
    params.make,
    settings.timer,
  );
  device.queue.submit([enc.finish()]);
  const [x] = await Promise.all([
    readBack(gpu, bad, 4),
    readRouting(gpu, { experts: outE, weights: outW, loads }, out),
  ]);
  pool.release(outE, outW, loads, bad, ...params.buffers);
  releaseScores(gpu, resident);
  if (ownBias) pool.release(bias!);
  const first = new Uint32Array(x)[0];
  if (first !== 0) throw badScore("scores", scores, 0xffffffff - first);
  return out;
}

/**
 * The registered kernel: the route op's checked arguments (typed arrays on
 * the host) uploaded, routed and read back into `args.out`; a NaN or
 * `+Infinity` score is reported by the kernel, as on the CPU.
 */
async function routeWebGpu(
  args: RouteArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<Routing> {
  return await routeOnGpu(gpuOf(env), args.scores, args.k, {
    bias: args.bias,
    multiply: args.multiply,
    normalize: args.normalize,
    scale: args.scale,
    groups: args.groups,
    topGroups: args.topGroups,
    groupScore: args.groupScore,
    timer: env.timer as GpuTimer | undefined,
    out: args.out,
  });
}

/** The registered route/webgpu kernel (device balancers note their resident calls). */
export const routeTopKKernel = registerKernel({
  op: routeOp,
  backend: "webgpu",
  run: routeWebGpu,
  refuses: (a) => gpuRouteRefuses(a.scores.experts, a.k, a.groups, a.topGroups),
  callers: [
    'routeAsync() with backend "webgpu" or "auto"',
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (every method that routes by top-K)',
    'trainTransformer() with backend "webgpu" (top-K, loss-free, bip)',
  ],
});
