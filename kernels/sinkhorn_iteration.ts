// One Sinkhorn iteration on the GPU (Megatron-LM's form; docs/algorithms.md
// section 8). Row step: one thread per token. Column step: each workgroup
// sums a block of 256 rows for every expert (threads over experts, so a
// row is read with consecutive addresses), then one thread per expert adds
// the blocks. CPU twin: lib/route/_sinkhorn_iteration.ts.
import type { ScoreMatrix } from "../lib/types.ts";
import { SINKHORN_EPS } from "../lib/route/_sinkhorn_iteration.ts";
import type { Gpu } from "./device.ts";
import { uploadRows, words } from "./chunks.ts";
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

const WG = 64, BLOCK = 256;
const PARAMS = "struct Params { rows: u32, first: u32, tokens: u32, pad: u32 }";

function rowProgram(E: number): GpuProgram {
  const wgsl = `${FLAT_ID}
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> d0: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> d1: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  var s = 0.0;
  for (var j = 0u; j < E; j++) { s += d1[j] * exp(scores[i * E + j]); }
  d0[params.first + i] = 1.0 / f32(params.tokens) / (s + ${SINKHORN_EPS});
}`;
  return {
    key: `sinkhorn-row:${E}`,
    label: `sinkhorn rows ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

function blockProgram(E: number): GpuProgram {
  const wgsl = `
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> partial: array<f32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> d0: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let first = wid.x * ${BLOCK}u;
  let last = min(first + ${BLOCK}u, params.rows);
  let block = (params.first + first) / ${BLOCK}u;
  for (var j = lid.x; j < E; j += ${WG}u) {
    var s = 0.0;
    for (var i = first; i < last; i++) {
      s += d0[params.first + i] * exp(scores[i * E + j]);
    }
    partial[block * E + j] = s;
  }
}`;
  return {
    key: `sinkhorn-block:${E}`,
    label: `sinkhorn blocks ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

function columnProgram(E: number): GpuProgram {
  const wgsl = `
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> d1: array<f32>;
@group(0) @binding(1) var<storage, read_write> change: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= E) { return; }
  var s = 0.0;
  for (var b = 0u; b < params.rows; b++) { s += partial[b * E + j]; }
  let next = 1.0 / f32(E) / (s + ${SINKHORN_EPS});
  change[j] = abs(next - d1[j]);
  d1[j] = next;
}`;
  return {
    key: `sinkhorn-col:${E}`,
    label: `sinkhorn columns ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * One Sinkhorn iteration on the GPU from the expert scaling `d1`: token
 * scaling `d0`, new `d1` and the mean absolute change of `d1`, as
 * lib/route/_sinkhorn_iteration.ts computes them (float32 sums here).
 */
export async function sinkhornIterationOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  d1: Float32Array,
  timer?: GpuTimer,
): Promise<{ d0: Float32Array; d1: Float32Array; error: number }> {
  const { tokens: N, experts: E } = scores;
  const { device, pool } = gpu;
  const chunks = uploadRows(gpu, scores, BLOCK);
  const blocks = Math.max(1, Math.ceil(N / BLOCK));
  const d0Buf = storage(gpu, "sinkhorn d0", 4 * Math.max(1, N));
  const d1Buf = storage(gpu, "sinkhorn d1", 4 * E, d1);
  const change = storage(gpu, "sinkhorn change", 4 * E);
  const partial = storage(gpu, "sinkhorn partial", 4 * blocks * E);
  const params = uniformSet(gpu, "sinkhorn params");
  const u = params.make;
  const enc = device.createCommandEncoder({ label: "sinkhorn iteration" });
  enc.clearBuffer(partial, 0, 4 * blocks * E);
  for (const c of chunks) {
    dispatch(
      gpu,
      enc,
      rowProgram(E),
      [
        span(d0Buf, 4 * Math.max(1, N)),
        span(c.buffer, 4 * c.rows * E),
        span(d1Buf, 4 * E),
        u(words(c.rows, c.from, N)),
      ],
      c.rows,
      timer,
    );
  }
  for (const c of chunks) {
    dispatch(
      gpu,
      enc,
      blockProgram(E),
      [
        span(partial, 4 * blocks * E),
        span(c.buffer, 4 * c.rows * E),
        span(d0Buf, 4 * Math.max(1, N)),
        u(words(c.rows, c.from, N)),
      ],
      Math.ceil(c.rows / BLOCK) * WG,
      timer,
    );
  }
  dispatch(
    gpu,
    enc,
    columnProgram(E),
    [
      span(d1Buf, 4 * E),
      span(change, 4 * E),
      span(partial, 4 * blocks * E),
      u(words(blocks)),
    ],
    E,
    timer,
  );
  device.queue.submit([enc.finish()]);
  const [a, b, c] = await Promise.all([
    readBack(gpu, d0Buf, 4 * N),
    readBack(gpu, d1Buf, 4 * E),
    readBack(gpu, change, 4 * E),
  ]);
  pool.release(
    d0Buf,
    d1Buf,
    change,
    partial,
    ...params.buffers,
    ...chunks.map((x) => x.buffer),
  );
  let error = 0;
  for (const x of new Float32Array(c)) error += x;
  return { d0: new Float32Array(a), d1: new Float32Array(b), error: error / E };
}
