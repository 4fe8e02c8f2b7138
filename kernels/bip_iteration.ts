// One BIP iteration on the GPU (docs/algorithms.md section 6). Token prices: one
// thread per token keeps its K+1 largest of s - q. Expert prices need the
// (C+1)-th largest of a column over all tokens: a radix select on the
// float bits, four passes of 8 bits, each a histogram (one thread per
// token, atomic counts per expert and digit, only for values whose higher
// digits match the prefix chosen so far) then a select step (one thread
// per expert walks its 256 bins from the top). The "webgpu" kernel of the
// bipRound op (lib/ops/bip_round.ts) with clipped token prices, in float32.
import type { ScoreMatrix } from "../lib/types.ts";
import { registerKernel } from "../lib/ops/registry.ts";
import {
  type BipRoundArgs,
  bipRoundOp,
  type BipRoundResult,
} from "../lib/ops/bip_round.ts";
import { type Gpu, gpuOf } from "./device.ts";
import { type RowChunk, uploadRows, words } from "./chunks.ts";
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

const WG = 64;

// Float bits to an unsigned key with the same order, and back.
const KEYS = `
fn to_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn from_key(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}`;

const PARAMS = "struct Params { rows: u32, first: u32, shift: u32, pad: u32 }";

/** Token prices: `p[i] = max(0, (K+1)-th largest of s[i][j] - q[j])`. */
function tokenPriceProgram(E: number, k: number): GpuProgram {
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
      // Nested tests: lavapipe mis-runs '||' here (the read of tv[t - 1] at t = 0).
    loop { if (t == 0u) { break; } if (!(v > tv[t - 1u])) { break; } tv[t] = tv[t - 1u]; t--; }
      tv[t] = v;
    }
  }
  let v = tv[R - 1u];
  p[params.first + i] = select(0.0, v, v > 0.0);
}`;
  return {
    key: `bip-p:${E}:${k}`,
    label: `bip token prices ${E}/${k}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Histogram of one 8-bit digit of `s - p` per expert, among prefix matches. */
function histogramProgram(E: number): GpuProgram {
  const wgsl = `${FLAT_ID}${KEYS}
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> p: array<f32>;
@group(0) @binding(3) var<storage, read> prefix: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  let pi = p[params.first + i];
  let shift = params.shift;
  for (var j = 0u; j < E; j++) {
    let key = to_key(scores[i * E + j] - pi);
    // Shifts of 32 are undefined in WGSL: the first pass matches all.
    if (shift == 24u || (key >> (shift + 8u)) == (prefix[j] >> (shift + 8u))) {
      atomicAdd(&hist[j * 256u + ((key >> shift) & 255u)], 1u);
    }
  }
}`;
  return {
    key: `bip-hist:${E}`,
    label: `bip histogram ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Per expert: the digit holding the wanted rank; clears the bins. */
function selectProgram(E: number): GpuProgram {
  const wgsl = `
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> prefix: array<u32>;
@group(0) @binding(1) var<storage, read_write> rank: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= E) { return; }
  var want = rank[j];
  var d = 256u;
  var found = false;
  loop {
    if (d == 0u || found) { break; }
    d--;
    let c = hist[j * 256u + d];
    if (c >= want) { found = true; } else { want -= c; }
  }
  prefix[j] = prefix[j] | (d << params.shift);
  rank[j] = want;
  for (var b = 0u; b < 256u; b++) { hist[j * 256u + b] = 0u; }
}`;
  return {
    key: `bip-select:${E}`,
    label: `bip select ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Expert prices from the selected keys: `q[j] = max(0, value)`. */
