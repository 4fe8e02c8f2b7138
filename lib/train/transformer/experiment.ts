import {
  checkInteger,
  checkNumber,
  show,
  withMessage,
} from "../../validate.ts";
import { resolveTransformerConfig } from "./model.ts";
import { type MeanStd, meanStd } from "../experiment.ts";
import { parseTrainMethod, type TrainMethod } from "../method.ts";
import { type BrownTokens, loadBrownTokens } from "./tokenizer.ts";
import { checkCorpusPreset } from "../brown.ts";
import {
  trainTransformer,
  type TransformerRun,
  type TransformerTrainOptions,
} from "./train.ts";

/**
 * A transformer experiment: one model shape and schedule, several methods
 * and seeds, and optionally the Expert Choice leakage test.
 */
export interface TransformerPreset extends
  Omit<
    TransformerTrainOptions,
    "method" | "seed" | "onStep" | "vocab" | "leakyValidation" | "routeChunk"
  > {
  /** Says in words what the preset is for (ignored by the run). */
  description?: string;
  /** `"transformer"`: marks the preset for `moelab train` (ignored by the run). */
  model?: "transformer";
  /** Methods to compare (see {@linkcode parseTrainMethod}). Default: loss-free, aux at 1e-3, bip, none. */
  methods?: (string | {
    name: string;
    options?: Record<string, unknown>;
    label?: string;
  })[];
  /** Seeds; every method runs once per seed on the same batches. Default `[1, 2, 3]`. */
  seeds?: number[];
  /** Corpus: the split (`validEvery`, `maxFiles`) and the BPE vocabulary size (`vocab`, default 512). */
  corpus?: {
    validEvery?: number;
    maxFiles?: number;
    vocab?: number;
    dir?: string;
  };
  /**
   * The leakage test of the Loss-Free paper (section 5.2): Expert Choice
   * trained with the batch cut into routing chunks of each of `chunks`
   * tokens, validated both causally (top-K) and with Expert Choice routing
   * chunks of the same size. Runs once per seed of `seeds` (default: the
   * preset's first seed).
   */
  leakage?: { chunks: number[]; seeds?: number[]; method?: string };
}

/** One method's figures over the seeds. */
export interface TransformerMethodSummary {
  /** The method's label. */
  method: string;
  /** Validation perplexity per token. */
  perplexity: MeanStd;
  /** Validation cross-entropy, nats per token. */
  loss: MeanStd;
  /** MaxVio over the whole validation set, mean over MoE blocks. */
  maxVioGlobal: MeanStd;
  /** Mean MaxVio_batch over training. */
  maxVioBatch: MeanStd;
  /** MaxVio_batch of the first training step. */
  maxVioBatchStep0: MeanStd;
  /** Training cross-entropy over the last tenth of the steps. */
  finalTrainLoss: MeanStd;
  /** Training tokens per second. */
  tokensPerSecond: MeanStd;
  /** MaxVio_batch per step, mean over seeds, in `curveEvery`-step bins. */
  maxVioBatchCurve: number[];
  /** Training loss per step, mean over seeds, in `curveEvery`-step bins. */
  lossCurve: number[];
}

/** One routing-chunk size of the leakage test. */
export interface LeakageRow {
  /** Tokens per routing chunk. */
  chunk: number;
  /** Training cross-entropy over the last tenth of the steps. */
  finalTrainLoss: MeanStd;
  /** Validation loss with Expert Choice routing chunks of `chunk` tokens (can see later tokens). */
  leakyLoss: MeanStd;
  /** Validation loss with causal top-K routing. */
  causalLoss: MeanStd;
}

/** The outcome of {@linkcode runTransformerExperiment}. */
export interface TransformerExperiment {
  /** The preset as run. */
  preset: TransformerPreset;
  /** Method labels in preset order. */
  methods: string[];
  /** Every run, method-major then seed (models dropped). */
  runs: Omit<TransformerRun, "model">[];
  /** One entry per method. */
  summary: TransformerMethodSummary[];
  /** The leakage test, one row per chunk size (empty without one). */
  leakage: LeakageRow[];
  /** Steps per bin of the curves. */
  curveEvery: number;
  /** Parameters of the model. */
  parameters: number;
  /** Training files and validation files. */
  files: { train: number; valid: number };
}

