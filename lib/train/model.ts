import { checkChoice, checkInteger, show } from "../validate.ts";
import { Rng } from "../scores/rng.ts";
import { CHAR_VOCAB } from "./vocab.ts";

/** The shape of a {@linkcode MoeModel}. */
export interface MoeModelConfig {
  /** Vocabulary size. Default: `CHAR_VOCAB.length` (49). */
  vocab?: number;
  /** Characters of context the model sees before the predicted one. Default `8`. */
  context?: number;
  /** Width of a character embedding. Default `8`. */
  embed?: number;
  /** Model width `d` (input and output of the MoE layer). Default `32`. */
  dim?: number;
  /** Routed experts `E`. Default `8`. */
  experts?: number;
  /** Experts per token `K`. Default `2`. */
  topK?: number;
  /** Hidden width of a routed expert `d -> h -> d`. Default `64`. */
  hidden?: number;
  /** Hidden width of the shared expert; `0` for none. Default `0`. */
  sharedHidden?: number;
  /** Gate: `"sigmoid"` (DeepSeek-V3, the Loss-Free paper) or `"softmax"`. Default `"sigmoid"`. */
  gate?: "sigmoid" | "softmax";
  /** Normalise the gate weights over the selected experts. Default: `true` for sigmoid, `false` for softmax. */
  normalize?: boolean;
}

/** A {@linkcode MoeModelConfig} with every default filled in. */
export type ResolvedModelConfig = Required<MoeModelConfig>;

/**
 * Views into the flat parameter (or gradient) vector, row-major:
 * `emb (vocab x embed)`, `mixW (dim x context*embed)`, `mixB (dim)`,
 * `router (experts x dim)`, `w1 (experts x hidden x dim)`,
 * `b1 (experts x hidden)`, `w2 (experts x dim x hidden)`,
 * `b2 (experts x dim)`, shared `sw1 (sharedHidden x dim)`,
 * `sb1 (sharedHidden)`, `sw2 (dim x sharedHidden)`, `sb2 (dim)`,
 * `outW (vocab x dim)`, `outB (vocab)`.
 */
export interface MoeParams {
  /** Character embeddings, `vocab x embed`. */
  emb: Float64Array;
  /** Context mixing weights, `dim x (context * embed)`. */
  mixW: Float64Array;
  /** Context mixing bias, `dim`. */
  mixB: Float64Array;
  /** Router weights, `experts x dim`. */
  router: Float64Array;
  /** Expert first layers, `experts x hidden x dim`. */
  w1: Float64Array;
  /** Expert first biases, `experts x hidden`. */
  b1: Float64Array;
  /** Expert second layers, `experts x dim x hidden`. */
  w2: Float64Array;
  /** Expert second biases, `experts x dim`. */
  b2: Float64Array;
  /** Shared expert first layer, `sharedHidden x dim`. */
  sw1: Float64Array;
  /** Shared expert first bias, `sharedHidden`. */
  sb1: Float64Array;
  /** Shared expert second layer, `dim x sharedHidden`. */
  sw2: Float64Array;
  /** Shared expert second bias, `dim`. */
  sb2: Float64Array;
  /** Output layer, `vocab x dim`. */
  outW: Float64Array;
  /** Output bias, `vocab`. */
  outB: Float64Array;
}

/** A small MoE language model: its shape and its parameters. */
export interface MoeModel {
  /** The shape. */
  readonly config: ResolvedModelConfig;
  /** Every parameter in one vector (float64), see {@linkcode MoeParams}. */
  readonly params: Float64Array;
  /** Named views into `params`. */
  readonly views: MoeParams;
}

/** Validates a model shape and fills its defaults. */
export function resolveModelConfig(
  config: MoeModelConfig = {},
): ResolvedModelConfig {
  if (config === null || typeof config !== "object") {
    throw new TypeError(
      `config must be an object: current value is ${show(config)}`,
    );
  }
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
  return {
    vocab: checkInteger("vocab", config.vocab ?? CHAR_VOCAB.length, 2, 256),
    context: checkInteger("context", config.context ?? 8, 1),
    embed: checkInteger("embed", config.embed ?? 8, 1),
    dim: checkInteger("dim", config.dim ?? 32, 1),
    experts,
    topK,
    hidden: checkInteger("hidden", config.hidden ?? 64, 1),
    sharedHidden: checkInteger("sharedHidden", config.sharedHidden ?? 0, 0),
    gate,
    normalize: config.normalize ?? gate === "sigmoid",
  };
}

/** Sizes of the tensors of {@linkcode MoeParams}, in layout order. */
function sizes(c: ResolvedModelConfig): [keyof MoeParams, number][] {
  const { vocab: V, context: C, embed: D0, dim: d, experts: E } = c;
  const h = c.hidden, hs = c.sharedHidden;
  return [
    ["emb", V * D0],
    ["mixW", d * C * D0],
    ["mixB", d],
    ["router", E * d],
    ["w1", E * h * d],
    ["b1", E * h],
    ["w2", E * d * h],
    ["b2", E * d],
    ["sw1", hs * d],
    ["sb1", hs],
    ["sw2", d * hs],
    ["sb2", hs > 0 ? d : 0],
    ["outW", V * d],
    ["outB", V],
  ];
}

/** Number of parameters of a model shape. */
export function parameterCount(config: ResolvedModelConfig): number {
  return sizes(config).reduce((n, [, size]) => n + size, 0);
}

/** Named views into a flat vector laid out as {@linkcode MoeParams}. */
export function paramViews(
  flat: Float64Array,
  config: ResolvedModelConfig,
): MoeParams {
  const views = {} as MoeParams;
  let at = 0;
  for (const [name, size] of sizes(config)) {
    views[name] = flat.subarray(at, at + size);
    at += size;
  }
  return views;
}

/**
 * Creates a small MoE language model with seeded random weights: normal
 * with standard deviation `1/sqrt(fan_in)` for every matrix (`1` for the
 * embeddings, `0.1/sqrt(dim)` for the router so that routing starts near
 * uniform and the balancing methods, not the initialisation, shape it),
 * biases zero.
 *
 * @param config See {@linkcode MoeModelConfig}.
 * @param seed Seed of {@linkcode Rng}. Default `1`.
 * @returns The model.
 * @throws {RangeError} If a size is not a positive integer or `topK > experts`.
 *
 * @example
 * ```ts
 * import { createMoeModel } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const a = createMoeModel({ experts: 4, topK: 1 }, 7);
 * const b = createMoeModel({ experts: 4, topK: 1 }, 7);
 * assert.deepEqual(a.params, b.params);
 * assert.equal(a.views.router.length, 4 * 32);
 * ```
 */
export function createMoeModel(
  config: MoeModelConfig = {},
  seed = 1,
): MoeModel {
  const c = resolveModelConfig(config);
  const params = new Float64Array(parameterCount(c));
  const views = paramViews(params, c);
  const rng = new Rng(seed);
  const fill = (a: Float64Array, std: number) => {
    for (let i = 0; i < a.length; i++) a[i] = std * rng.normal();
  };
  fill(views.emb, 1);
  fill(views.mixW, 1 / Math.sqrt(c.context * c.embed));
  fill(views.router, 0.1 / Math.sqrt(c.dim));
  fill(views.w1, 1 / Math.sqrt(c.dim));
  fill(views.w2, 1 / Math.sqrt(c.hidden));
  fill(views.sw1, 1 / Math.sqrt(c.dim));
  fill(views.sw2, 1 / Math.sqrt(Math.max(1, c.sharedHidden)));
  fill(views.outW, 1 / Math.sqrt(c.dim));
  return { config: c, params, views };
}
