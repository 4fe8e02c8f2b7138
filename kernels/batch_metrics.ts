// The per-batch figures the simulator records beyond the loads, on the
// GPU, from a routing and its scores: the sum of the selected scores
// (score retention and the optimality gap; -Infinity and empty slots count
// 0), the slots short of `topK` over all tokens, and the tokens left
// without an expert. One thread per token; a workgroup sums its tokens
// (a tree), then one workgroup adds the workgroup sums, compensated
// (Kahan), so the sum stays within a few float32 roundings of the CPU's
// float64 one; the counts are exact.
import type { Routing, ScoreMatrix } from "../lib/types.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type BatchMetricsArgs,
  batchMetricsOp,
} from "../lib/ops/batch_metrics.ts";
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
import { BATCH_METRICS, METRIC } from "../lib/metrics/batch_metrics.ts";
import {
  releaseScores,
  type ResidentScores,
  type UniformMaker,
  uploadScores,
  words4,
} from "./resident_scores.ts";

const WG = 64, ONE = 256;
const PARAMS = "struct Params { rows: u32, first: u32, top_k: u32, zero: u32 }";

/** Words before the metrics: the score sum (f32), empty slots, tokens without an expert (u32). */
const HEAD_WORDS = 4;
/** Words of the metrics buffer: the head, then every metric (f32) at its METRIC position. */
export const METRIC_WORDS = HEAD_WORDS +
  4 * Math.ceil(BATCH_METRICS.length / 4);

function tokenProgram(E: number, slots: number): GpuProgram {
  return {
    key: `metrics-tokens:${E}:${slots}`,
    label: `batch metrics ${E}/${slots}`,
    workgroupSize: WG,
    wgsl: `${FLAT_ID}
const E: u32 = ${E}u;
const S: u32 = ${slots}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> metrics: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(0) @binding(3) var<storage, read> experts: array<i32>;
@group(0) @binding(4) var<uniform> params: Params;
var<workgroup> part: array<f32, ${WG}>;
var<workgroup> empty: atomic<u32>;
var<workgroup> without: atomic<u32>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  if (lid.x == 0u) { atomicStore(&empty, 0u); atomicStore(&without, 0u); }
  workgroupBarrier();
  let i = flat_id(wid, nwg, lid, ${WG}u);
  var s = 0.0;
  if (i < params.rows) {
    var used = 0u;
    for (var r = 0u; r < S; r++) {
      let j = experts[i * S + r];
      if (j < 0) { continue; }
      used++;
      let v = scores[i * E + u32(j)];
      if (v >= -3.40282347e38) { s += v; }
    }
    if (used < params.top_k) { atomicAdd(&empty, params.top_k - used); }
    if (used == 0u) { atomicAdd(&without, 1u); }
  }
  part[lid.x] = s;
  workgroupBarrier();
  for (var half = ${WG / 2}u; half > 0u; half >>= 1u) {
    if (lid.x < half) { part[lid.x] += part[lid.x + half]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    partial[params.first / ${WG}u + wid.y * nwg.x + wid.x] = part[0];
    let e = atomicLoad(&empty);
    if (e > 0u) { atomicAdd(&metrics[1], e); }
    let w = atomicLoad(&without);
    if (w > 0u) { atomicAdd(&metrics[2], w); }
  }
}`,
  };
}

/**
 * One workgroup: the score sum (Kahan sums of strided partials, then a
 * tree of their sums and errors), the loads' figures, and every metric at
 * its METRIC position after the first four words.
 */