const KEYS = new Set([
  "model",
  "description",
  "methods",
  "seeds",
  "corpus",
  "leakage",
  "seqLen",
  "dim",
  "heads",
  "layers",
  "denseLayers",
  "denseHidden",
  "experts",
  "topK",
  "hidden",
  "sharedHidden",
  "gate",
  "normalize",
  "tied",
  "eps",
  "steps",
  "batchSeqs",
  "lr",
  "warmup",
  "clip",
  "validTokens",
  "backend",
]);

/** The methods a transformer preset runs when it names none. */
export const DEFAULT_TRANSFORMER_METHODS: readonly string[] = [
  "loss-free(rate=1e-3)",
  "aux(alpha=1e-3)",
  "bip",
  "none",
];

function binned(curves: Float64Array[], every: number): number[] {
  const steps = curves[0].length, out: number[] = [];
  for (let s0 = 0; s0 < steps; s0 += every) {
    let sum = 0, count = 0;
    for (const c of curves) {
      for (let s = s0; s < Math.min(steps, s0 + every); s++) {
        sum += c[s];
        count++;
      }
    }
    out.push(sum / count);
  }
  return out;
}

/** Checks a preset's keys and shape. */
export function checkTransformerPreset(preset: unknown): TransformerPreset {
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
  const p = preset as TransformerPreset;
  if (p.model !== undefined && p.model !== "transformer") {
    throw new RangeError(
      `model must be "transformer": current value is ${show(p.model)}`,
    );
  }
  checkCorpusPreset(p.corpus, ["dir", "validEvery", "maxFiles", "vocab"]);
  const seeds = p.seeds ?? [1, 2, 3];
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
  // The shape and the schedule, before any corpus is read.
  const {
    methods,
    seeds: _s,
    corpus,
    leakage: _l,
    description: _d,
    model: _m,
    backend: _b,
    steps,
    batchSeqs,
    lr,
    warmup,
    clip,
    validTokens,
    ...shape
  } = p;
  const { seqLen } = resolveTransformerConfig({
    ...shape,
    vocab: corpus?.vocab ?? 512,
  });
  if (steps !== undefined) checkInteger("steps", steps, 1);
  if (batchSeqs !== undefined) checkInteger("batchSeqs", batchSeqs, 1);
  if (warmup !== undefined) checkInteger("warmup", warmup, 0);
  if (validTokens !== undefined) checkInteger("validTokens", validTokens, 1);
  if (lr !== undefined) checkNumber("lr", lr, 0);
  if (clip !== undefined) checkNumber("clip", clip, 0);
  if (methods !== undefined) {
    if (!Array.isArray(methods) || methods.length === 0) {
      throw new RangeError(
        `methods must be a non-empty array: current value is ${show(methods)}`,
      );
    }
    methods.forEach((m) => parseTrainMethod(m));
  }
  if (p.leakage !== undefined) {
    const leak = p.leakage as unknown;
    if (leak === null || typeof leak !== "object" || Array.isArray(leak)) {
      throw new TypeError(
        `leakage must be an object { chunks, seeds?, method? }: current value is ${
          show(leak)
        }`,
      );
    }
    for (const key of Object.keys(leak)) {
      if (!["chunks", "seeds", "method"].includes(key)) {
        throw new RangeError(
          `leakage has no key ${show(key)} (keys: chunks, seeds, method)`,
        );
      }
    }
    const leakSeeds = p.leakage.seeds;
    if (leakSeeds !== undefined) {
      if (!Array.isArray(leakSeeds) || leakSeeds.length === 0) {
        throw new RangeError(
          `leakage.seeds must be a non-empty array: current value is ${
            show(leakSeeds)
          }`,
        );
      }
      leakSeeds.forEach((s, i) => checkInteger(`leakage.seeds[${i}]`, s, 0));
      const again = leakSeeds.find((s, i) => leakSeeds.indexOf(s) !== i);
      if (again !== undefined) {
        throw new RangeError(
          `leakage.seeds must be distinct: ${show(again)} appears twice`,
        );
      }
    }
    if (p.leakage.method !== undefined) {
      try {
        parseTrainMethod(p.leakage.method);
      } catch (e) {
        throw withMessage(e, (m) => `leakage.${m}`);
      }
    }
    const chunks = p.leakage?.chunks;
    if (!Array.isArray(chunks) || chunks.length === 0) {
      throw new RangeError(
        `leakage.chunks must be a non-empty array: current value is ${
          show(chunks)
        }`,
      );
    }
    // Each chunk divides a batch's tokens (trainTransformer's routeChunk),
    // checked here rather than after every run of the methods.
    const n = (batchSeqs ?? 8) * seqLen;
    chunks.forEach((c, i) => {
      checkInteger(`leakage.chunks[${i}]`, c, 1);
      if (n % c !== 0) {
        throw new RangeError(
          `leakage.chunks[${i}] must divide a batch's tokens (batchSeqs x seqLen = ${n}): current value is ${c}`,
        );
      }
    });
  }
  return p;
}

