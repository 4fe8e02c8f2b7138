// Order statistics of columns on the GPU: for every expert j, the R[j]-th
// largest of the values v(i, j) over the tokens i that are members of the
// column, by a radix select on the float bits (four passes of 8 bits: a
// histogram, one thread per token with atomic counts per expert and digit
// among the values whose higher digits match the prefix chosen so far,
// then one thread per expert walks its 256 bins from the top). The select
// also leaves, per expert, how many values equal the R-th (`eq`) and how
// many of those the R largest take (`rank`, the ties). Where fewer are
// taken than there are, a tie cutoff finds the token of the last one taken
// in token order (counts per block of 256 tokens, then a walk), so that
// callers keep the earliest ties, as the CPU kernels do.
//
// Sources of v: `shifted` (s[i][j] - p[i], every expert: the dual rounds),
// `scores` (s[i][j], every expert: Expert Choice), `slots` (the experts a
// routing gave token i, with v the slot's routing weight, or 0 for every
// slot when `constant`: capacity dropping by routing probability or by
// position). For `slots` the values buffer bound as `scores` is the
// routing's weights (tokens x k), not the score rows.
import type { Gpu } from "./device.ts";
import {
  dispatch,
  FLAT_ID,
  type GpuProgram,
  type GpuTimer,
  span,
} from "./program.ts";
import type { ResidentScores, UniformMaker } from "./resident_scores.ts";
import { words4 } from "./resident_scores.ts";

const WG = 64, BLOCK = 256;

/** Where the values of a column come from. */
export type ColumnSource =
  | { kind: "shifted" }
  | { kind: "scores" }
  | { kind: "slots"; k: number; constant: boolean };

/** Whether the values bound as `scores` are a routing's weights (tokens x k). */
function readsWeights(source: ColumnSource): boolean {
  return source.kind === "slots" && !source.constant;
}

/**
 * WGSL: float bits to an unsigned key of the same order (-0 as +0, so that
 * keys are equal exactly when the floats are), and back.
 */
export const ORDER_KEYS = `
fn to_key(v: f32) -> u32 {
  var b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) == 0u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn from_key(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}`;

const PARAMS =
  "struct Params { rows: u32, first: u32, shift: u32, blocks: u32 }";

function sourceKey(source: ColumnSource): string {
  return source.kind === "slots"
    ? `slots${source.k}${source.constant ? "c" : ""}`
    : source.kind;
}

/** Binding of the source's extra input (p or the routing's experts), or "". */
function sourceBinding(source: ColumnSource, n: number): string {
  if (source.kind === "shifted") {
    return `@group(0) @binding(${n}) var<storage, read> p: array<f32>;`;
  }
  if (source.kind === "slots") {
    return `@group(0) @binding(${n}) var<storage, read> slots: array<i32>;`;
  }
  return "";
}

/**
 * WGSL that calls `visit(j, v)` for every member of row `i` (chunk-local),
 * `j` a u32 and `v` an f32.
 */
function members(source: ColumnSource, visit: string): string {
  switch (source.kind) {
    case "shifted":
      return `let pi = p[params.first + i];
  for (var j = 0u; j < E; j++) { let v = scores[i * E + j] - pi; ${visit} }`;
    case "scores":
      return `for (var j = 0u; j < E; j++) { let v = scores[i * E + j]; ${visit} }`;
    case "slots":
      return `for (var r = 0u; r < ${source.k}u; r++) {
    let js = slots[i * ${source.k}u + r];
    if (js < 0) { continue; }
    let j = u32(js);
    let v = ${source.constant ? "0.0" : `scores[i * ${source.k}u + r]`};
    ${visit}
  }`;
  }
}

