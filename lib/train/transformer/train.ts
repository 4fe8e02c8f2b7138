import {
  checkChoice,
  checkInteger,
  checkNumber,
  show,
} from "../../validate.ts";
import { maxVio } from "../../metrics/load_metrics.ts";
import type { Balancer } from "../../route/balancer.ts";
import { createBalancer } from "../../route/registry.ts";
import { createRouting, routeInto } from "../../route/route.ts";
import { Rng } from "../../scores/rng.ts";
import type { Routing, ScoreMatrix } from "../../types.ts";
import { requireKernel } from "../../ops/registry.ts";
import { routeOp } from "../../ops/route.ts";
import { lossFreeUpdateOp } from "../../ops/loss_free_update.ts";
import { bipRoundOp } from "../../ops/bip_round.ts";
import { type BipOptions, bipSettings } from "../../route/bip.ts";
import { capacityOf } from "../../select/capacity.ts";
import {
  type LossFreeOptions,
  lossFreeSettings,
  scheduledRate,
} from "../../route/loss_free.ts";
import { gpuEnv } from "./_kernels.ts";
import { parseTrainMethod, type TrainMethod } from "../method.ts";
import {
  createTransformer,
  isMoeBlock,
  type LmBackend,
  type ResolvedTransformerConfig,
  type TransformerConfig,
  type TransformerModel,
} from "./model.ts";
import {
  createTransformerWorkspace,
  type LmRouterObjective,
  type LmSelect,
  transformerStep,
  type TransformerWorkspace,
} from "./step.ts";
import { cosPi, fdlibmExp } from "../../numeric/fdlibm.ts";

/** Token streams to train and validate on (e.g. from {@linkcode loadBrownTokens}). */
export interface TokenCorpus {
  /** Training tokens. */
  train: Int32Array;
  /** Validation tokens. */
  valid: Int32Array;
}

/** Options of {@linkcode trainTransformer}: the model's shape and the run's. */
export interface TransformerTrainOptions extends TransformerConfig {
  /** Balancing method, see {@linkcode parseTrainMethod}. Default `"none"`. */
  method?: string | TrainMethod;
  /** Seed of the initial weights and of the batch order. Default `1`. */
  seed?: number;
  /** Optimizer steps. Default `200`. */
  steps?: number;
  /** Sequences per batch. Default `8`. */
  batchSeqs?: number;
  /** Peak Adam learning rate. Default `3e-3`. */
  lr?: number;
  /** Linear warm-up steps, then cosine decay to `lr / 10`. Default `steps / 20` rounded. */
  warmup?: number;
  /** Global gradient-norm clip; `0` for none. Default `1`. */
  clip?: number;
  /** Validation tokens (rounded down to whole sequences). Default `16384`. */
  validTokens?: number;
  /**
   * Tokens routed together: each batch is cut into chunks of this many
   * tokens and a non-causal method (Expert Choice, BIP) balances each chunk
   * on its own. Must divide `batchSeqs * seqLen`. Default: the whole batch.
   */
  routeChunk?: number;
  /**
   * Validation always routes by top-K of the scores plus the method's
   * biases frozen at their last value (causal, as a deployed model routes).
   * With `leakyValidation`, a balancer's run is also validated with the
   * balancer itself routing chunks of `routeChunk` tokens (for Expert
   * Choice a token's routing then sees later tokens), in
   * {@linkcode TransformerRun.methodRouted}. Default `false`.
   */
  leakyValidation?: boolean;
  /** Kernels: `"cpu"`, `"cpu-threads"` or `"webgpu"`. Default `"cpu"`. */
  backend?: LmBackend;
  /** Threads of the `"cpu-threads"` kernels, the calling one included. Default: the logical cores. */
  threads?: number;
  /** Called after every step with its number (from 1) and training loss. */
  onStep?: (step: number, loss: number) => void;
}

