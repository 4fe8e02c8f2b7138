import {
  checkChoice,
  checkInteger,
  checkNumber,
  checkSeed,
} from "../validate.ts";
import { type Gate, gateInto, GATES, sqrtSoftplus } from "../scores/gate.ts";
import { Rng, searchCdf } from "../scores/rng.ts";
import { fdlibmExp, fdlibmLog } from "../numeric/fdlibm.ts";
import type { ScoreMatrix } from "../types.ts";
import type { HostBackend } from "../ops/host.ts";
import { sharedHeapFloat32, wasmRuntime } from "../wasm/runtime.ts";
import type { Workload } from "./workload.ts";

/** Options of {@linkcode syntheticWorkload}; every field has a default. */
export interface SyntheticOptions {
  /** Seed of everything random: an integer (`|seed| < 2^53`). Default `1`. */
  seed?: number;
  /** Steps (batches). Default `200`. */
  steps?: number;
  /** MoE layers. Default `8`. */
  layers?: number;
  /** Tokens per batch. Default `4096`. */
  tokens?: number;
  /** Routed experts. Default `64`. */
  experts?: number;
  /** Gate applied to the logits. Default `"sigmoid"`. */
  gate?: Gate;
  /** Number of token clusters (kinds of tokens). Default `48`. */
  clusters?: number;
  /** Zipf exponent of the cluster frequencies. Default `1`. */
  zipf?: number;
  /** Preferred experts per cluster and layer. Default `6` (at most the number of experts). */
  preferred?: number;
  /** Logit boost of a cluster's preferred experts. Default `1`. */
  affinity?: number;
  /** Standard deviation of each expert's base logit (router bias per layer). Default `0.2`. */
  popularity?: number;
  /** Standard deviation of the per-token, per-expert logit noise. Default `1`. */
  noise?: number;
  /** Standard deviation per step of the random walk of cluster log-frequencies. Default `0.02`. */
  drift?: number;
  /** Logit offset of every expert (sets the range of sigmoid scores). Default `-3.5`. */
  offset?: number;
  /**
   * Where the scores are computed: `"wasm"` (WebAssembly SIMD,
   * lib/wasm/src/scores.c, where the engine runs it) or `"cpu"`
   * (TypeScript, the reference). Both give the same scores bit for bit.
   * Default `"wasm"`. Not part of {@linkcode Workload.describe}.
   */
  host?: HostBackend;
}

const DEFAULTS: Required<Omit<SyntheticOptions, "host">> = {
  seed: 1,
  steps: 200,
  layers: 8,
  tokens: 4096,
  experts: 64,
  gate: "sigmoid",
  clusters: 48,
  zipf: 1.0,
  preferred: 6,
  affinity: 1,
  popularity: 0.2,
  noise: 1,
  drift: 0.02,
  offset: -3.5,
};

/** The defaults of {@linkcode syntheticWorkload}. */
export const SYNTHETIC_DEFAULTS: Readonly<
  Required<Omit<SyntheticOptions, "host">>
> = DEFAULTS;

// Standard normal quantiles at (i + 0.5) / 4096: a fast, deterministic
// stand-in for normal draws in the per-score noise (tails cut at 3.7 sigma).
const NORMAL_BITS = 12;
/** The shift of a raw 32-bit draw down to a NORMAL_TABLE index. */
const NORMAL_SHIFT = 32 - NORMAL_BITS;
const NORMAL_TABLE = (() => {
  const n = 1 << NORMAL_BITS;
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) t[i] = normalQuantile((i + 0.5) / n);
  return t;
})();

/**
 * A synthetic workload that behaves like a trained router on real text:
 *
 * - each batch draws its tokens from `clusters` kinds of token whose
 *   frequencies follow a Zipf law (`P(rank r) ~ r^-zipf`, ranks shuffled);
 * - the log-frequencies drift as independent random walks, `drift` per step;
 * - each layer's router gives every expert a base logit
 *   (`offset + popularity * N(0,1)`) and every cluster `preferred` experts
 *   with `+affinity`;
 * - each token's logit is its cluster's plus `noise * N(0,1)` per expert
 *   (normal quantiles from a 4096-entry table, for speed);
 * - scores are the gate (`sigmoid` or `softmax`) of the logits.
 *
 * The same token batch goes through all layers of a step. Scores of
 * `(step, layer)` depend only on the seed, step and layer, and access is
 * fastest in step order.
 *
 * @param options See {@linkcode SyntheticOptions}.
 * @throws {RangeError} If a size is not a positive integer or a parameter is out of range.
 *
 * @example Greedy top-6 is imbalanced on the defaults
 * ```ts
 * import { syntheticWorkload, route, maxVio } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const w = syntheticWorkload({ steps: 1, layers: 1, tokens: 2048 });
 * const r = route(w.scores(0, 0), { k: 6 });
 * assert.ok(maxVio(r.loads) > 0.5);
 * ```
 */
