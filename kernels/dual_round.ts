// Rounds of exact coordinate minimisation of the balanced-assignment dual
// on the GPU (docs/algorithms.md section 5), for BIP-Based Balancing (T
// rounds, clipped at 0) and Quantile Balancing (one round, unclipped, then
// centred). One round from expert prices q:
//
//   p[i] = (K+1)-th largest of s[i][j] - q[j] over j   (one thread per token)
//   q[j] = (C+1)-th largest of s[i][j] - p[i] over i   (radix select, _column_select.ts)
//
// Float32 throughout: each p is the float32 rounding of the CPU's (an order
// statistic commutes with rounding), each q within a rounding of it.
// Same rules as lib/ops's CPU kernel (_dual.ts): p = 0 when k >= experts,
// q = 0 when capacity >= tokens, clips by flag, and Quantile keeps an
// expert's previous price when its new one is not finite.
import type { ScoreMatrix } from "../lib/types.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type BipRoundArgs,
  bipRoundOp,
  type BipRoundResult,
} from "../lib/ops/bip_round.ts";
import {
  type QuantileStepArgs,
  quantileStepOp,
} from "../lib/ops/quantile_step.ts";
import { type Gpu, gpuOf } from "./device.ts";
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
import {
  releaseScores,
  type ResidentScores,
  type UniformMaker,
  uploadScores,
  words4,
} from "./resident_scores.ts";
import {
  histogramBytes,
  ORDER_KEYS,
  recordColumnSelect,
  recordRankInit,
} from "./_column_select.ts";

const WG = 64, CENTER_WG = 256;
const PARAMS = "struct Params { rows: u32, first: u32, flag: u32, pad: u32 }";