/** The outcome of one {@linkcode trainTransformer} run. */
export interface TransformerRun {
  /** The method's label. */
  method: string;
  /** The seed. */
  seed: number;
  /** Validation cross-entropy, nats per token. */
  loss: number;
  /** Validation perplexity per token, `exp(loss)`. */
  perplexity: number;
  /** Validation loads per MoE block, summed over the validation set. */
  loads: Int32Array[];
  /** MaxVio of the validation loads, mean over MoE blocks (MaxVio_global). */
  maxVioGlobal: number;
  /** Mean MaxVio_batch over the training steps (each step: mean over MoE blocks). */
  maxVioBatch: number;
  /** Per step: training cross-entropy, router objective, MaxVio_batch. */
  curve: { loss: Float64Array; aux: Float64Array; maxVioBatch: Float64Array };
  /** The bias method's final biases per MoE block (absent without one). */
  biases?: Float64Array[];
  /** Validation with the balancer routing chunks (only with `leakyValidation` and a balancer). */
  methodRouted?: { loss: number; perplexity: number; maxVioGlobal: number };
  /** Mean training cross-entropy over the last tenth of the steps. */
  finalTrainLoss: number;
  /** Wall time of the training steps, seconds. */
  seconds: number;
  /** Training tokens per second. */
  tokensPerSecond: number;
  /** The trained model. */
  model: TransformerModel;
}

/** The most validation tokens a run evaluates (2^20). */
const MAX_VALID_TOKENS = 2 ** 20;

// Adam with bias correction and global-norm clipping over float32
// parameters (moments in float64), as ../adam.ts over float64.
class Adam32 {
  #m: Float64Array;
  #v: Float64Array;
  #p1 = 1;
  #p2 = 1;
  constructor(
    size: number,
    readonly clip: number,
    readonly b1 = 0.9,
    readonly b2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.#m = new Float64Array(size);
    this.#v = new Float64Array(size);
  }
  step(p: Float32Array, g: Float32Array, lr: number): number {
    let ss = 0;
    for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
    const norm = Math.sqrt(ss);
    const scale = this.clip > 0 && norm > this.clip ? this.clip / norm : 1;
    const { b1, b2, eps } = this, m = this.#m, v = this.#v;
    // beta^t as running products: `**` is not the same on every engine
    // (0.9 ** 4 is 0.6561 on Deno, 0.6561000000000001 on Bun).
    this.#p1 *= b1;
    this.#p2 *= b2;
    const c1 = 1 - this.#p1, c2 = 1 - this.#p2;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] * scale;
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      p[i] -= lr * (m[i] / c1) / (Math.sqrt(v[i] / c2) + eps);
    }
    return norm;
  }
}

/** Routing buffers of one MoE block, kept across the step for the update. */
interface LayerRouting {
  routing: Routing;
  scores: ScoreMatrix;
}

// Copies `src` rows into `dst` starting at token `at`; adds the loads.
function copyRouting(src: Routing, dst: Routing, at: number): void {
  dst.experts.set(src.experts, at * dst.k);
  dst.weights.set(src.weights, at * dst.k);
  for (let j = 0; j < src.loads.length; j++) dst.loads[j] += src.loads[j];
}

/**
 * The selection rule of a method over MoE blocks: a balancer's `route` on
 * chunks of `chunk` tokens, or plain top-K plus `bias` per block.
 */
