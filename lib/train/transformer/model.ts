import { checkChoice, checkInteger, show } from "../../validate.ts";
import { Rng } from "../../scores/rng.ts";

/** The kernels a transformer runs on: the CPU reference, CPU worker threads, or WebGPU. */
export type LmBackend = "cpu" | "cpu-threads" | "webgpu";

/** The shape of a {@linkcode TransformerModel}. */
export interface TransformerConfig {
  /** Vocabulary size. Default `512` (a byte-level BPE of 256 merges). */
  vocab?: number;
  /** Positions per sequence (the context and the learned position table). Default `64`. */
  seqLen?: number;
  /** Model width `d`. Default `64`. */
  dim?: number;
  /** Attention heads; must divide `dim`. Default `4`. */
  heads?: number;
  /** Transformer blocks. Default `2`. */
  layers?: number;
  /** The first `denseLayers` blocks have a dense FFN instead of an MoE (DeepSeek-V3 keeps 3). Default `0`. */
  denseLayers?: number;
  /** Hidden width of a dense FFN. Default `4 * dim`. */
  denseHidden?: number;
  /** Routed experts `E` per MoE block. Default `8`. */
  experts?: number;
  /** Experts per token `K`. Default `2`. */
  topK?: number;
  /** Hidden width of a routed expert `d -> h -> d` (SiLU, no biases). Default `dim`. */
  hidden?: number;
  /** Hidden width of the shared expert of each MoE block; `0` for none. Default `0`. */
  sharedHidden?: number;
  /** Gate: `"sigmoid"` (DeepSeek-V3, the Loss-Free paper) or `"softmax"`. Default `"sigmoid"`. */
  gate?: "sigmoid" | "softmax";
  /** Normalise the gate weights over the selected experts. Default: `true` for sigmoid, `false` for softmax. */
  normalize?: boolean;
  /** Output layer tied to the token embedding. Default `true`. */
  tied?: boolean;
  /** RMSNorm epsilon. Default `1e-5`. */
  eps?: number;
}

/** A {@linkcode TransformerConfig} with every default filled in. */
export type ResolvedTransformerConfig = Required<TransformerConfig>;

/** One named tensor of the flat parameter vector. */
export interface ParamTensor {
  /** Name, e.g. `"blocks.0.wq"`. */
  name: string;
  /** Offset in the flat vector. */
  offset: number;
  /** Shape, row-major. */
  shape: number[];
}

/**
 * Views of one transformer block into the flat parameter (or gradient)
 * vector. Linear maps are stored `out x in` (`y = x Wᵀ`, as PyTorch's
 * `nn.Linear`).
 */
export interface BlockParams {
  /** Gain of the attention's RMSNorm, `dim`. */
  norm1: Float32Array;
  /** Query, key, value and output projections, each `dim x dim`. */
  wq: Float32Array;
  /** Key projection, `dim x dim`. */
  wk: Float32Array;
  /** Value projection, `dim x dim`. */
  wv: Float32Array;
  /** Output projection, `dim x dim`. */
  wo: Float32Array;
  /** Gain of the FFN's RMSNorm, `dim`. */
  norm2: Float32Array;
  /** Router, `experts x dim` (empty in a dense block). */
  router: Float32Array;
  /** Routed experts' first layers, `experts x hidden x dim`. */
  w1: Float32Array;
  /** Routed experts' second layers, `experts x dim x hidden`. */
  w2: Float32Array;
  /** The shared expert's (or the dense FFN's) first layer, `sh x dim`. */
  sw1: Float32Array;
  /** The shared expert's (or the dense FFN's) second layer, `dim x sh`. */
  sw2: Float32Array;
}

/** Named views into the flat vector. */
export interface TransformerParams {
  /** Token embedding, `vocab x dim` (also the output layer when tied). */
  tokEmb: Float32Array;
  /** Learned absolute positions, `seqLen x dim`. */
  posEmb: Float32Array;
  /** The blocks. */
  blocks: BlockParams[];
  /** Gain of the final RMSNorm, `dim`. */
  normF: Float32Array;
  /** Output layer, `vocab x dim` (the token embedding when tied). */
  out: Float32Array;
}

