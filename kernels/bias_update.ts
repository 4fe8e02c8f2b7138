// The Loss-Free bias update on the GPU, so that a simulation can keep the
// biases on the device between batches: the "webgpu" kernel of the
// lossFreeUpdate op (lib/ops/loss_free_update.ts), in float32.
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type LossFreeUpdateArgs,
  lossFreeUpdateOp,
} from "../lib/ops/loss_free_update.ts";
import { type Gpu, gpuOf } from "./device.ts";
import {
  dispatch,
  type GpuProgram,
  type GpuTimer,
  readBack,
  storage,
  uniforms,
} from "./program.ts";

const WG = 256;

/**
 * The update program for `experts`, the rule and `center` (subtract the
 * mean step: for the sign rule `rate * (under - over) / E`, counted on
 * integers; the proportional rule's steps sum to zero, so centring
 * changes nothing there beyond the CPU's rounding).
 */
export function biasUpdateProgram(
  experts: number,
  rule: "sign" | "proportional",
  center = false,
): GpuProgram {
  const shift = center && rule === "sign"
    ? `
  var under = 0i;
  for (var j = 0u; j < E; j++) {
    let c = loads[j];
    under += select(select(0i, -1i, c > q), 1i, c < q || (c == q && r > 0u));
  }
  let shift = params.rate * f32(under) / f32(E);`
    : "\n  let shift = 0.0;";
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
  let r = total % E;${shift}
  for (var j = lid.x; j < E; j += ${WG}u) {
    let c = loads[j];
    bias[j] = bias[j] + (${step} - shift);
  }
}`;
  return {
    key: `bias-update:${experts}:${rule}:${center && rule === "sign"}`,
    label: `loss-free ${rule} update of ${experts}`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * Records the Loss-Free update of the resident `bias` (experts, f32) from
 * the resident `loads` (experts, u32) into `encoder`: the form device
 * balancers use (the caller notes the kernel).
 */
export function recordLossFreeUpdate(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  bias: GPUBuffer,
  loads: GPUBuffer,
  experts: number,
  settings: {
    rate: number;
    rule: "sign" | "proportional";
    center: boolean;
  },
  uniform: (words: ArrayBuffer) => GPUBuffer,
  timer?: GpuTimer,
): void {
  const p = uniform(new Float32Array([settings.rate, 0, 0, 0]).buffer);
  const program = biasUpdateProgram(experts, settings.rule, settings.center);
  dispatch(
    gpu,
    encoder,
    program,
    [
      { buffer: bias, offset: 0, size: 4 * experts },
      { buffer: loads, offset: 0, size: 4 * experts },
      p,
    ],
    WG,
    timer,
  );
}

/** Records and submits the update program over the resident `bias`. */
function encodeUpdate(
  gpu: Gpu,
  bias: GPUBuffer,
  loads: Int32Array,
  rate: number,
  rule: "sign" | "proportional",
  center = false,
): void {
  const E = loads.length;
  const c = storage(gpu, "bias update loads", 4 * E, loads);
  const p = uniforms(
    gpu,
    "bias update params",
    new Float32Array([rate, 0, 0, 0]).buffer,
  );
  const enc = gpu.device.createCommandEncoder({ label: "bias update" });
  dispatch(gpu, enc, biasUpdateProgram(E, rule, center), [bias, c, p], WG);
  gpu.device.queue.submit([enc.finish()]);
  gpu.pool.release(c, p);
}

/**
 * The registered kernel on host arrays: the biases go up as float32, are
 * updated by the same program, and come back into `args.bias`.
 */
async function lossFreeUpdateWebGpu(
  args: LossFreeUpdateArgs,
  env: { gpu?: unknown },
): Promise<Float64Array> {
  const gpu = gpuOf(env);
  const E = args.bias.length;
  const buffer = storage(gpu, "bias", 4 * E, Float32Array.from(args.bias));
  encodeUpdate(gpu, buffer, args.loads, args.rate, args.rule, args.center);
  const back = new Float32Array(await readBack(gpu, buffer, 4 * E));
  gpu.pool.release(buffer);
  args.bias.set(back);
  return args.bias;
}

/** The registered lossFreeUpdate/webgpu kernel (device balancers note their resident calls). */
export const lossFreeUpdateKernel = registerKernel({
  op: lossFreeUpdateOp,
  backend: "webgpu",
  run: lossFreeUpdateWebGpu,
  callers: [
    'runSimulationOn() with backend "webgpu" and createDeviceBalancer() (loss-free)',
  ],
});