function makeSelect(
  c: ResolvedTransformerConfig,
  balancer: Balancer | undefined,
  bias: Float64Array[] | undefined,
  chunk: number | undefined,
  kept: LayerRouting[],
  backend: LmBackend = "cpu",
  mode: { multiply: boolean; normalize: boolean } = {
    multiply: false,
    normalize: false,
  },
): LmSelect {
  return (layer: number, s: ScoreMatrix): Routing | Promise<Routing> => {
    const n = s.tokens, E = c.experts;
    if (!balancer) {
      const out = kept[layer]?.routing.experts.length === n * c.topK
        ? kept[layer].routing
        : createRouting(n, c.topK, E);
      kept[layer] = { routing: out, scores: s };
      if (backend === "webgpu") {
        // Top-K (plus frozen biases) by the route op's WebGPU kernel: the
        // same selections as the CPU's on the same float32 scores.
        return gpuEnv().then(async (env) => {
          await requireKernel(routeOp, "webgpu").run({
            scores: s,
            k: c.topK,
            bias: bias?.[layer],
            multiply: mode.multiply,
            normalize: mode.normalize,
            scale: 1,
            groups: 1,
            topGroups: 1,
            out,
          }, env);
          return out;
        });
      }
      routeInto(s, c.topK, out, bias ? { bias: bias[layer], ...mode } : mode);
      return out;
    }
    const size = chunk ?? n;
    if (n % size !== 0) {
      throw new RangeError(
        `routeChunk must divide the tokens of a batch (${n}): current value is ${size}`,
      );
    }
    let out: Routing | undefined;
    for (let at = 0; at < n; at += size) {
      const part = balancer.route(layer, {
        data: s.data.subarray(at * E, (at + size) * E),
        tokens: size,
        experts: E,
      });
      if (out === undefined) {
        const prev = kept[layer]?.routing;
        out = prev && prev.k === part.k && prev.experts.length === n * part.k
          ? prev
          : createRouting(n, part.k, E);
        out.loads.fill(0);
      }
      copyRouting(part, out, at);
    }
    kept[layer] = { routing: out as Routing, scores: s };
    return out as Routing;
  };
}

/**
 * Loss-Free Balancing on the device for `backend: "webgpu"`: each block
 * routes by the route op's WebGPU kernel on `s + b` (or `s * b`) and its
 * bias moves by the lossFreeUpdate op's WebGPU kernel, the update of the
 * `loss-free` balancer (lib/route/loss_free.ts) step for step: same rate
 * schedule, micro-batch counts, precisions. The kernel keeps the bias in
 * float32 where the CPU balancer keeps float64: the same signs (decided on
 * integer loads), values within float32 rounding, so the two runs route
 * alike unless a score and a bias tie within that rounding.
 */
interface GpuLossFree {
  /** Biases per MoE block, routed with and updated in place. */
  bias: Float64Array[];
  mode: { multiply: boolean; normalize: boolean };
  update(layer: number, routing: Routing): Promise<void>;
}

function gpuLossFree(
  options: LossFreeOptions,
  layers: number,
  experts: number,
  normalize: boolean,
): GpuLossFree {
  const o = lossFreeSettings(options);
  const multiply = o.multiplicative;
  const reduced = o.microBatches > 1 || o.countPrecision !== "float64" ||
    o.countAdd !== "batch";
  const counts = reduced
    ? Array.from({ length: layers }, () => new Float64Array(experts))
    : undefined;
  const seen = new Int32Array(layers);
  const updates = new Int32Array(layers);
  const bias = Array.from(
    { length: layers },
    () => new Float64Array(experts).fill(multiply ? 1 : 0),
  );
  return {
    bias,
    mode: { multiply, normalize },
    async update(layer, routing) {
      seen[layer]++;
      const apply = seen[layer] % o.microBatches === 0;
      await requireKernel(lossFreeUpdateOp, "webgpu").run({
        bias: bias[layer],
        loads: routing.loads,
        rate: scheduledRate(o, updates[layer]),
        rule: o.rule,
        center: o.center && !multiply,
        biasPrecision: o.biasPrecision,
        countPrecision: o.countPrecision,
        countAdd: o.countAdd,
        counts: counts?.[layer],
        apply,
      }, await gpuEnv());
      if (apply) updates[layer]++;
    },
  };
}