function finalProgram(E: number): GpuProgram {
  const at = (name: keyof typeof METRIC) =>
    `metrics[${HEAD_WORDS + METRIC[name]}]`;
  return {
    key: `metrics-final:${E}`,
    label: `batch metrics final ${E}`,
    workgroupSize: ONE,
    wgsl: `
const E: u32 = ${E}u;
struct Params { partials: u32, tokens: u32, top_k: u32, zero: u32, reference: u32 }
@group(0) @binding(0) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> loads: array<u32>;
@group(0) @binding(3) var<storage, read> reference: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
var<workgroup> hi: array<f32, ${ONE}>;
var<workgroup> lo: array<f32, ${ONE}>;
var<workgroup> total: array<u32, ${ONE}>;
var<workgroup> most: array<u32, ${ONE}>;
var<workgroup> idle: array<u32, ${ONE}>;
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) | params.zero); }

@compute @workgroup_size(${ONE})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var s = 0.0;
  var c = 0.0;
  for (var b = t; b < params.partials; b += ${ONE}u) {
    let y = opaque(partial[b] - c);
    let u = opaque(s + y);
    c = opaque(u - s) - y;
    s = u;
  }
  hi[t] = s;
  lo[t] = c;
  var n = 0u;
  var m = 0u;
  var z = 0u;
  for (var j = t; j < E; j += ${ONE}u) {
    let x = loads[j];
    n += x;
    m = max(m, x);
    z += select(0u, 1u, x == 0u);
  }
  total[t] = n;
  most[t] = m;
  idle[t] = z;
  workgroupBarrier();
  for (var half = ${ONE / 2}u; half > 0u; half >>= 1u) {
    if (t < half) {
      hi[t] += hi[t + half];
      lo[t] += lo[t + half];
      total[t] += total[t + half];
      most[t] = max(most[t], most[t + half]);
      idle[t] += idle[t + half];
    }
    workgroupBarrier();
  }
  let mean = f32(total[0]) / f32(E);
  let sum = hi[0] - lo[0];
  workgroupBarrier();
  var q = 0.0;
  for (var j = t; j < E; j += ${ONE}u) {
    let d = f32(loads[j]) - mean;
    q += d * d;
  }
  hi[t] = q;
  workgroupBarrier();
  for (var half = ${ONE / 2}u; half > 0u; half >>= 1u) {
    if (t < half) { hi[t] += hi[t + half]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    metrics[0] = sum;
    let mx = f32(most[0]);
    let has = mean > 0.0;
    ${at("maxVio")} = select(0.0, (mx - mean) / mean, has);
    ${at("cv")} = select(0.0, sqrt(hi[0] / f32(E)) / mean, has);
    ${at("maxOverMean")} = select(0.0, mx / mean, has);
    ${at("zeroExperts")} = f32(idle[0]);
    // 0xffffffff: this routing is the reference.
    let r = select(reference[params.reference], sum, params.reference == 0xffffffffu);
    ${
      at("scoreRetention")
    } = select(select(sum / r, 1.0, sum == r), 1.0, r == 0.0);
    ${
      at("droppedFraction")
    } = f32(bitcast<u32>(metrics[1])) / (f32(params.tokens) * f32(params.top_k));
    ${at("tokensWithoutExpert")} = f32(bitcast<u32>(metrics[2]));
  }
}`,
  };
}

/** Buffers of the metrics of one routed batch. */
export interface MetricBuffers {
  scores: ResidentScores;
  /** The routing's experts (tokens x slots, i32; -1 for an empty slot) and loads (u32). */
  experts: GPUBuffer;
  loads: GPUBuffer;
  /** The reference routing's score sum, as f32 at word `referenceWord` (none: this routing's). */
  reference?: GPUBuffer;
  referenceWord?: number;
  /** Out: {@linkcode METRIC_WORDS} words (cleared here). */
  metrics: GPUBuffer;
  /** Scratch: one f32 per 64 tokens. */
  partial: GPUBuffer;
}

/** Bytes of the `partial` scratch for a batch of `tokens`. */
export function metricPartialBytes(tokens: number): number {
  return 4 * Math.max(1, Math.ceil(tokens / WG));
}

/**
 * Records the metrics of a routing with `slots` slots per token; the
 * reference sum must be written before (it may be this routing's own).
 */
