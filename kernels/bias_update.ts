// The Loss-Free bias update on the GPU, so that a simulation can keep the
// biases on the device between batches. CPU twin:
// lib/route/_bias_update_f32.ts.
import type { Gpu } from "./device.ts";
import { dispatch, type GpuProgram, storage, uniforms } from "./program.ts";

const WG = 256;

/** The update program for `experts` and the rule. */
export function biasUpdateProgram(
  experts: number,
  rule: "sign" | "proportional",
): GpuProgram {
  const step = rule === "sign"
    // Sign of mean - c[j], decided on integers: c*E < total iff c < q, or
    // c == q with a remainder (total = q*E + r); no overflow of c*E.
    ? `select(select(0.0, -params.rate, c > q), params.rate, c < q || (c == q && r > 0u))`
    : `params.rate * (1.0 - f32(c) * f32(E) / f32(total))`;
  const wgsl = `
const E: u32 = ${experts}u;
struct Params { rate: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read_write> bias: array<f32>;
@group(0) @binding(1) var<storage, read> loads: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var total = 0u;
  for (var j = 0u; j < E; j++) { total += loads[j]; }
  if (total == 0u) { return; }
  let q = total / E;
  let r = total % E;
  for (var j = lid.x; j < E; j += ${WG}u) {
    let c = loads[j];
    bias[j] = bias[j] + ${step};
  }
}`;
  return {
    key: `bias-update:${experts}:${rule}`,
    label: `loss-free ${rule} update of ${experts}`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * Records the Loss-Free update of `bias` (a float32 GPU buffer, experts)
 * from `loads` (the batch just routed) and submits it.
 */
export function lossFreeUpdateOnGpu(
  gpu: Gpu,
  bias: GPUBuffer,
  loads: Int32Array,
  rate: number,
  rule: "sign" | "proportional",
): void {
  const E = loads.length;
  const c = storage(gpu, "bias update loads", 4 * E, loads);
  const p = uniforms(
    gpu,
    "bias update params",
    new Float32Array([rate, 0, 0, 0]).buffer,
  );
  const enc = gpu.device.createCommandEncoder({ label: "bias update" });
  dispatch(gpu, enc, biasUpdateProgram(E, rule), [bias, c, p], WG);
  gpu.device.queue.submit([enc.finish()]);
  gpu.pool.release(c, p);
}