/**
 * BIP-Based Balancing on the device for `backend: "webgpu"`: on each
 * chunk of `chunk` tokens, the bipRound op's WebGPU kernel runs the dual
 * rounds from the block's expert prices `q`, then the route op's WebGPU
 * kernel selects top-K of `s - q`, as the `bip` balancer
 * (lib/route/bip.ts) does on the CPU. The kernel keeps the prices in
 * float32 where the CPU keeps float64; a price is an order statistic of
 * `s - p`, so a token sitting at an expert's capacity boundary ties with
 * it and float32 rounding may decide that tie differently.
 */
interface GpuBip {
  select: LmSelect;
  /** The biases `-q` per MoE block. */
  biases(): Float64Array[];
}

function gpuBip(
  c: ResolvedTransformerConfig,
  options: BipOptions,
  layers: number,
  chunk: number | undefined,
  kept: LayerRouting[],
): GpuBip {
  const { T, capacityFactor, clipTokenPrices } = bipSettings(options);
  const E = c.experts, K = c.topK;
  const prices = Array.from({ length: layers }, () => new Float64Array(E));
  const bias = new Float64Array(E);
  let part: Routing | undefined;
  const select = async (layer: number, s: ScoreMatrix): Promise<Routing> => {
    const n = s.tokens, size = chunk ?? n;
    if (n % size !== 0) {
      throw new RangeError(
        `routeChunk must divide the tokens of a batch (${n}): current value is ${size}`,
      );
    }
    const env = await gpuEnv();
    const prev = kept[layer]?.routing;
    const out = prev && prev.experts.length === n * K
      ? prev
      : createRouting(n, K, E);
    out.loads.fill(0);
    if (!part || part.experts.length !== size * K) {
      part = createRouting(size, K, E);
    }
    const q = prices[layer];
    for (let at = 0; at < n; at += size) {
      const scores = {
        data: s.data.subarray(at * E, (at + size) * E),
        tokens: size,
        experts: E,
      };
      await requireKernel(bipRoundOp, "webgpu").run({
        scores,
        k: K,
        capacity: capacityOf(size, K, E, capacityFactor),
        prices: q,
        rounds: T,
        clip: clipTokenPrices || "experts",
      }, env);
      for (let j = 0; j < E; j++) bias[j] = -q[j];
      await requireKernel(routeOp, "webgpu").run({
        scores,
        k: K,
        bias,
        multiply: false,
        normalize: c.normalize,
        scale: 1,
        groups: 1,
        topGroups: 1,
        out: part,
      }, env);
      copyRouting(part, out, at);
    }
    kept[layer] = { routing: out, scores: s };
    return out;
  };
  return {
    select,
    biases: () => prices.map((q) => Float64Array.from(q, (v) => 0 - v)),
  };
}

function moeBlocks(c: ResolvedTransformerConfig): number {
  let m = 0;
  for (let l = 0; l < c.layers; l++) if (isMoeBlock(c, l)) m++;
  return m;
}

function checkTokens(name: string, t: Int32Array, need: number, V: number) {
  if (!(t instanceof Int32Array)) {
    throw new TypeError(
      `${name} must be an Int32Array: current value is ${show(t)}`,
    );
  }
  if (t.length < need) {
    throw new RangeError(
      `${name} must hold at least ${need} tokens (one sequence and its target): current length is ${t.length}`,
    );
  }
  for (let i = 0; i < t.length; i++) {
    if (!(t[i] >= 0 && t[i] < V)) {
      throw new RangeError(
        `${name}[${i}] must be a token below vocab (${V}): current value is ${
          t[i]
        }`,
      );
    }
  }
}

/** Resolves a method given as text, object or parsed method. */
export function resolveTrainMethod(
  method: string | TrainMethod | undefined,
): TrainMethod {
  return typeof method === "object" && method !== null && "kind" in method
    ? method as TrainMethod
    : parseTrainMethod(method ?? "none");
}

