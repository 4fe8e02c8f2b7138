// Expert Choice selection on the GPU (Zhou et al., 2022): every expert
// takes its C highest-scoring tokens, ties at the C-th to the lowest token
// indices, found by the column select (_column_select.ts) on the raw
// float32 scores, so the choice is the CPU kernel's exactly. Then one
// thread per token writes its chosen experts into its E slots, best score
// first (ties to the lower expert), weights from the scores, normalised
// over the chosen ones when asked; unused slots hold -1 and weight 0.
import type { Routing, ScoreMatrix } from "../lib/types.ts";
import { createRouting } from "../lib/select/routing.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type ExpertChoiceArgs,
  expertChoiceOp,
} from "../lib/ops/expert_choice.ts";
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

function fillProgram(E: number, normalize: boolean): GpuProgram {
  const wgsl = `${FLAT_ID}${ORDER_KEYS}
const E: u32 = ${E}u;
struct Params { rows: u32, first: u32, capacity: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> out_experts: array<i32>;
@group(0) @binding(1) var<storage, read_write> out_weights: array<f32>;
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(0) @binding(3) var<storage, read> prefix: array<u32>;
@group(0) @binding(4) var<storage, read> cutoff: array<u32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  let base = i * E;
  let token = params.first + i;
  var n = 0u;
  var sum = 0.0;
  if (params.capacity > 0u) {
    for (var j = 0u; j < E; j++) {
      let v = scores[base + j];
      let key = to_key(v);
      let t = prefix[j];
      if (key > t || (key == t && token <= cutoff[j])) {
        // Insertion by score; an equal score stays behind (lower expert first).
        var p = n;
        loop {
          if (p == 0u) { break; }
          let o = out_experts[base + p - 1u];
          if (!(v > scores[base + u32(o)])) { break; }
          out_experts[base + p] = o;
          p--;
        }
        out_experts[base + p] = i32(j);
        sum += select(0.0, v, v >= -3.40282347e38);
        n++;
      }
    }
  }
  for (var r = 0u; r < E; r++) {
    if (r < n) {
      let v = scores[base + u32(out_experts[base + r])];
      let w = select(0.0, v, v >= -3.40282347e38);
      out_weights[base + r] = ${
    normalize ? "select(w, w / sum, sum > 0.0)" : "w"
  };
    } else {
      out_experts[base + r] = -1;
      out_weights[base + r] = 0.0;
    }
  }
}`;
  return {
    key: `ec-fill:${E}:${normalize}`,
    label: `expert choice slots ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Buffers of an Expert Choice pass over resident scores. */
export interface ExpertChoiceBuffers {
  scores: ResidentScores;
  /** Out: experts and weights (tokens x experts), loads (experts, u32). */
  experts: GPUBuffer;
  weights: GPUBuffer;
  loads: GPUBuffer;
  /** Scratch (experts u32 each; hist zero, 256 x experts; blockEq blocks x experts). */
  rank: GPUBuffer;
  prefix: GPUBuffer;
  eq: GPUBuffer;
  hist: GPUBuffer;
  blockEq: GPUBuffer;
  cutoff: GPUBuffer;
}

/** Allocates the scratch of {@linkcode ExpertChoiceBuffers} (hist zeroed). */
export function expertChoiceScratchOnGpu(
  gpu: Gpu,
  tokens: number,
  experts: number,
): Pick<
  ExpertChoiceBuffers,
  "rank" | "prefix" | "eq" | "hist" | "blockEq" | "cutoff"
> {
  const hist = storage(gpu, "ec histogram", histogramBytes(experts));
  const enc = gpu.device.createCommandEncoder({ label: "ec scratch" });
  enc.clearBuffer(hist, 0, histogramBytes(experts));
  gpu.device.queue.submit([enc.finish()]);
  return {
    rank: storage(gpu, "ec rank", 4 * experts),
    prefix: storage(gpu, "ec prefix", 4 * experts),
    eq: storage(gpu, "ec equal", 4 * experts),
    hist,
    blockEq: storage(gpu, "ec block ties", 4 * blocksOf(tokens) * experts),
    cutoff: storage(gpu, "ec tie cutoff", 4 * experts),
  };
}

/**
 * Records Expert Choice with `capacity` tokens per expert (`C <= tokens`)
 * into `encoder`.
 */
export function recordExpertChoice(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  capacity: number,
  normalize: boolean,
  b: ExpertChoiceBuffers,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { experts: E, chunks } = b.scores;
  recordRankInit(gpu, encoder, E, capacity, b.loads, uniform);
  if (capacity > 0) {
    recordRankInit(gpu, encoder, E, capacity, b.rank, uniform);
    recordColumnSelect(gpu, encoder, { kind: "scores" }, b, uniform, timer);
  }
  const fill = fillProgram(E, normalize);
  for (const c of chunks) {
    dispatch(
      gpu,
      encoder,
      fill,
      [
        { buffer: b.experts, offset: 4 * c.from * E, size: 4 * c.rows * E },
        { buffer: b.weights, offset: 4 * c.from * E, size: 4 * c.rows * E },
        span(c.buffer, 4 * c.rows * E),
        span(b.prefix, 4 * E),
        span(b.cutoff, 4 * E),
        uniform(words4(c.rows, c.from, capacity, 0)),
      ],
      c.rows,
      timer,
    );
  }
}

/**
 * Expert Choice on the GPU: each expert takes its `capacity` best tokens
 * (`capacity <= tokens`), as the `expert-choice` balancer's route. The
 * routing has `experts` slots per token.
 */
export async function expertChoiceOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  capacity: number,
  normalize: boolean,
  timer?: GpuTimer,
): Promise<Routing> {
  const { tokens: N, experts: E } = scores;
  const out = createRouting(N, E, E);
  if (N === 0) return out;
  const resident = uploadScores(gpu, scores);
  const scratch = expertChoiceScratchOnGpu(gpu, N, E);
  const outE = storage(gpu, "ec experts", 4 * N * E);
  const outW = storage(gpu, "ec weights", 4 * N * E);
  const loads = storage(gpu, "ec loads", 4 * E);
  const params = uniformSet(gpu, "ec params");
  const enc = gpu.device.createCommandEncoder({ label: "expert choice" });
  recordExpertChoice(
    gpu,
    enc,
    capacity,
    normalize,
    {
      scores: resident,
      experts: outE,
      weights: outW,
      loads,
      ...scratch,
    },
    params.make,
    timer,
  );
  gpu.device.queue.submit([enc.finish()]);
  await readRouting(gpu, { experts: outE, weights: outW, loads }, out);
  gpu.pool.release(outE, outW, loads, ...Object.values(scratch));
  gpu.pool.release(...params.buffers);
  releaseScores(gpu, resident);
  return out;
}

/** Why Expert Choice cannot run on the GPU with `experts` experts, or `undefined`. */
export const expertChoiceRefuses = columnSelectRefuses;

/** The registered kernel: routes and reads back into `args.out`. */
async function expertChoiceWebGpu(
  args: ExpertChoiceArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<Routing> {
  const r = await expertChoiceOnGpu(
    gpuOf(env),
    args.scores,
    args.capacity,
    args.normalize,
    env.timer as GpuTimer | undefined,
  );
  return copyRouting(r, args.out);
}

/** The registered expertChoice/webgpu kernel. */
export const expertChoiceKernel = registerKernel({
  op: expertChoiceOp,
  backend: "webgpu",
  run: expertChoiceWebGpu,
  refuses: (a) => columnSelectRefuses(a.scores.experts),
  callers: [
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (expert-choice)',
  ],
});