function histogramProgram(E: number, source: ColumnSource): GpuProgram {
  const wgsl = `${FLAT_ID}${ORDER_KEYS}
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> prefix: array<u32>;
@group(0) @binding(3) var<storage, read> rank: array<u32>;
${sourceBinding(source, 4)}
@group(0) @binding(${
    source.kind === "scores" ? 4 : 5
  }) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat_id(wid, nwg, lid, ${WG}u);
  if (i >= params.rows) { return; }
  let shift = params.shift;
  _ = &scores; // kept in the layout when the values do not read it
  ${
    members(
      source,
      `if (rank[j] > 0u) {
      let key = to_key(v);
      // Shifts of 32 are undefined in WGSL: the first pass matches all.
      if (shift == 24u || (key >> (shift + 8u)) == (prefix[j] >> (shift + 8u))) {
        atomicAdd(&hist[j * 256u + ((key >> shift) & 255u)], 1u);
      }
    }`,
    )
  }
}`;
  return {
    key: `colsel-hist:${E}:${sourceKey(source)}`,
    label: `column select histogram ${E} ${sourceKey(source)}`,
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
@group(0) @binding(2) var<storage, read_write> eq: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= E) { return; }
  var want = rank[j];
  if (want == 0u) { return; }
  var d = 256u;
  var c = 0u;
  loop {
    if (d == 0u) { break; }
    d--;
    c = hist[j * 256u + d];
    if (c >= want) { break; }
    want -= c;
  }
  prefix[j] = prefix[j] | (d << params.shift);
  rank[j] = want;
  if (params.shift == 0u) { eq[j] = c; }
  for (var b = 0u; b < 256u; b++) { hist[j * 256u + b] = 0u; }
}`;
  return {
    key: `colsel-select:${E}`,
    label: `column select ${E}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Per block of 256 tokens: how many members equal their expert's key. */
function tieCountProgram(E: number, source: ColumnSource): GpuProgram {
  const wgsl = `${ORDER_KEYS}
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> block_eq: array<u32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> prefix: array<u32>;
@group(0) @binding(3) var<storage, read> rank: array<u32>;
@group(0) @binding(4) var<storage, read> eq: array<u32>;
${sourceBinding(source, 5)}
@group(0) @binding(${
    source.kind === "scores" ? 5 : 6
  }) var<uniform> params: Params;
var<workgroup> count: array<atomic<u32>, E>;

@compute @workgroup_size(${BLOCK})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  for (var j = lid.x; j < E; j += ${BLOCK}u) { atomicStore(&count[j], 0u); }
  workgroupBarrier();
  let local_block = wid.y * nwg.x + wid.x;
  let i = local_block * ${BLOCK}u + lid.x;
  _ = &scores;
  if (i < params.rows) {
    ${
    members(
      source,
      `if (rank[j] > 0u && eq[j] > rank[j] && to_key(v) == prefix[j]) { atomicAdd(&count[j], 1u); }`,
    )
  }
  }
  workgroupBarrier();
  let block = params.first / ${BLOCK}u + local_block;
  if (local_block * ${BLOCK}u < params.rows) {
    for (var j = lid.x; j < E; j += ${BLOCK}u) {
      block_eq[block * E + j] = atomicLoad(&count[j]);
    }
  }
}`;
  return {
    key: `colsel-ties:${E}:${sourceKey(source)}`,
    label: `column select tie counts ${E} ${sourceKey(source)}`,
    wgsl,
    workgroupSize: BLOCK,
  };
}

/**
 * Per expert: the token of the last tie taken (0xffffffff when all ties
 * are), found in the chunk that holds it.
 */