/** The router objective of a method, if it has one. */
export function methodObjective(
  method: TrainMethod,
  seqLen: number,
  tokens: number,
): LmRouterObjective | undefined {
  const micro = (m: number | undefined): number | undefined => {
    if (m === undefined) return undefined;
    if (tokens % m !== 0) {
      throw new RangeError(
        `microBatches must divide the batch's tokens (${tokens}): current value is ${m}`,
      );
    }
    return tokens / m;
  };
  // aux with microBatches: each micro-batch (data-parallel rank) balanced
  // by its own counts, the losses averaged; global-aux: the counts of the
  // whole batch balance every micro-batch, which is the batch-wise loss.
  return method.kind === "aux"
    ? { kind: "aux", alpha: method.alpha, seqLen: micro(method.microBatches) }
    : method.kind === "global-aux"
    ? {
      kind: "aux",
      alpha: method.alpha,
      seqLen: micro(method.microBatches) && tokens,
    }
    : method.kind === "seq-aux"
    ? { kind: "aux", alpha: method.alpha, seqLen }
    : method.kind === "z-loss"
    ? { kind: "z-loss", coef: method.coef }
    : undefined;
}

/**
 * Trains a decoder-only MoE transformer ({@linkcode createTransformer}) on a
 * token stream and measures it on a validation stream. Each step draws
 * `batchSeqs` random windows of `seqLen + 1` tokens, routes every MoE block
 * with the method's selection rule, takes one Adam step on the
 * cross-entropy plus the method's router loss (summed over MoE blocks),
 * then lets a bias method update each block's biases from the loads just
 * routed (`Balancer.update`). Auxiliary losses (`aux`, `seq-aux`,
 * `global-aux`, `z-loss`) enter the routers' gradients; balancers (`loss-free`, `bip`,
 * `quantile`, `expert-choice`, ...) change only which experts are
 * selected. With `backend: "webgpu"`, `loss-free` and `bip` route and
 * update on the device (the route, lossFreeUpdate and bipRound ops'
 * WebGPU kernels, biases and prices in float32); other balancers run on
 * the CPU. Same seed, same numbers.
 *
 * @param corpus `train` and `valid` token ids, below `vocab`.
 * @param options See {@linkcode TransformerTrainOptions}.
 * @returns The run: validation perplexity and balance, per-step curves, time, the model.
 * @throws {RangeError} If an option is out of range or a stream too short.
 *
 * @example
 * ```ts
 * import { trainTransformer } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const text = Int32Array.from({ length: 4000 }, (_, i) => i % 7);
 * const run = await trainTransformer({ train: text, valid: text }, {
 *   vocab: 7, seqLen: 16, dim: 16, heads: 2, layers: 1, experts: 4, topK: 1,
 *   steps: 40, batchSeqs: 4, lr: 1e-2, validTokens: 256,
 *   method: "loss-free(rate=0.01)",
 * });
 * assert.ok(run.perplexity < 2); // a period-7 stream is easy to predict
 * assert.equal(run.curve.loss.length, 40);
 * ```
 */
