// Capacity dropping on the GPU (Switch Transformer's capacity factor;
// Megatron-Core's drop policies), after a top-K routing: an expert given
// more than `capacity` tokens keeps `capacity` of them, by routing
// probability (`probs`: the highest float32 weights the route wrote, after
// normalisation and scaling, ties to the earlier tokens) or by position (the
// earliest tokens). The kept ones are the column select's (_column_select.ts)
// over the routing's slots, on those weights (or on one constant value for
// `position`, where the tie cutoff alone decides), so the choice is the CPU
// kernel's exactly. Each token then moves its kept slots first;
// dropped slots hold -1 and weight 0; weights are not renormalised.
import type { Routing, ScoreMatrix } from "../lib/types.ts";
import { createRouting } from "../lib/select/routing.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type CapacityDropArgs,
  capacityDropOp,
} from "../lib/ops/capacity_drop.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { copyRouting, readRouting } from "./routing_readback.ts";
import {
  dispatch,
  FLAT_ID,
  type GpuProgram,
  type GpuTimer,
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
  blocksOf,
  columnSelectRefuses,
  histogramBytes,
  ORDER_KEYS,
  recordColumnSelect,
  recordRankInit,
} from "./_column_select.ts";

const WG = 64;

/** Which assignments an over-capacity expert drops. */
export type DropPolicy = "probs" | "position";

function applyProgram(E: number, k: number, drop: DropPolicy): GpuProgram {
  const wgsl = `${FLAT_ID}${ORDER_KEYS}
const E: u32 = ${E}u;
const K: u32 = ${k}u;
struct Params { rows: u32, first: u32, capacity: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> experts: array<i32>;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(0) @binding(3) var<storage, read> loads: array<u32>;
@group(0) @binding(4) var<storage, read> prefix: array<u32>;
@group(0) @binding(5) var<storage, read> cutoff: array<u32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  let token = params.first + i;
  _ = &scores; // kept in the layout: neither policy reads the scores
  var e: array<i32, K>;
  var w: array<f32, K>;
  var n = 0u;
  for (var r = 0u; r < K; r++) {
    let js = experts[i * K + r];
    if (js < 0) { continue; }
    let j = u32(js);
    var keep = loads[j] <= params.capacity;
    if (!keep) {
      let key = to_key(${drop === "probs" ? "weights[i * K + r]" : "0.0"});
      let t = prefix[j];
      keep = params.capacity > 0u && (key > t || (key == t && token <= cutoff[j]));
    }
    if (keep) { e[n] = js; w[n] = weights[i * K + r]; n++; }
  }
  for (var r = 0u; r < K; r++) {
    experts[i * K + r] = select(-1, e[r], r < n);
    weights[i * K + r] = select(0.0, w[r], r < n);
  }
}`;
  return {
    key: `cap-apply:${E}:${k}:${drop}`,
    label: `capacity drop (${drop}) ${E}/${k}`,
    wgsl,
    workgroupSize: WG,
  };
}

function clampProgram(E: number): GpuProgram {
  return {
    key: `cap-clamp:${E}`,
    label: `capacity loads ${E}`,
    workgroupSize: WG,
    wgsl: `
const E: u32 = ${E}u;
struct Params { rows: u32, first: u32, capacity: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> loads: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j < E) { loads[j] = min(loads[j], params.capacity); }
}`,
  };
}

/** Buffers of a capacity pass: a routing on the GPU, modified in place. */
export interface CapacityBuffers {
  scores: ResidentScores;
  /** In and out: the routing (tokens x k experts and weights; loads, u32). */
  experts: GPUBuffer;
  weights: GPUBuffer;
  loads: GPUBuffer;
  /** Scratch (as Expert Choice's). */
  rank: GPUBuffer;
  prefix: GPUBuffer;
  eq: GPUBuffer;
  hist: GPUBuffer;
  blockEq: GPUBuffer;
  cutoff: GPUBuffer;
}

/** Allocates the scratch of {@linkcode CapacityBuffers} (hist zeroed). */
export function capacityScratchOnGpu(
  gpu: Gpu,
  tokens: number,
  experts: number,
): Pick<
  CapacityBuffers,
  "rank" | "prefix" | "eq" | "hist" | "blockEq" | "cutoff"