function tieCutoffProgram(E: number, source: ColumnSource): GpuProgram {
  const take = `if (to_key(v) == key) {
      want--;
      if (want == 0u) { cutoff[jj] = params.first + i; return; }
    }`;
  const visit = source.kind === "slots"
    ? `for (var r = 0u; r < ${source.k}u; r++) {
      if (slots[i * ${source.k}u + r] != i32(jj)) { continue; }
      let v = ${source.constant ? "0.0" : `scores[i * ${source.k}u + r]`};
      ${take}
    }`
    : `let v = scores[i * E + jj]${
      source.kind === "shifted" ? " - p[params.first + i]" : ""
    };
    ${take}`;
  const wgsl = `${ORDER_KEYS}
const E: u32 = ${E}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> cutoff: array<u32>;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> prefix: array<u32>;
@group(0) @binding(3) var<storage, read> rank: array<u32>;
@group(0) @binding(4) var<storage, read> eq: array<u32>;
@group(0) @binding(5) var<storage, read> block_eq: array<u32>;
${sourceBinding(source, 6)}
@group(0) @binding(${
    source.kind === "scores" ? 6 : 7
  }) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let jj = gid.x;
  if (jj >= E) { return; }
  var want = rank[jj];
  if (want == 0u) { return; }
  if (eq[jj] == want) { cutoff[jj] = 0xffffffffu; return; }
  let key = prefix[jj];
  _ = &scores;
  var b = 0u;
  loop {
    if (b >= params.blocks) { return; }
    let c = block_eq[b * E + jj];
    if (c >= want) { break; }
    want -= c;
    b++;
  }
  let lo = b * ${BLOCK}u;
  if (lo < params.first || lo >= params.first + params.rows) { return; }
  let end = min(lo + ${BLOCK}u, params.first + params.rows) - params.first;
  for (var i = lo - params.first; i < end; i++) {
    ${visit}
  }
}`;
  return {
    key: `colsel-cutoff:${E}:${sourceKey(source)}`,
    label: `column select tie cutoff ${E} ${sourceKey(source)}`,
    wgsl,
    workgroupSize: WG,
  };
}

/** Buffers of a column select; `hist` must be zero before the first use. */
export interface ColumnSelectBuffers {
  scores: ResidentScores;
  /** Token prices (tokens, f32), source `shifted`. */
  p?: GPUBuffer;
  /** A routing's experts (tokens x k, i32), source `slots`. */
  slots?: GPUBuffer;
  /** A routing's weights (tokens x k, f32), the values of source `slots`. */
  slotWeights?: GPUBuffer;
  /** In: wanted rank per expert, 1-based (0: skip the expert). Out: ties taken. */
  rank: GPUBuffer;
  /** Out: the key of the rank-th largest per expert (cleared here). */
  prefix: GPUBuffer;
  /** Out: how many values equal it, per expert. */
  eq: GPUBuffer;
  /** Scratch: 256 bins per expert, zero before and after. */
  hist: GPUBuffer;
  /** With ties: per-block counts (blocks x experts) and the cutoff token per expert. */
  blockEq?: GPUBuffer;
  cutoff?: GPUBuffer;
}

/** Bytes of the histogram scratch for `experts` experts. */
export function histogramBytes(experts: number): number {
  return 4 * 256 * experts;
}

/** Blocks of 256 tokens in a batch of `tokens`. */
export function blocksOf(tokens: number): number {
  return Math.max(1, Math.ceil(tokens / BLOCK));
}

/**
 * Records the select of source `source` (and, when `b.cutoff` is given,
 * the tie cutoff) into `encoder`.
 */