export async function trainTransformer(
  corpus: TokenCorpus,
  options: TransformerTrainOptions = {},
): Promise<TransformerRun> {
  const seed = checkNumber("seed", options.seed ?? 1);
  const steps = checkInteger("steps", options.steps ?? 200, 1);
  const batchSeqs = checkInteger("batchSeqs", options.batchSeqs ?? 8, 1);
  const lr = checkNumber("lr", options.lr ?? 3e-3, 0);
  const warmup = checkInteger(
    "warmup",
    options.warmup ?? Math.round(steps / 20),
    0,
  );
  const clip = checkNumber("clip", options.clip ?? 1, 0);
  const backend = checkChoice("backend", options.backend ?? "cpu", [
    "cpu",
    "cpu-threads",
    "webgpu",
  ]);
  const leaky = options.leakyValidation ?? false;
  if (typeof leaky !== "boolean") {
    throw new TypeError(
      `leakyValidation must be a boolean: current value is ${show(leaky)}`,
    );
  }
  const method = resolveTrainMethod(options.method);
  const model = createTransformer(options, seed, {
    shared: backend === "cpu-threads",
  });
  const c = model.config, T = c.seqLen, n = batchSeqs * T;
  const validTokens = checkInteger(
    "validTokens",
    options.validTokens ?? 16384,
    T,
    MAX_VALID_TOKENS,
  );
  const chunk = options.routeChunk === undefined
    ? undefined
    : checkInteger("routeChunk", options.routeChunk, 1, n);
  if (chunk !== undefined && n % chunk !== 0) {
    throw new RangeError(
      `routeChunk must divide batchSeqs * seqLen (${n}): current value is ${chunk}`,
    );
  }
  checkTokens("corpus.train", corpus?.train, T + 1, c.vocab);
  checkTokens("corpus.valid", corpus?.valid, T + 1, c.vocab);
  const moe = moeBlocks(c);
  // Loss-Free on WebGPU routes and updates on the device (the route and
  // lossFreeUpdate ops' WebGPU kernels); every other balancer on the CPU.
  const onDevice = backend === "webgpu" && method.kind === "bias" &&
      moe > 0 && method.balancer.name === "loss-free"
    ? gpuLossFree(method.balancer.options, moe, c.experts, c.normalize)
    : undefined;
  const kept: LayerRouting[] = [];
  const bipOnDevice = backend === "webgpu" && method.kind === "bias" &&
      moe > 0 && method.balancer.name === "bip"
    ? gpuBip(c, method.balancer.options, moe, chunk, kept)
    : undefined;
  const balancer: Balancer | undefined =
    method.kind === "bias" && moe > 0 && !onDevice && !bipOnDevice
      ? createBalancer(method.balancer, {
        layers: moe,
        experts: c.experts,
        k: c.topK,
        normalize: c.normalize,
      })
      : undefined;
  const objective = methodObjective(method, T, n);
  const threads = checkInteger(
    "threads",
    options.threads ?? navigator.hardwareConcurrency ?? 1,
    1,
  );
  const ws = createTransformerWorkspace(model, batchSeqs, backend, { threads });
  const adam = new Adam32(model.params.length, clip);
  const select = bipOnDevice?.select ?? makeSelect(
    c,
    balancer,
    onDevice?.bias,
    chunk,
    kept,
    backend,
    onDevice?.mode,
  );
  const rng = new Rng(seed + 0x51ed);
  const curve = {
    loss: new Float64Array(steps),
    aux: new Float64Array(steps),
    maxVioBatch: new Float64Array(steps),
  };
  const t0 = performance.now();
  for (let step = 0; step < steps; step++) {
    for (let b = 0; b < batchSeqs; b++) {
      const p0 = rng.int(corpus.train.length - T);
      for (let t = 0; t < T; t++) {
        ws.tokens[b * T + t] = corpus.train[p0 + t];
        ws.targets[b * T + t] = corpus.train[p0 + t + 1];
      }
    }
    const r = await transformerStep(model, ws, batchSeqs, select, objective);
    const rate = step < warmup
      ? lr * (step + 1) / warmup
      : lr * (0.1 + 0.45 * (1 + cosPi(
            (step - warmup) / Math.max(1, steps - warmup),
          )));
    adam.step(model.params, ws.grads, rate);
    let mv = 0;
    for (let l = 0; l < r.routings.length; l++) {
      mv += maxVio(r.routings[l].loads);
      if (balancer) balancer.update(l, kept[l].scores, kept[l].routing);
      if (onDevice) await onDevice.update(l, kept[l].routing);
    }
    curve.loss[step] = r.ce;
    curve.aux[step] = r.aux;
    curve.maxVioBatch[step] = r.routings.length ? mv / r.routings.length : 0;
    options.onStep?.(step + 1, r.ce);
  }
  const seconds = (performance.now() - t0) / 1000;
  const bias = balancer
    ? Array.from({ length: moe }, (_, l) => balancer.biases(l))
    : bipOnDevice
    ? bipOnDevice.biases()
    : onDevice?.bias.map((b) => Float64Array.from(b));
  const ev = await evaluateWith(
    model,
    ws,
    corpus.valid,
    makeSelect(c, undefined, bias, undefined, [], backend),
    validTokens,
  );
  let methodRouted: TransformerRun["methodRouted"];
  if (leaky && onDevice) {
    // Loss-Free routes each token on its own: the balancer routing chunks
    // with frozen biases is the same selection rule.
    const e = await evaluateWith(
      model,
      ws,
      corpus.valid,
      makeSelect(c, undefined, bias, undefined, [], backend, onDevice.mode),
      validTokens,
    );
    methodRouted = {
      loss: e.loss,
      perplexity: e.perplexity,
      maxVioGlobal: e.maxVioGlobal,
    };
  } else if (leaky && bipOnDevice) {
    const e = await evaluateWith(
      model,
      ws,
      corpus.valid,
      // The prices go on from their trained values, as the CPU balancer's.
      bipOnDevice.select,
      validTokens,
    );
    methodRouted = {
      loss: e.loss,
      perplexity: e.perplexity,
      maxVioGlobal: e.maxVioGlobal,
    };
  } else if (leaky && balancer) {
    const e = await evaluateWith(
      model,
      ws,
      corpus.valid,
      makeSelect(c, balancer, undefined, chunk, []),
      validTokens,
    );
    methodRouted = {
      loss: e.loss,
      perplexity: e.perplexity,
      maxVioGlobal: e.maxVioGlobal,
    };
  }
  const tail = Math.max(1, Math.floor(steps / 10));
  let last = 0, mvb = 0;
  for (let i = steps - tail; i < steps; i++) last += curve.loss[i] / tail;
  for (let i = 0; i < steps; i++) mvb += curve.maxVioBatch[i] / steps;
  return {
    method: method.label,
    seed,
    ...ev,
    maxVioBatch: mvb,
    ...(bias ? { biases: bias } : {}),
    ...(methodRouted ? { methodRouted } : {}),
    curve,
    finalTrainLoss: last,
    seconds,
    tokensPerSecond: steps * n / seconds,
    model,
  };
}