/**
 * Runs every method of a transformer preset with every seed on the Brown
 * corpus (byte-level BPE, split by file) and summarises each method over
 * the seeds (mean and sample standard deviation): validation perplexity,
 * MaxVio_global, MaxVio_batch (mean and at step 0), final training loss,
 * throughput, and the binned MaxVio_batch and loss curves; then, when the
 * preset asks, the Expert Choice leakage test. Runs with the same seed share
 * initial weights and batches.
 *
 * @param preset See {@linkcode TransformerPreset}.
 * @param options `corpus` to reuse a loaded corpus; `onRun` to report progress.
 * @returns The runs, the summary and the leakage rows.
 * @throws {RangeError} If a key is unknown, a method unknown or a value out of range.
 *
 * @example
 * ```ts
 * import { loadBrownTokens, runTransformerExperiment } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const corpus = loadBrownTokens({ maxFiles: 4, validEvery: 4, vocab: 300 });
 * const x = await runTransformerExperiment({
 *   methods: ["none", "loss-free(rate=0.01)"], seeds: [1, 2], steps: 4,
 *   seqLen: 16, dim: 8, heads: 2, layers: 1, experts: 4, topK: 1, hidden: 8,
 *   batchSeqs: 2, validTokens: 64, leakage: { chunks: [32, 8] },
 * }, { corpus });
 * assert.deepEqual(x.summary.map((s) => s.method), ["none", "loss-free(rate=0.01)"]);
 * assert.equal(x.runs.length, 4);
 * assert.deepEqual(x.leakage.map((r) => r.chunk), [32, 8]);
 * ```
 */