/** Token prices: `p[i] = (K+1)-th largest of s[i][j] - q[j]`, clipped at 0 when asked. */
function tokenPriceProgram(E: number, k: number, clip: boolean): GpuProgram {
  const wgsl = `${FLAT_ID}
const E: u32 = ${E}u;
const R: u32 = ${k + 1}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  var tv: array<f32, R>;
  for (var j = 0u; j < R; j++) {
    let v = scores[i * E + j] - q[j];
    var t = j;
    // Nested tests: lavapipe mis-runs '||' here (the read of tv[t - 1] at t = 0).
    loop { if (t == 0u) { break; } if (!(v > tv[t - 1u])) { break; } tv[t] = tv[t - 1u]; t--; }
    tv[t] = v;
  }
  for (var j = R; j < E; j++) {
    let v = scores[i * E + j] - q[j];
    if (v > tv[R - 1u]) {
      var t = R - 1u;
      loop { if (t == 0u) { break; } if (!(v > tv[t - 1u])) { break; } tv[t] = tv[t - 1u]; t--; }
      tv[t] = v;
    }
  }
  let v = tv[R - 1u];
  p[params.first + i] = ${clip ? "select(0.0, v, v > 0.0)" : "v"};
}`;
  return {
    key: `dual-p:${E}:${k}:${clip}`,
    label: `dual token prices ${E}/${k}`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * Expert prices from the selected keys: clipped at 0, or (unclipped)
 * the previous price where the new one is not finite; 0 when
 * `params.flag` is 1 (capacity at least the tokens: no expert binds).
 */
function expertPriceProgram(E: number, clip: boolean): GpuProgram {
  const wgsl = `${ORDER_KEYS}
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read> prefix: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= E) { return; }
  let v = from_key(prefix[j]);
  ${
    clip
      ? "var next = select(0.0, v, v > 0.0);"
      : "var next = select(q[j], v, abs(v) <= 3.40282347e38);"
  }
  if (params.flag == 1u) { next = 0.0; }
  q[j] = next;
}`;
  return {
    key: `dual-q:${E}:${clip}`,
    label: `dual expert prices ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** `q -= mean(q)` in one workgroup (a tree sum of strided partial sums). */
function centerProgram(E: number): GpuProgram {
  const wgsl = `
const E: u32 = ${E}u;
@group(0) @binding(0) var<storage, read_write> q: array<f32>;
var<workgroup> part: array<f32, ${CENTER_WG}>;

@compute @workgroup_size(${CENTER_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var j = lid.x; j < E; j += ${CENTER_WG}u) { s += q[j]; }
  part[lid.x] = s;
  workgroupBarrier();
  for (var half = ${CENTER_WG / 2}u; half > 0u; half >>= 1u) {
    if (lid.x < half) { part[lid.x] += part[lid.x + half]; }
    workgroupBarrier();
  }
  let mean = part[0] / f32(E);
  workgroupBarrier();
  for (var j = lid.x; j < E; j += ${CENTER_WG}u) { q[j] = q[j] - mean; }
}`;
  return {
    key: `dual-center:${E}`,
    label: `dual centre ${E}`,
    wgsl,
    workgroupSize: CENTER_WG,
  };
}

/** What one or more dual rounds run with. */
export interface DualSettings {
  /** Experts per token. */
  k: number;
  /** Expert capacity `C`. */
  capacity: number;
  /** Clip token prices at 0. */
  clipP: boolean;
  /** Clip expert prices at 0 (else keep the previous one where not finite). */
  clipQ: boolean;
}

/** Buffers of the dual rounds; `q` is read and written, `hist` zero. */
export interface DualBuffers {
  scores: ResidentScores;
  /** Expert prices (experts, f32), in and out. */
  q: GPUBuffer;
  /** Token prices (tokens, f32), out. */
  p: GPUBuffer;
  /** Scratch of the column select (experts u32 each; hist 256 x experts). */
  rank: GPUBuffer;
  prefix: GPUBuffer;
  eq: GPUBuffer;
  hist: GPUBuffer;
}

/** Allocates the scratch of {@linkcode DualBuffers} for a batch shape (hist zeroed). */
export function dualScratchOnGpu(
  gpu: Gpu,
  tokens: number,
  experts: number,
): Omit<DualBuffers, "scores" | "q"> {
  const hist = storage(gpu, "dual histogram", histogramBytes(experts));
  const enc = gpu.device.createCommandEncoder({ label: "dual scratch" });
  enc.clearBuffer(hist, 0, histogramBytes(experts));
  gpu.device.queue.submit([enc.finish()]);
  return {
    p: storage(gpu, "dual token prices", 4 * Math.max(1, tokens)),
    rank: storage(gpu, "dual rank", 4 * experts),
    prefix: storage(gpu, "dual prefix", 4 * experts),
    eq: storage(gpu, "dual equal", 4 * experts),
    hist,
  };
}

/** Records `rounds` dual rounds into `encoder`. */
export function recordDualRounds(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  s: DualSettings,
  b: DualBuffers,
  rounds: number,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { tokens: N, experts: E, chunks } = b.scores;
  const noExpertBinds = s.capacity >= N;
  for (let t = 0; t < rounds; t++) {
    if (s.k >= E) encoder.clearBuffer(b.p, 0, 4 * Math.max(1, N));
    else {
      const program = tokenPriceProgram(E, s.k, s.clipP);
      for (const c of chunks) {
        dispatch(
          gpu,
          encoder,
          program,
          [
            span(b.p, 4 * Math.max(1, N)),
            span(c.buffer, 4 * c.rows * E),
            span(b.q, 4 * E),
            uniform(words4(c.rows, c.from, 0, 0)),
          ],
          c.rows,
          timer,
        );
      }
    }
    if (!noExpertBinds) {
      recordRankInit(gpu, encoder, E, s.capacity + 1, b.rank, uniform);
      recordColumnSelect(gpu, encoder, { kind: "shifted" }, b, uniform, timer);
    }
    dispatch(
      gpu,
      encoder,
      expertPriceProgram(E, s.clipQ),
      [
        span(b.q, 4 * E),
        span(b.prefix, 4 * E),
        uniform(words4(0, 0, noExpertBinds ? 1 : 0, 0)),
      ],
      E,
      timer,
    );
  }
}

/** Records `q -= mean(q)` (Quantile Balancing's centring). */
export function recordCenter(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  experts: number,
  q: GPUBuffer,
  timer?: GpuTimer,
): void {
  dispatch(
    gpu,
    encoder,
    centerProgram(experts),
    [span(q, 4 * experts)],
    CENTER_WG,
    timer,
  );
}

/**
 * Records Quantile Balancing's update of `q` (= minus the bias) from a
 * batch: one unclipped dual round at capacity `ceil(N * K / E)`, prices
 * that are not finite kept, then centred. Nothing when `k >= experts` or
 * the capacity reaches the tokens, as on the CPU.
 */
export function recordQuantileStep(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  k: number,
  b: DualBuffers,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { tokens: N, experts: E } = b.scores;
  const C = Math.ceil((N * k) / E);
  if (k >= E || C >= N) return;
  const s = { k, capacity: C, clipP: false, clipQ: false };
  recordDualRounds(gpu, encoder, s, b, 1, uniform, timer);
  recordCenter(gpu, encoder, E, b.q, timer);
}

/**
 * `rounds` dual rounds on the GPU from expert prices `q` (float32): the
 * expert and token prices after them, as lib/ops's CPU kernel computes
 * them, within float32 rounding.
 */
export async function dualRoundsOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  q: ArrayLike<number>,
  settings: DualSettings & { rounds: number; center?: boolean },
  timer?: GpuTimer,
): Promise<{ q: Float32Array; p: Float32Array }> {
  const { tokens: N, experts: E } = scores;
  const resident = uploadScores(gpu, scores);
  const qBuf = storage(gpu, "dual q", 4 * E, Float32Array.from(q));
  const scratch = dualScratchOnGpu(gpu, N, E);
  const b: DualBuffers = { scores: resident, q: qBuf, ...scratch };
  const params = uniformSet(gpu, "dual params");
  const enc = gpu.device.createCommandEncoder({ label: "dual rounds" });
  enc.clearBuffer(scratch.p, 0, 4 * Math.max(1, N));
  recordDualRounds(gpu, enc, settings, b, settings.rounds, params.make, timer);
  if (settings.center) recordCenter(gpu, enc, E, qBuf, timer);
  gpu.device.queue.submit([enc.finish()]);
  const [qOut, pOut] = await Promise.all([
    readBack(gpu, qBuf, 4 * E),
    readBack(gpu, scratch.p, 4 * N),
  ]);
  gpu.pool.release(qBuf, ...Object.values(scratch), ...params.buffers);
  releaseScores(gpu, resident);
  return { q: new Float32Array(qOut), p: new Float32Array(pOut) };
}

/**
 * Quantile Balancing's update on the GPU: the new prices `q` (minus the
 * bias) from the prices that routed `scores`. Same rule as the `quantile`
 * balancer's update, in float32.
 */
export async function quantileStepOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  q: ArrayLike<number>,
  k: number,
  timer?: GpuTimer,
): Promise<Float32Array> {
  const { tokens: N, experts: E } = scores;
  const C = Math.ceil((N * k) / E);
  if (k >= E || C >= N) return Float32Array.from(q);
  const r = await dualRoundsOnGpu(gpu, scores, q, {
    k,
    capacity: C,
    clipP: false,
    clipQ: false,
    rounds: 1,
    center: true,
  }, timer);
  return r.q;
}

/** Largest `k` (the token step keeps k + 1 values in registers). */
const MAX_K = 32;

/** The registered BIP kernel: `args.rounds` rounds from `args.prices`, written back. */
async function bipRoundWebGpu(
  args: BipRoundArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<BipRoundResult> {
  const r = await dualRoundsOnGpu(gpuOf(env), args.scores, args.prices, {
    k: args.k,
    capacity: args.capacity,
    clipP: args.clip === true,
    clipQ: true,
    rounds: args.rounds,
  }, env.timer as GpuTimer | undefined);
  args.prices.set(r.q);
  return { prices: args.prices, tokenPrices: Float64Array.from(r.p) };
}

/** The registered bipRound/webgpu kernel (device balancers note their resident calls). */
export const bipRoundKernel = registerKernel({
  op: bipRoundOp,
  backend: "webgpu",
  run: bipRoundWebGpu,
  refuses: (a) =>
    a.k > MAX_K ? `k = ${a.k} exceeds the GPU kernel's ${MAX_K}` : undefined,
  callers: [
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (bip)',
    'trainTransformer() with backend "webgpu" (bip)',
    "bench/backends_bench.ts",
  ],
});

/** The registered Quantile kernel: the step from `args.prices`, written back. */
async function quantileStepWebGpu(
  args: QuantileStepArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<Float64Array> {
  const q = await quantileStepOnGpu(
    gpuOf(env),
    args.scores,
    args.prices,
    args.k,
    env.timer as GpuTimer | undefined,
  );
  args.prices.set(q);
  return args.prices;
}

/** The registered quantileStep/webgpu kernel. */
export const quantileStepKernel = registerKernel({
  op: quantileStepOp,
  backend: "webgpu",
  run: quantileStepWebGpu,
  refuses: (a) =>
    a.k > MAX_K ? `k = ${a.k} exceeds the GPU kernel's ${MAX_K}` : undefined,
  callers: [
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (quantile)',
  ],
});