/** A decoder-only MoE transformer: its shape and its parameters. */
export interface TransformerModel {
  /** The shape. */
  readonly config: ResolvedTransformerConfig;
  /** Every parameter in one float32 vector, laid out as {@linkcode TransformerModel.tensors}. */
  readonly params: Float32Array;
  /** Named views into `params`. */
  readonly views: TransformerParams;
  /** The layout of `params`. */
  readonly tensors: readonly ParamTensor[];
}

/** Validates a transformer shape and fills its defaults. */
export function resolveTransformerConfig(
  config: TransformerConfig = {},
): ResolvedTransformerConfig {
  if (config === null || typeof config !== "object") {
    throw new TypeError(
      `config must be an object: current value is ${show(config)}`,
    );
  }
  const dim = checkInteger("dim", config.dim ?? 64, 1);
  const heads = checkInteger("heads", config.heads ?? 4, 1);
  if (dim % heads !== 0) {
    throw new RangeError(
      `heads must divide dim (${dim}): current value is ${heads}`,
    );
  }
  const layers = checkInteger("layers", config.layers ?? 2, 1);
  const experts = checkInteger("experts", config.experts ?? 8, 1);
  const topK = checkInteger("topK", config.topK ?? 2, 1);
  if (topK > experts) {
    throw new RangeError(
      `topK must be at most the number of experts (${experts}): current value is ${topK}`,
    );
  }
  const gate = checkChoice("gate", config.gate ?? "sigmoid", [
    "sigmoid",
    "softmax",
  ]);
  const tied = config.tied ?? true;
  if (typeof tied !== "boolean") {
    throw new TypeError(
      `tied must be a boolean: current value is ${show(tied)}`,
    );
  }
  const normalize = config.normalize ?? gate === "sigmoid";
  if (typeof normalize !== "boolean") {
    throw new TypeError(
      `normalize must be a boolean: current value is ${show(normalize)}`,
    );
  }
  const eps = config.eps ?? 1e-5;
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    throw new RangeError(`eps must be positive: current value is ${show(eps)}`);
  }
  return {
    vocab: checkInteger("vocab", config.vocab ?? 512, 2),
    seqLen: checkInteger("seqLen", config.seqLen ?? 64, 1),
    dim,
    heads,
    layers,
    denseLayers: checkInteger(
      "denseLayers",
      config.denseLayers ?? 0,
      0,
      layers,
    ),
    denseHidden: checkInteger("denseHidden", config.denseHidden ?? 4 * dim, 1),
    experts,
    topK,
    hidden: checkInteger("hidden", config.hidden ?? dim, 1),
    sharedHidden: checkInteger("sharedHidden", config.sharedHidden ?? 0, 0),
    gate,
    normalize,
    tied,
    eps,
  };
}

/** Whether block `l` is an MoE block (the others have a dense FFN). */
export function isMoeBlock(c: ResolvedTransformerConfig, l: number): boolean {
  return l >= c.denseLayers;
}

/** Hidden width of block `l`'s always-on FFN: the dense FFN, or the shared expert. */
export function sharedWidth(c: ResolvedTransformerConfig, l: number): number {
  return isMoeBlock(c, l) ? c.sharedHidden : c.denseHidden;
}

const BLOCK_KEYS = [
  "norm1",
  "wq",
  "wk",
  "wv",
  "wo",
  "norm2",
  "router",
  "w1",
  "w2",
  "sw1",
  "sw2",
] as const;

/** The layout of the flat parameter vector of a shape. */
export function transformerLayout(
  c: ResolvedTransformerConfig,
): ParamTensor[] {
  const d = c.dim, out: ParamTensor[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]) => {
    out.push({ name, offset, shape });
    offset += shape.reduce((a, b) => a * b, 1);
  };
  add("tok_emb", [c.vocab, d]);
  add("pos_emb", [c.seqLen, d]);
  for (let l = 0; l < c.layers; l++) {
    const moe = isMoeBlock(c, l), E = moe ? c.experts : 0;
    const sh = sharedWidth(c, l);
    const shapes: Record<(typeof BLOCK_KEYS)[number], number[]> = {
      norm1: [d],
      wq: [d, d],
      wk: [d, d],
      wv: [d, d],
      wo: [d, d],
      norm2: [d],
      router: [E, d],
      w1: [E, c.hidden, d],
      w2: [E, d, c.hidden],
      sw1: [sh, d],
      sw2: [d, sh],
    };
    for (const key of BLOCK_KEYS) add(`blocks.${l}.${key}`, shapes[key]);
  }
  add("norm_f", [d]);
  if (!c.tied) add("out", [c.vocab, d]);
  return out;
}