export function syntheticWorkload(options: SyntheticOptions = {}): Workload {
  const { host = "wasm", ...given } = options;
  checkChoice("host", host, HOSTS);
  const o = { ...DEFAULTS, ...given };
  checkSeed("seed", o.seed);
  const steps = checkInteger("steps", o.steps, 1);
  const layers = checkInteger("layers", o.layers, 1);
  const tokens = checkInteger("tokens", o.tokens, 1);
  const E = checkInteger("experts", o.experts, 1);
  const gate = checkChoice("gate", o.gate, GATES);
  const C = checkInteger("clusters", o.clusters, 1);
  checkNumber("zipf", o.zipf, 0);
  const preferred = checkInteger(
    "preferred",
    options.preferred ?? Math.min(o.preferred, E),
    0,
    E,
  );
  checkNumber("affinity", o.affinity);
  checkNumber("popularity", o.popularity, 0);
  checkNumber("noise", o.noise, 0);
  checkNumber("drift", o.drift, 0);
  checkNumber("offset", o.offset);

  // Per-layer cluster centres: C x E logits.
  const setup = new Rng(hash(o.seed, 0x5eed, 0));
  const centres: Float32Array[] = [];
  for (let l = 0; l < layers; l++) {
    const base = new Float32Array(E);
    for (let j = 0; j < E; j++) {
      base[j] = o.offset + o.popularity * setup.normal();
    }
    const centre = new Float32Array(C * E);
    const perm = Int32Array.from({ length: E }, (_, j) => j);
    for (let c = 0; c < C; c++) {
      centre.set(base, c * E);
      setup.shuffle(perm);
      for (let p = 0; p < preferred; p++) centre[c * E + perm[p]] += o.affinity;
    }
    centres.push(centre);
  }
  // Cluster log-frequencies at step 0: Zipf over shuffled ranks.
  const rank = setup.shuffle(Int32Array.from({ length: C }, (_, c) => c));
  const logw0 = new Float64Array(C);
  for (let c = 0; c < C; c++) logw0[c] = -o.zipf * fdlibmLog(rank[c] + 1);

  const logw = Float64Array.from(logw0);
  const cdf = new Float64Array(C);
  const cluster = new Int32Array(tokens);
  let logits: Float32Array | undefined; // the TypeScript path's, on first use
  // Made on the first batch: on the WebAssembly host, in this thread's
  // shared heap where it has one (the route op's WebAssembly kernel then
  // reads the scores in place).
  let buffer: Float32Array | undefined;
  const scoresBuffer = () =>
    buffer ??= (host === "wasm" ? sharedHeapFloat32(tokens * E) : undefined) ??
      new Float32Array(tokens * E);
  let walkStep = 0;
  let batchStep = -1;

  function advanceTo(step: number): void {
    if (step < walkStep) {
      logw.set(logw0);
      walkStep = 0;
    }
    while (walkStep < step) {
      walkStep++;
      if (o.drift > 0) {
        const r = new Rng(hash(o.seed, 0xd41f7, walkStep));
        for (let c = 0; c < C; c++) logw[c] += o.drift * r.normal();
      }
    }
  }

  function drawBatch(step: number): void {
    advanceTo(step);
    let max = -Infinity;
    for (let c = 0; c < C; c++) if (logw[c] > max) max = logw[c];
    let total = 0;
    for (let c = 0; c < C; c++) {
      total += fdlibmExp(logw[c] - max);
      cdf[c] = total;
    }
    for (let c = 0; c < C; c++) cdf[c] /= total;
    cdf[C - 1] = 1;
    const r = new Rng(hash(o.seed, 0xba7c4, step));
    for (let i = 0; i < tokens; i++) cluster[i] = searchCdf(cdf, r.uniform());
    batchStep = step;
  }

  return {
    steps,
    layers,
    tokens,
    experts: E,
    scores(step: number, layer: number): ScoreMatrix {
      checkInteger("step", step, 0, steps - 1);
      checkInteger("layer", layer, 0, layers - 1);
      if (step !== batchStep) drawBatch(step);
      const centre = centres[layer];
      const seed = hash(o.seed, step + 1, layer + 1);
      const data = scoresBuffer();
      if (
        host === "wasm" &&
        wasmScores(seed, centre, cluster, o.noise, gate, data)
      ) {
        return { data, tokens, experts: E };
      }
      const r = new Rng(seed);
      const noise = o.noise;
      logits ??= new Float32Array(tokens * E);
      for (let i = 0; i < tokens; i++) {
        const c0 = cluster[i] * E;
        const b = i * E;
        for (let j = 0; j < E; j++) {
          logits[b + j] = centre[c0 + j] +
            noise * NORMAL_TABLE[r.nextU32() >>> NORMAL_SHIFT];
        }
      }
      gateInto(logits, E, gate, data);
      return { data, tokens, experts: E };
    },
    describe: () => ({ kind: "synthetic", ...o }),
  };
}

