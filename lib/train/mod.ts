/**
 * Train small Mixture-of-Experts language models on the Brown corpus to
 * see what balancing costs in quality: a character-level model with a
 * router and experts ({@linkcode createMoeModel}), trained by Adam under one
 * balancing method (an auxiliary loss, Loss-Free biases, BIP prices or none:
 * {@linkcode trainMoe}), several methods and seeds side by side
 * ({@linkcode runTrainExperiment}), and their tables and files
 * ({@linkcode formatTrainTable}, {@linkcode writeTrainOutputs}, which loads
 * Polars). A decoder-only MoE transformer ({@linkcode createTransformer},
 * attention, RMSNorm, routed and shared experts, backward passes checked
 * against PyTorch) trains on Brown tokens from a byte-level BPE
 * ({@linkcode loadBrownTokens}) under the same methods
 * ({@linkcode trainTransformer}, {@linkcode runTransformerExperiment}).
 *
 * @example A few steps on two files of the Brown corpus, validated on a third
 * ```ts
 * import { CHAR_VOCAB, loadBrown, trainMoe } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const corpus = loadBrown({ maxFiles: 3, validEvery: 3 }); // ca03 validates
 * const run = trainMoe(corpus, {
 *   experts: 4, topK: 1, steps: 40, batchSeqs: 4, seqLen: 16,
 *   validTokens: 512, lr: 1e-2, method: "loss-free(rate=0.01)",
 * });
 * assert.equal(run.curve.loss.length, 40);
 * // Better than guessing uniformly over the vocabulary.
 * assert.ok(run.perplexity < CHAR_VOCAB.length);
 * ```
 *
 * @module
 */
export { CHAR_VOCAB, decodeText, encodeText, UNKNOWN_CHAR } from "./vocab.ts";
export {
  type BrownCorpus,
  type BrownOptions,
  loadBrown,
  stripBrownTags,
} from "./brown.ts";
export {
  createMoeModel,
  type MoeModel,
  type MoeModelConfig,
  type MoeParams,
  type ResolvedModelConfig,
} from "./model.ts";
export {
  auxLoss,
  type AuxLossOptions,
  createGlobalAuxTracker,
  globalAuxLoss,
  type GlobalAuxTracker,
  type RouterBatch,
  zLoss,
  type ZLossOptions,
} from "./aux_loss.ts";
export { Adam, type AdamOptions } from "./adam.ts";
export { parseTrainMethod, type TrainMethod } from "./method.ts";
export {
  evaluateMoe,
  type EvaluateOptions,
  type Evaluation,
} from "./evaluate.ts";
export { trainMoe, type TrainOptions, type TrainRun } from "./train.ts";
export {
  type MeanStd,
  runTrainExperiment,
  type TrainExperiment,
  type TrainMethodSummary,
  type TrainPreset,
} from "./experiment.ts";
export {
  formatTrainTable,
  type TrainFrames,
  trainFrames,
  trainSummary,
  writeTrainOutputs,
} from "./output.ts";
export {
  type BpeTokenizer,
  type BrownTokens,
  type BrownTokensOptions,
  BYTE_SYMBOLS,
  loadBrownTokens,
  tokenizerFromMerges,
  trainBpe,
} from "./transformer/tokenizer.ts";
export {
  type BlockParams,
  createTransformer,
  type LmBackend,
  type ParamTensor,
  type ResolvedTransformerConfig,
  type TransformerConfig,
  type TransformerModel,
  type TransformerParams,
} from "./transformer/model.ts";
export {
  type TokenCorpus,
  trainTransformer,
  type TransformerRun,
  type TransformerTrainOptions,
} from "./transformer/train.ts";
export {
  DEFAULT_TRANSFORMER_METHODS,
  formatTransformerTable,
  type LeakageRow,
  runTransformerExperiment,
  type TransformerExperiment,
  type TransformerMethodSummary,
  type TransformerPreset,
  type TransformerRunFigures,
  transformerSummary,
} from "./transformer/experiment.ts";