/** Number of parameters of a shape. */
export function transformerParameterCount(
  c: ResolvedTransformerConfig,
): number {
  const last = transformerLayout(c).at(-1) as ParamTensor;
  return last.offset + last.shape.reduce((a, b) => a * b, 1);
}

/** Named views into a flat vector laid out as {@linkcode transformerLayout}. */
export function transformerViews(
  flat: Float32Array,
  c: ResolvedTransformerConfig,
): TransformerParams {
  const byName = new Map<string, Float32Array>();
  for (const t of transformerLayout(c)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    byName.set(t.name, flat.subarray(t.offset, t.offset + size));
  }
  const get = (name: string) => byName.get(name) as Float32Array;
  const blocks: BlockParams[] = [];
  for (let l = 0; l < c.layers; l++) {
    const b = {} as BlockParams;
    for (const key of BLOCK_KEYS) b[key] = get(`blocks.${l}.${key}`);
    blocks.push(b);
  }
  const tokEmb = get("tok_emb");
  return {
    tokEmb,
    posEmb: get("pos_emb"),
    blocks,
    normF: get("norm_f"),
    out: c.tied ? tokEmb : get("out"),
  };
}

/**
 * Creates a decoder-only MoE transformer with seeded random weights: normal
 * with standard deviation `1/sqrt(fan_in)` for every linear map, divided by
 * `sqrt(2 * layers)` for the maps that write into the residual stream
 * (GPT-2), `0.02` for the embeddings (`1/sqrt(dim)` for the token embedding
 * when it is tied to the output), `0.1/sqrt(dim)` for the routers so that
 * routing starts near uniform, and `1` for the RMSNorm gains.
 *
 * @param config See {@linkcode TransformerConfig}.
 * @param seed Seed of {@linkcode Rng}. Default `1`.
 * @param options `shared`: put the parameters on a `SharedArrayBuffer`,
 *   which the `"cpu-threads"` kernels read in place (default `false`).
 * @returns The model.
 * @throws {RangeError} If a size is out of range, `heads` does not divide `dim`, or `topK > experts`.
 *
 * @example
 * ```ts
 * import { createTransformer } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const m = createTransformer({ vocab: 300, dim: 16, heads: 2, layers: 2, experts: 4, topK: 1 }, 7);
 * assert.deepEqual(m.params, createTransformer(m.config, 7).params);
 * assert.equal(m.views.blocks[1].router.length, 4 * 16);
 * assert.equal(m.views.out, m.views.tokEmb); // tied by default
 * ```
 */
export function createTransformer(
  config: TransformerConfig = {},
  seed = 1,
  options: { shared?: boolean } = {},
): TransformerModel {
  const c = resolveTransformerConfig(config);
  const size = transformerParameterCount(c);
  const params = options.shared
    ? new Float32Array(new SharedArrayBuffer(4 * size))
    : new Float32Array(size);
  const views = transformerViews(params, c);
  const rng = new Rng(seed);
  const fill = (a: Float32Array, std: number) => {
    for (let i = 0; i < a.length; i++) a[i] = std * rng.normal();
  };
  const d = c.dim, resid = 1 / Math.sqrt(2 * c.layers);
  fill(views.tokEmb, c.tied ? 1 / Math.sqrt(d) : 0.02);
  fill(views.posEmb, 0.02);
  for (let l = 0; l < c.layers; l++) {
    const b = views.blocks[l];
    b.norm1.fill(1);
    b.norm2.fill(1);
    fill(b.wq, 1 / Math.sqrt(d));
    fill(b.wk, 1 / Math.sqrt(d));
    fill(b.wv, 1 / Math.sqrt(d));
    fill(b.wo, resid / Math.sqrt(d));
    fill(b.router, 0.1 / Math.sqrt(d));
    fill(b.w1, 1 / Math.sqrt(d));
    fill(b.w2, resid / Math.sqrt(c.hidden));
    const sh = sharedWidth(c, l);
    fill(b.sw1, 1 / Math.sqrt(d));
    fill(b.sw2, resid / Math.sqrt(Math.max(1, sh)));
  }
  views.normF.fill(1);
  if (!c.tied) fill(views.out, 1 / Math.sqrt(d));
  return { config: c, params, views, tensors: transformerLayout(c) };
}