/** Validation of a model: loss, perplexity, loads and MaxVio_global. */
async function evaluateWith(
  model: TransformerModel,
  ws: TransformerWorkspace,
  text: Int32Array,
  select: LmSelect,
  tokens: number,
): Promise<
  Pick<TransformerRun, "loss" | "perplexity" | "loads" | "maxVioGlobal">
> {
  const c = model.config, T = c.seqLen, cap = ws.capacity;
  // Whole batches only, so chunked routing sees batches of the training size.
  const seqs = Math.max(1, Math.floor(tokens / T / cap)) * cap;
  const span = text.length - T - 1;
  const loads: Int32Array[] = [];
  let total = 0;
  for (let b0 = 0; b0 < seqs; b0 += cap) {
    const nb = Math.min(cap, seqs - b0);
    for (let b = 0; b < nb; b++) {
      const p0 = Math.floor(((b0 + b) * span) / seqs);
      for (let t = 0; t < T; t++) {
        ws.tokens[b * T + t] = text[p0 + t];
        ws.targets[b * T + t] = text[p0 + t + 1];
      }
    }
    const r = await transformerStep(model, ws, nb, select, undefined, false);
    total += r.ce * nb * T;
    r.routings.forEach((rt, l) => {
      loads[l] ??= new Int32Array(c.experts);
      for (let j = 0; j < c.experts; j++) loads[l][j] += rt.loads[j];
    });
  }
  const loss = total / (seqs * T);
  const mv = loads.length
    ? loads.reduce((a, l) => a + maxVio(l), 0) / loads.length
    : 0;
  return { loss, perplexity: fdlibmExp(loss), loads, maxVioGlobal: mv };
}