const HOSTS: readonly HostBackend[] = ["wasm", "cpu"];

/** moelab_synthetic_scores' gate codes (lib/wasm/src/scores.c). */
const WASM_GATE: Readonly<Record<Gate, number>> = {
  sigmoid: 1,
  softmax: 2,
  // Logits only: sqrt(log1p(exp(x))) runs in TypeScript after.
  sqrtsoftplus: 0,
};

/** Rows per call of the WebAssembly kernel: a block of about 64 KiB. */
const BLOCK_BYTES = 65536;

/**
 * One batch's scores on this thread's WebAssembly instance, into `out`
 * (tokens x experts): the same draws, logits and gate as the TypeScript
 * path, in blocks of rows copied out of the instance's memory. Returns
 * false (and writes nothing) where the engine has no WebAssembly SIMD.
 */
function wasmScores(
  seed: number,
  centre: Float32Array,
  cluster: Int32Array,
  noise: number,
  gate: Gate,
  out: Float32Array,
): boolean {
  const rt = wasmRuntime();
  if (!rt) return false;
  const tokens = cluster.length, E = out.length / tokens;
  const rows = Math.max(1, Math.min(tokens, Math.floor(BLOCK_BYTES / (4 * E))));
  const statePtr = rt.reserve("synthetic.state", 16);
  const centrePtr = rt.reserve("synthetic.centre", 4 * centre.length);
  const tablePtr = rt.reserve("synthetic.table", 4 * NORMAL_TABLE.length);
  const clusterPtr = rt.reserve("synthetic.cluster", 4 * rows);
  const blockPtr = rt.reserve("synthetic.block", 4 * rows * E);
  const scratchPtr = rt.reserve("synthetic.scratch", 16 * E);
  const expCentrePtr = rt.reserve("synthetic.expCentre", 8 * centre.length);
  const drawsPtr = rt.reserve("synthetic.draws", 16 * NORMAL_TABLE.length);
  // Views after every reserve: growing the memory detaches older ones.
  rt.f32(centrePtr, centre.length).set(centre);
  rt.f32(tablePtr, NORMAL_TABLE.length).set(NORMAL_TABLE);
  const clusterView = rt.i32(clusterPtr, rows);
  const block = rt.f32(blockPtr, rows * E);
  const run = rt.exports.moelab_synthetic_scores;
  rt.exports.moelab_rng_seed(seed, statePtr);
  const code = WASM_GATE[gate];
  // noise * draw for each table entry, and for the sigmoid exp(-centre)
  // and exp(-noise * draw): its exp from tables.
  rt.exports.moelab_synthetic_tables(
    centrePtr,
    gate === "sigmoid" ? centre.length : 0,
    tablePtr,
    NORMAL_TABLE.length,
    noise,
    expCentrePtr,
    drawsPtr,
  );
  // Every centre + product exact in float64 (noise 1: the products are
  // the table's float32 values), every logit within the tables' range:
  // the kernel's shorter steps, the same bits.
  const facts = rt.exports.moelab_synthetic_facts(
    centrePtr,
    centre.length,
    drawsPtr,
    NORMAL_TABLE.length,
  );
  for (let i = 0; i < tokens; i += rows) {
    const n = Math.min(rows, tokens - i);
    clusterView.set(cluster.subarray(i, i + n));
    run(
      statePtr,
      clusterPtr,
      centrePtr,
      drawsPtr,
      NORMAL_SHIFT,
      n,
      E,
      code,
      blockPtr,
      scratchPtr,
      expCentrePtr,
      0,
      facts,
    );
    out.set(n === rows ? block : block.subarray(0, n * E), i * E);
  }
  if (gate === "sqrtsoftplus") sqrtSoftplus(out, out);
  return true;
}

/** Mixes three integers into a 32-bit seed. */
export function hash(a: number, b: number, c: number): number {
  let h = 0x811c9dc5;
  for (
    const v of [a >>> 0, Math.floor(a / 4294967296) >>> 0, b >>> 0, c >>> 0]
  ) {
    h = Math.imul(h ^ v, 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
  }
  return h >>> 0;
}

/**
 * Inverse of the standard normal CDF (Acklam's rational approximation,
 * relative error below 1.2e-9).
 */
export function normalQuantile(p: number): number {
  const a = [
    -3.969683028665376e1,
    2.209460984245205e2,
    -2.759285104469687e2,
    1.38357751867269e2,
    -3.066479806614716e1,
    2.506628277459239,
  ];
  const b = [
    -5.447609879822406e1,
    1.615858368580409e2,
    -1.556989798598866e2,
    6.680131188771972e1,
    -1.328068155288572e1,
  ];
  const c = [
    -7.784894002430293e-3,
    -3.223964580411365e-1,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [
    7.784695709041462e-3,
    3.224671290700398e-1,
    2.445134137142996,
    3.754408661907416,
  ];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * fdlibmLog(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q +
      c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) *
    q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