export function recordBatchMetrics(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  slots: number,
  topK: number,
  b: MetricBuffers,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { tokens: N, experts: E, chunks } = b.scores;
  encoder.clearBuffer(b.metrics, 0, 4 * METRIC_WORDS);
  const partialBytes = metricPartialBytes(N);
  encoder.clearBuffer(b.partial, 0, partialBytes);
  const program = tokenProgram(E, slots);
  for (const c of chunks) {
    dispatch(
      gpu,
      encoder,
      program,
      [
        span(b.partial, partialBytes),
        span(b.metrics, 4 * METRIC_WORDS),
        span(c.buffer, 4 * c.rows * E),
        {
          buffer: b.experts,
          offset: 4 * c.from * slots,
          size: 4 * c.rows * slots,
        },
        uniform(words4(c.rows, c.from, topK, 0)),
      ],
      c.rows,
      timer,
    );
  }
  const self = b.reference === undefined;
  const params = new Uint32Array([
    partialBytes / 4,
    N,
    topK,
    0,
    self ? 0xffffffff : b.referenceWord ?? 0,
    0,
    0,
    0,
  ]);
  dispatch(
    gpu,
    encoder,
    finalProgram(E),
    [
      span(b.metrics, 4 * METRIC_WORDS),
      span(b.partial, partialBytes),
      span(b.loads, 4 * E),
      self
        ? span(b.partial, partialBytes)
        : span(b.reference!, 4 * ((b.referenceWord ?? 0) + 1)),
      uniform(params.buffer),
    ],
    ONE,
    timer,
  );
}

/** The figures of a metrics buffer. */
export interface GpuBatchMetrics {
  /** Sum of the selected scores (float32, compensated). */
  scoreSum: number;
  /** Every metric at its METRIC position (lib/metrics/batch_metrics.ts). */
  values: Float32Array;
}

/** Reads a metrics buffer's words. */
export function readMetrics(words: ArrayBuffer, offset = 0): GpuBatchMetrics {
  return {
    scoreSum: new Float32Array(words, offset, 1)[0],
    values: new Float32Array(
      words,
      offset + 4 * HEAD_WORDS,
      BATCH_METRICS.length,
    ),
  };
}

/**
 * The per-batch metrics of `routing` on `scores` on the GPU, with the
 * reference sum `referenceSum`: the batchMetrics op's figures (at the
 * METRIC positions) and the selected score sum.
 */
export async function batchMetricsOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  routing: Routing,
  topK: number,
  referenceSum: number,
  timer?: GpuTimer,
): Promise<GpuBatchMetrics> {
  const { tokens: N, experts: E } = scores;
  const slots = routing.k;
  const resident = uploadScores(gpu, scores);
  const experts = storage(
    gpu,
    "metrics experts",
    4 * Math.max(1, N * slots),
    routing.experts,
  );
  const loads = storage(gpu, "metrics loads", 4 * E, routing.loads);
  const reference = storage(
    gpu,
    "metrics reference",
    4,
    new Float32Array([referenceSum]),
  );
  const metrics = storage(gpu, "metrics", 4 * METRIC_WORDS);
  const partial = storage(gpu, "metrics partial", metricPartialBytes(N));
  const params = uniformSet(gpu, "metrics params");
  const enc = gpu.device.createCommandEncoder({ label: "batch metrics" });
  recordBatchMetrics(
    gpu,
    enc,
    slots,
    topK,
    {
      scores: resident,
      experts,
      loads,
      reference,
      referenceWord: 0,
      metrics,
      partial,
    },
    params.make,
    timer,
  );
  gpu.device.queue.submit([enc.finish()]);
  const words = await readBack(gpu, metrics, 4 * METRIC_WORDS);
  gpu.pool.release(experts, loads, reference, metrics, partial);
  gpu.pool.release(...params.buffers);
  releaseScores(gpu, resident);
  return readMetrics(words);
}

/** The registered kernel: every metric from the GPU into `args.out`. */
async function batchMetricsWebGpu(
  args: BatchMetricsArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<Float64Array> {
  const m = await batchMetricsOnGpu(
    gpuOf(env),
    args.scores,
    args.routing,
    args.topK,
    args.referenceSum,
    env.timer as GpuTimer | undefined,
  );
  args.out.set(m.values);
  return args.out;
}

/** The registered batchMetrics/webgpu kernel (the device simulator notes its resident calls). */
export const batchMetricsKernel = registerKernel({
  op: batchMetricsOp,
  backend: "webgpu",
  run: batchMetricsWebGpu,
  callers: ['runSimulationOn() with backend "webgpu" (every device method)'],
});