> {
  const hist = storage(gpu, "capacity histogram", histogramBytes(experts));
  const enc = gpu.device.createCommandEncoder({ label: "capacity scratch" });
  enc.clearBuffer(hist, 0, histogramBytes(experts));
  gpu.device.queue.submit([enc.finish()]);
  return {
    rank: storage(gpu, "capacity rank", 4 * experts),
    prefix: storage(gpu, "capacity prefix", 4 * experts),
    eq: storage(gpu, "capacity equal", 4 * experts),
    hist,
    blockEq: storage(
      gpu,
      "capacity block ties",
      4 * blocksOf(tokens) * experts,
    ),
    cutoff: storage(gpu, "capacity tie cutoff", 4 * experts),
  };
}

/** Records the capacity drop of the routing in `b` (k slots per token). */
export function recordCapacityDrop(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  k: number,
  capacity: number,
  drop: DropPolicy,
  b: CapacityBuffers,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { experts: E, chunks } = b.scores;
  recordRankInit(gpu, encoder, E, capacity, b.rank, uniform, b.loads);
  recordColumnSelect(
    gpu,
    encoder,
    { kind: "slots", k, constant: drop === "position" },
    { ...b, slots: b.experts, slotWeights: b.weights },
    uniform,
    timer,
  );
  const apply = applyProgram(E, k, drop);
  for (const c of chunks) {
    dispatch(
      gpu,
      encoder,
      apply,
      [
        { buffer: b.experts, offset: 4 * c.from * k, size: 4 * c.rows * k },
        { buffer: b.weights, offset: 4 * c.from * k, size: 4 * c.rows * k },
        span(c.buffer, 4 * c.rows * E),
        span(b.loads, 4 * E),
        span(b.prefix, 4 * E),
        span(b.cutoff, 4 * E),
        uniform(words4(c.rows, c.from, capacity, 0)),
      ],
      c.rows,
      timer,
    );
  }
  dispatch(
    gpu,
    encoder,
    clampProgram(E),
    [
      span(b.loads, 4 * E),
      uniform(words4(0, 0, capacity, 0)),
    ],
    E,
    timer,
  );
}

/**
 * Drops the over-capacity assignments of `routing` (a top-K routing of
 * `scores`) on the GPU, as the `capacity` balancer does after routing.
 */
export async function capacityDropOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  routing: Routing,
  capacity: number,
  drop: DropPolicy,
  timer?: GpuTimer,
): Promise<Routing> {
  const { tokens: N, experts: E } = scores;
  const k = routing.k;
  const out = createRouting(N, k, E);
  if (N === 0) return out;
  const resident = uploadScores(gpu, scores);
  const scratch = capacityScratchOnGpu(gpu, N, E);
  const experts = storage(gpu, "capacity experts", 4 * N * k, routing.experts);
  const weights = storage(gpu, "capacity weights", 4 * N * k, routing.weights);
  const loads = storage(gpu, "capacity loads", 4 * E, routing.loads);
  const params = uniformSet(gpu, "capacity params");
  const enc = gpu.device.createCommandEncoder({ label: "capacity drop" });
  recordCapacityDrop(
    gpu,
    enc,
    k,
    capacity,
    drop,
    {
      scores: resident,
      experts,
      weights,
      loads,
      ...scratch,
    },
    params.make,
    timer,
  );
  gpu.device.queue.submit([enc.finish()]);
  await readRouting(gpu, { experts, weights, loads }, out);
  gpu.pool.release(experts, weights, loads, ...Object.values(scratch));
  gpu.pool.release(...params.buffers);
  releaseScores(gpu, resident);
  return out;
}

/** The registered kernel: uploads the routing, drops, writes it back in place. */
async function capacityDropWebGpu(
  args: CapacityDropArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<Routing> {
  const r = await capacityDropOnGpu(
    gpuOf(env),
    args.scores,
    args.routing,
    args.capacity,
    args.drop,
    env.timer as GpuTimer | undefined,
  );
  return copyRouting(r, args.routing);
}

/** The registered capacityDrop/webgpu kernel (device balancers note their resident calls). */
export const capacityDropKernel = registerKernel({
  op: capacityDropOp,
  backend: "webgpu",
  run: capacityDropWebGpu,
  refuses: (a) => columnSelectRefuses(a.scores.experts),
  callers: [
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (capacity)',
  ],
});