export async function runTransformerExperiment(
  preset: TransformerPreset = {},
  options: {
    corpus?: BrownTokens;
    onRun?: (run: Omit<TransformerRun, "model">, label: string) => void;
  } = {},
): Promise<TransformerExperiment> {
  checkTransformerPreset(preset);
  const seeds = preset.seeds ?? [1, 2, 3];
  const specs = preset.methods ?? [...DEFAULT_TRANSFORMER_METHODS];
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
  const leakMethod = parseTrainMethod(
    preset.leakage?.method ?? "expert-choice",
  );
  const corpus = options.corpus ?? loadBrownTokens(preset.corpus ?? {});
  const {
    methods: _m,
    seeds: _s,
    corpus: _c,
    leakage,
    description: _d,
    model: _model,
    ...train
  } = preset;
  const base = { ...train, vocab: corpus.tokenizer.vocab };
  const strip = (r: TransformerRun): Omit<TransformerRun, "model"> => {
    const { model: _model, ...rest } = r;
    return rest;
  };
  let parameters = 0;
  const runs: Omit<TransformerRun, "model">[] = [];
  for (const method of methods) {
    for (const seed of seeds) {
      const run = await trainTransformer(corpus, { ...base, method, seed });
      parameters = run.model.params.length;
      const r = strip(run);
      runs.push(r);
      options.onRun?.(r, `${method.label} seed ${seed}`);
    }
  }
  const steps = runs[0].curve.loss.length;
  const curveEvery = Math.max(1, Math.ceil(steps / 100));
  const summary = labels.map((method) => {
    const mine = runs.filter((r) => r.method === method);
    const stat = (f: (r: Omit<TransformerRun, "model">) => number) =>
      meanStd(mine.map(f));
    return {
      method,
      perplexity: stat((r) => r.perplexity),
      loss: stat((r) => r.loss),
      maxVioGlobal: stat((r) => r.maxVioGlobal),
      maxVioBatch: stat((r) => r.maxVioBatch),
      maxVioBatchStep0: stat((r) => r.curve.maxVioBatch[0]),
      finalTrainLoss: stat((r) => r.finalTrainLoss),
      tokensPerSecond: stat((r) => r.tokensPerSecond),
      maxVioBatchCurve: binned(
        mine.map((r) => r.curve.maxVioBatch),
        curveEvery,
      ),
      lossCurve: binned(mine.map((r) => r.curve.loss), curveEvery),
    };
  });
  const rows: LeakageRow[] = [];
  for (const chunk of leakage?.chunks ?? []) {
    const mine: Omit<TransformerRun, "model">[] = [];
    for (const seed of leakage?.seeds ?? [seeds[0]]) {
      const run = strip(
        await trainTransformer(corpus, {
          ...base,
          method: leakMethod,
          seed,
          routeChunk: chunk,
          leakyValidation: true,
        }),
      );
      mine.push(run);
      options.onRun?.(run, `${leakMethod.label} chunk ${chunk} seed ${seed}`);
    }
    rows.push({
      chunk,
      finalTrainLoss: meanStd(mine.map((r) => r.finalTrainLoss)),
      leakyLoss: meanStd(mine.map((r) => r.methodRouted?.loss ?? NaN)),
      causalLoss: meanStd(mine.map((r) => r.loss)),
    });
  }
  return {
    preset,
    methods: labels,
    runs,
    summary,
    leakage: rows,
    curveEvery,
    parameters,
    files: { train: corpus.trainFiles.length, valid: corpus.validFiles.length },
  };
}

/** One run's figures, as {@linkcode transformerSummary} lists them. */
export interface TransformerRunFigures {
  /** The method's label, or `expert-choice chunk N` for a leakage run. */
  method: string;
  /** The seed. */
  seed: number;
  /** Validation perplexity per token. */
  perplexity: number;
  /** Validation cross-entropy, nats per token. */
  loss: number;
  /** MaxVio_global on the validation set. */
  maxVioGlobal: number;
  /** Mean MaxVio_batch over training. */
  maxVioBatch: number;
  /** MaxVio_batch of the first step. */
  maxVioBatchStep0: number;
  /** Training loss over the last tenth of the steps. */
  finalTrainLoss: number;
  /** Training tokens per second. */
  tokensPerSecond: number;
  /** Validation loss with the balancer routing chunks (leakage runs). */
  leakyLoss?: number;
}

/** Per-run scalars of a run (no curves, no model). */
export function runFigures(
  r: Omit<TransformerRun, "model">,
): TransformerRunFigures {
  return {
    method: r.method,
    seed: r.seed,
    perplexity: r.perplexity,
    loss: r.loss,
    maxVioGlobal: r.maxVioGlobal,
    maxVioBatch: r.maxVioBatch,
    maxVioBatchStep0: r.curve.maxVioBatch[0],
    finalTrainLoss: r.finalTrainLoss,
    tokensPerSecond: r.tokensPerSecond,
    ...(r.methodRouted ? { leakyLoss: r.methodRouted.loss } : {}),
  };
}