export function recordColumnSelect(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  source: ColumnSource,
  b: ColumnSelectBuffers,
  uniform: UniformMaker,
  timer?: GpuTimer,
): void {
  const { experts: E, tokens: N, chunks } = b.scores;
  const k = source.kind === "slots" ? source.k : 0;
  const extra = (c: { from: number; rows: number }) =>
    source.kind === "shifted"
      ? [span(b.p!, 4 * N)]
      : source.kind === "slots"
      ? [{ buffer: b.slots!, offset: 4 * c.from * k, size: 4 * c.rows * k }]
      : [];
  const values = (c: { buffer: GPUBuffer; from: number; rows: number }) =>
    readsWeights(source)
      ? {
        buffer: b.slotWeights!,
        offset: 4 * c.from * k,
        size: 4 * c.rows * k,
      }
      : span(c.buffer, 4 * c.rows * E);
  encoder.clearBuffer(b.prefix, 0, 4 * E);
  const hist = histogramProgram(E, source);
  const select = selectProgram(E);
  for (let shift = 24; shift >= 0; shift -= 8) {
    for (const c of chunks) {
      dispatch(
        gpu,
        encoder,
        hist,
        [
          span(b.hist, histogramBytes(E)),
          values(c),
          span(b.prefix, 4 * E),
          span(b.rank, 4 * E),
          ...extra(c),
          uniform(words4(c.rows, c.from, shift, 0)),
        ],
        c.rows,
        timer,
      );
    }
    dispatch(
      gpu,
      encoder,
      select,
      [
        span(b.prefix, 4 * E),
        span(b.rank, 4 * E),
        span(b.eq, 4 * E),
        span(b.hist, histogramBytes(E)),
        uniform(words4(0, 0, shift, 0)),
      ],
      E,
      timer,
    );
  }
  if (!b.cutoff) return;
  const blocks = blocksOf(N);
  const ties = tieCountProgram(E, source);
  const cut = tieCutoffProgram(E, source);
  for (const c of chunks) {
    dispatch(
      gpu,
      encoder,
      ties,
      [
        span(b.blockEq!, 4 * blocks * E),
        values(c),
        span(b.prefix, 4 * E),
        span(b.rank, 4 * E),
        span(b.eq, 4 * E),
        ...extra(c),
        uniform(words4(c.rows, c.from, 0, blocks)),
      ],
      c.rows,
      timer,
    );
  }
  for (const c of chunks) {
    dispatch(
      gpu,
      encoder,
      cut,
      [
        span(b.cutoff, 4 * E),
        values(c),
        span(b.prefix, 4 * E),
        span(b.rank, 4 * E),
        span(b.eq, 4 * E),
        span(b.blockEq!, 4 * blocks * E),
        ...extra(c),
        uniform(words4(c.rows, c.from, 0, blocks)),
      ],
      E,
      timer,
    );
  }
}

/**
 * Records `rank[j] = R` for every expert, or, with `loads`, `R` where
 * `loads[j] > R` and 0 elsewhere (only overloaded experts are selected).
 */
export function recordRankInit(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  experts: number,
  R: number,
  rank: GPUBuffer,
  uniform: UniformMaker,
  loads?: GPUBuffer,
  timer?: GpuTimer,
): void {
  const program: GpuProgram = {
    key: `colsel-rank:${experts}:${loads ? "over" : "all"}`,
    label: `column select ranks ${experts}`,
    workgroupSize: WG,
    wgsl: `
const E: u32 = ${experts}u;
${PARAMS}
@group(0) @binding(0) var<storage, read_write> rank: array<u32>;
${loads ? "@group(0) @binding(1) var<storage, read> loads: array<u32>;" : ""}
@group(0) @binding(${loads ? 2 : 1}) var<uniform> params: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= E) { return; }
  rank[j] = ${
      loads ? "select(0u, params.rows, loads[j] > params.rows)" : "params.rows"
    };
}`,
  };
  dispatch(
    gpu,
    encoder,
    program,
    [
      span(rank, 4 * experts),
      ...(loads ? [span(loads, 4 * experts)] : []),
      uniform(words4(R, 0, 0, 0)),
    ],
    experts,
    timer,
  );
}

/**
 * Largest expert count of the column select: its tie counts sit in
 * workgroup memory, one word per expert.
 */
export const COLUMN_MAX_EXPERTS = 4096;

/** Why the column select cannot take `experts` experts, or `undefined`. */
export function columnSelectRefuses(experts: number): string | undefined {
  return experts > COLUMN_MAX_EXPERTS
    ? `${experts} experts exceed the GPU kernel's ${COLUMN_MAX_EXPERTS}`
    : undefined;
}
