// The Loss-Free bias update on the GPU, so that a simulation can keep the
// biases on the device between batches: the "webgpu" kernel of the
// lossFreeUpdate op (lib/ops/loss_free_update.ts), in float32; with
// micro-batch counts or float32/bfloat16 storage, the precision program
// below emulates the CPU kernel's rounding exactly.
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type CountAdd,
  type LossFreeUpdateArgs,
  lossFreeUpdateOp,
} from "../lib/ops/loss_free_update.ts";
import { countCeiling, type Precision } from "../lib/numeric/precision.ts";
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

const PRECISION_CODE = { float64: 0, float32: 1, bfloat16: 2 } as const;

/** Settings of {@linkcode biasUpdatePrecisionProgram}. */
export interface BiasPrecisionSpec {
  experts: number;
  rule: "sign" | "proportional";
  biasPrecision: Precision;
  countPrecision: Precision;
  countAdd: CountAdd;
}

/**
 * The update with running counts and emulated storage precisions: the
 * loads are added to the counts (u32 exact integers for float64 counts;
 * float32 values, rounded to bfloat16 when asked, otherwise), and when
 * `params.apply` the bias moves as the CPU kernel moves it: the total
 * rounded once to the count precision (exact integer sum, then a
 * correctly rounded conversion), the mean a correctly rounded integer
 * division, `e`, the step and `b + step` rounded after each operation
 * (WGSL's float32 add, subtract and multiply round to nearest even). The
 * proportional rule's division by the mean is WGSL's (2.5 ulp). Totals
 * must stay below 2^32.
 */