/**
 * What `moelab train` writes to `summary.json` for a transformer preset,
 * and what data/results/ keeps: the experiment without its per-step
 * curves, with every run's scalars.
 *
 * @param x The experiment.
 * @returns A JSON-ready object.
 *
 * @example
 * ```ts
 * import { loadBrownTokens, runTransformerExperiment, transformerSummary } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const corpus = loadBrownTokens({ maxFiles: 4, validEvery: 4, vocab: 300 });
 * const x = await runTransformerExperiment({
 *   methods: ["none"], seeds: [1, 2], steps: 2, seqLen: 8, dim: 8, heads: 2,
 *   layers: 1, experts: 4, topK: 1, hidden: 8, batchSeqs: 2, validTokens: 16,
 * }, { corpus });
 * const s = transformerSummary(x);
 * assert.equal(s.runs.length, 2);
 * assert.equal(s.summary[0].perplexity.mean, (s.runs[0].perplexity + s.runs[1].perplexity) / 2);
 * ```
 */
export function transformerSummary(
  x: TransformerExperiment,
): Omit<TransformerExperiment, "runs"> & { runs: TransformerRunFigures[] } {
  return { ...x, runs: x.runs.map(runFigures) };
}

// `mean ± std` over several seeds; the mean alone over one seed, whose
// spread is unknown rather than zero (meanStd's NaN).
const fmt = (s: MeanStd, digits = 3, seeds = 2) =>
  seeds < 2 || Number.isNaN(s.std)
    ? s.mean.toFixed(digits)
    : `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;

/**
 * The experiment as a Markdown table: one row per method (validation
 * perplexity, MaxVio_global, mean MaxVio_batch, MaxVio_batch at step 0,
 * tokens/s; mean ± sample standard deviation over seeds), then the leakage
 * rows.
 *
 * @param x The experiment.
 * @returns Markdown text.
 *
 * @example
 * ```ts
 * import { formatTransformerTable, loadBrownTokens, runTransformerExperiment } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const corpus = loadBrownTokens({ maxFiles: 4, validEvery: 4, vocab: 300 });
 * const x = await runTransformerExperiment({
 *   methods: ["none"], seeds: [1], steps: 2, seqLen: 8, dim: 8, heads: 2,
 *   layers: 1, experts: 4, topK: 1, hidden: 8, batchSeqs: 2, validTokens: 16,
 * }, { corpus });
 * assert.match(formatTransformerTable(x), /\| none \|/);
 * ```
 */
export function formatTransformerTable(x: TransformerExperiment): string {
  const n = x.preset.seeds?.length ?? 3;
  const lines = [
    `| method | valid ppl | MaxVio_global | MaxVio_batch (mean) | MaxVio_batch (step 0) | tokens/s |`,
    `|---|---|---|---|---|---|`,
  ];
  for (const s of x.summary) {
    lines.push(
      `| ${s.method} | ${fmt(s.perplexity, 2)} | ${fmt(s.maxVioGlobal)} | ${
        fmt(s.maxVioBatch)
      } | ${fmt(s.maxVioBatchStep0)} | ${s.tokensPerSecond.mean.toFixed(0)} |`,
    );
  }
  lines.push("", `Mean ± sample standard deviation over ${n} seeds.`);
  if (x.leakage.length) {
    // The leakage test runs its own seeds, or the first seed of the runs.
    const m = x.preset.leakage?.seeds?.length ?? 1;
    lines.push(
      "",
      m < 2
        ? "Leakage test, one seed (no spread):"
        : `Leakage test, mean ± sample standard deviation over ${m} seeds:`,
      "",
      "| routing chunk (tokens) | final train loss | valid loss, chunked routing | valid loss, causal top-K |",
      "|---|---|---|---|",
    );
    for (const r of x.leakage) {
      lines.push(
        `| ${r.chunk} | ${fmt(r.finalTrainLoss, 3, m)} | ${
          fmt(r.leakyLoss, 3, m)
        } | ${fmt(r.causalLoss, 3, m)} |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}