function expertPriceProgram(E: number): GpuProgram {
  const wgsl = `${KEYS}
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
  // params.rows == 1 means capacity >= tokens: no expert constraint binds.
  q[j] = select(select(0.0, v, v > 0.0), 0.0, params.rows == 1u);
}`;
  return {
    key: `bip-q:${E}`,
    label: `bip expert prices ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/**
 * One BIP round on the GPU from expert prices `q` (float32): token prices
 * `p` (tokens) and new expert prices `q` (experts), clipped at 0, in
 * float32 arithmetic. `p = 0` when `k >= experts`, `q = 0` when
 * `capacity >= tokens`.
 */
export async function bipIterationOnGpu(
  gpu: Gpu,
  scores: ScoreMatrix,
  q: Float32Array,
  k: number,
  capacity: number,
  timer?: GpuTimer,
): Promise<{ p: Float32Array; q: Float32Array }> {
  const { tokens: N, experts: E } = scores;
  if (k + 1 > 33) {
    throw new RangeError(`GPU BIP takes k <= 32: current value is ${k}`);
  }
  if (N === 0) return { p: new Float32Array(0), q: new Float32Array(E) };
  const { device, pool } = gpu;
  const chunks: RowChunk[] = uploadRows(gpu, scores, WG);
  const pBuf = storage(gpu, "bip p", 4 * N);
  const qBuf = storage(gpu, "bip q", 4 * E, q);
  const prefix = storage(gpu, "bip prefix", 4 * E);
  const rank = storage(
    gpu,
    "bip rank",
    4 * E,
    new Uint32Array(E).fill(capacity + 1),
  );
  const hist = storage(gpu, "bip histogram", 4 * 256 * E);
  const params = uniformSet(gpu, "bip params");
  const u = params.make;
  const enc = device.createCommandEncoder({ label: "bip iteration" });
  enc.clearBuffer(prefix, 0, 4 * E);
  enc.clearBuffer(hist, 0, 4 * 256 * E);
  if (k >= E) enc.clearBuffer(pBuf, 0, 4 * N);
  else {
    for (const c of chunks) {
      dispatch(
        gpu,
        enc,
        tokenPriceProgram(E, k),
        [
          span(pBuf, 4 * N),
          span(c.buffer, 4 * c.rows * E),
          span(qBuf, 4 * E),
          u(words(c.rows, c.from)),
        ],
        c.rows,
        timer,
      );
    }
  }
  const rowsParam = capacity >= N ? 1 : 0;
  if (!rowsParam) {
    for (let shift = 24; shift >= 0; shift -= 8) {
      for (const c of chunks) {
        dispatch(
          gpu,
          enc,
          histogramProgram(E),
          [
            span(hist, 4 * 256 * E),
            span(c.buffer, 4 * c.rows * E),
            span(pBuf, 4 * N),
            span(prefix, 4 * E),
            u(words(c.rows, c.from, shift)),
          ],
          c.rows,
          timer,
        );
      }
      dispatch(
        gpu,
        enc,
        selectProgram(E),
        [
          span(prefix, 4 * E),
          span(rank, 4 * E),
          span(hist, 4 * 256 * E),
          u(words(0, 0, shift)),
        ],
        E,
        timer,
      );
    }
  }
  dispatch(
    gpu,
    enc,
    expertPriceProgram(E),
    [
      span(qBuf, 4 * E),
      span(prefix, 4 * E),
      u(words(rowsParam)),
    ],
    E,
    timer,
  );
  device.queue.submit([enc.finish()]);
  const [pOut, qOut] = await Promise.all([
    readBack(gpu, pBuf, 4 * N),
    readBack(gpu, qBuf, 4 * E),
  ]);
  pool.release(
    pBuf,
    qBuf,
    prefix,
    rank,
    hist,
    ...params.buffers,
    ...chunks.map((c) => c.buffer),
  );
  return { p: new Float32Array(pOut), q: new Float32Array(qOut) };
}

/**
 * The registered kernel: `args.rounds` rounds from `args.prices` (as
 * float32), each the program above; the prices come back into
 * `args.prices`.
 */
async function bipRoundWebGpu(
  args: BipRoundArgs,
  env: { gpu?: unknown; timer?: unknown },
): Promise<BipRoundResult> {
  const gpu = gpuOf(env);
  const { scores, k, capacity } = args;
  let q: Float32Array = Float32Array.from(args.prices);
  let p: Float32Array = new Float32Array(scores.tokens);
  for (let t = 0; t < args.rounds; t++) {
    ({ p, q } = await bipIterationOnGpu(
      gpu,
      scores,
      q,
      k,
      capacity,
      env.timer as GpuTimer | undefined,
    ));
  }
  args.prices.set(q);
  return { prices: args.prices, tokenPrices: Float64Array.from(p) };
}

registerKernel({
  op: bipRoundOp,
  backend: "webgpu",
  run: bipRoundWebGpu,
  refuses: (a) =>
    a.clip !== true
      ? "the GPU round clips token prices at 0"
      : a.k > 32
      ? `k = ${a.k} exceeds the GPU round's 32`
      : undefined,
  callers: ["bench/backends_bench.ts (a device bip balancer is to come)"],
});