export function biasUpdatePrecisionProgram(
  spec: BiasPrecisionSpec,
): GpuProgram {
  const { experts: E, rule } = spec;
  const pc = PRECISION_CODE[spec.countPrecision];
  const pb = PRECISION_CODE[spec.biasPrecision];
  const token = spec.countAdd === "token";
  const exact = pc === 0;
  const addLoad = exact
    ? "counts[j] = counts[j] + l;"
    : token
    ? `counts[j] = min(counts[j] + f32_of(l), ${
      countCeiling(spec.countPrecision)
    }.0);`
    : "counts[j] = rc(counts[j] + rc(f32_of(l)));";
  const step = exact
    ? rule === "sign"
      ? `select(select(0.0, -params.rate, c > q), params.rate, c < q || (c == q && r > 0u))`
      : `params.rate * (1.0 - f32(c) * f32(E) / f32(total_w))`
    : rule === "sign"
    ? "rc(sign(rc(mean_w - c)) * params.rate)"
    : "rc(rc(params.rate * rc(mean_w - c)) / mean_w)";
  const wgsl = `
const E: u32 = ${E}u;
struct Params { rate: f32, apply: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read_write> bias: array<f32>;
@group(0) @binding(1) var<storage, read> loads: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<${
    exact ? "u32" : "f32"
  }>;
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> total_w: u32;
var<workgroup> mean_w: f32;

// Round to nearest bfloat16, ties to even (NaN kept).
fn bf16(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0u) { return x; }
  return bitcast<f32>((bits + 0x7fffu + ((bits >> 16u) & 1u)) & 0xffff0000u);
}
fn rc(x: f32) -> f32 { ${pc === 2 ? "return bf16(x);" : "return x;"} }
fn rb(x: f32) -> f32 { ${pb === 2 ? "return bf16(x);" : "return x;"} }
// A u32 rounded to float32 (two exact halves, one rounded add).
fn f32_of(t: u32) -> f32 { return f32(t >> 16u) * 65536.0 + f32(t & 0xffffu); }
// t / e rounded to nearest float32, ties to even, by long division.
fn div_rn(t: u32, e: u32) -> f32 {
  if (t == 0u) { return 0.0; }
  var q = t / e;
  var r = t % e;
  var ex = 0i;
  loop {
    if (q >= 16777216u) { break; }
    let r2 = 2u * r;
    let bit = select(0u, 1u, r2 >= e);
    q = 2u * q + bit;
    r = r2 - bit * e;
    ex -= 1;
  }
  var sticky = r != 0u;
  loop {
    if (q < 33554432u) { break; }
    sticky = sticky || (q & 1u) != 0u;
    q = q >> 1u;
    ex += 1;
  }
  let guard = q & 1u;
  var m = q >> 1u;
  ex += 1;
  if (guard == 1u && (sticky || (m & 1u) == 1u)) { m += 1u; }
  return ldexp(f32(m), ex);
}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  for (var j = lid.x; j < E; j += ${WG}u) {
    let l = loads[j];
    ${addLoad}
  }
  if (params.apply == 0u) { return; }
  storageBarrier();
  if (lid.x == 0u) {
    var total = 0u;
    for (var j = 0u; j < E; j++) { total += u32(counts[j]); }
    total_w = total;
    ${exact ? "" : "mean_w = rc(div_rn(u32(rc(f32_of(total))), E));"}
  }
  workgroupBarrier();
  let total = workgroupUniformLoad(&total_w);
  if (total == 0u${exact ? "" : " || mean_w == 0.0"}) { return; }
  let q = total / E;
  let r = total % E;
  for (var j = lid.x; j < E; j += ${WG}u) {
    let c = counts[j];
    bias[j] = rb(bias[j] + ${step});
    counts[j] = ${exact ? "0u" : "0.0"};
  }
}`;
  return {
    key: `bias-update-precision:${E}:${rule}:${pc}:${pb}:${token}`,
    label:
      `loss-free ${rule} update of ${E} (${spec.countPrecision} counts, ${spec.biasPrecision} bias)`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * The precision program on host arrays: bias, loads and running counts go
 * up, the program runs, the bias (and the counts) come back.
 */
async function precisionUpdate(
  gpu: Gpu,
  args: LossFreeUpdateArgs,
): Promise<Float64Array> {
  const E = args.bias.length;
  const pc = args.countPrecision ?? "float64";
  const exact = pc === "float64";
  const counts = args.counts ?? new Float64Array(E);
  const bias = storage(gpu, "bias", 4 * E, Float32Array.from(args.bias));
  const loads = storage(gpu, "bias update loads", 4 * E, args.loads);
  const acc = storage(
    gpu,
    "bias update counts",
    4 * E,
    exact ? Uint32Array.from(counts) : Float32Array.from(counts),
  );
  const apply = args.apply ?? true;
  const words = new ArrayBuffer(16);
  new Float32Array(words, 0, 1)[0] = args.rate;
  new Uint32Array(words, 4, 1)[0] = apply ? 1 : 0;
  const p = uniforms(gpu, "bias update params", words);
  const program = biasUpdatePrecisionProgram({
    experts: E,
    rule: args.rule,
    biasPrecision: args.biasPrecision ?? "float64",
    countPrecision: pc,
    countAdd: args.countAdd ?? "batch",
  });
  const enc = gpu.device.createCommandEncoder({ label: "bias update" });
  dispatch(gpu, enc, program, [bias, loads, acc, p], WG);
  gpu.device.queue.submit([enc.finish()]);
  const [b, c] = await Promise.all([
    readBack(gpu, bias, 4 * E),
    readBack(gpu, acc, 4 * E),
  ]);
  gpu.pool.release(bias, loads, acc, p);
  args.bias.set(new Float32Array(b));
  if (args.counts) {
    args.counts.set(exact ? new Uint32Array(c) : new Float32Array(c));
  }
  return args.bias;
}

/**
 * The registered kernel on host arrays: the biases go up as float32, are
 * updated by the same program, and come back into `args.bias`; with
 * running counts or a reduced precision, by the precision program.
 */
async function lossFreeUpdateWebGpu(
  args: LossFreeUpdateArgs,
  env: { gpu?: unknown },
): Promise<Float64Array> {
  const gpu = gpuOf(env);
  if (
    args.counts !== undefined ||
    (args.biasPrecision ?? "float64") !== "float64" ||
    (args.countPrecision ?? "float64") !== "float64" ||
    (args.countAdd ?? "batch") !== "batch"
  ) {
    return await precisionUpdate(gpu, args);
  }
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
    'trainTransformer() with backend "webgpu" (loss-free)',
  ],
});
