import { type OutputFile, writeFilesAtomically } from "../write_files.ts";
import pl from "nodejs-polars";
import { writeFileSync } from "node:fs";
import type {
  MeanStd,
  TrainExperiment,
  TrainMethodSummary,
} from "./experiment.ts";

/** The Polars DataFrames of a training experiment. */
export interface TrainFrames {
  /** Per step: `step, method, seed, loss, aux, maxVioBatch`. */
  curves: pl.DataFrame;
  /** Per run: `method, seed, perplexity, bitsPerChar, maxVioGlobal, maxVioBatch, seconds`. */
  runs: pl.DataFrame;
  /** Validation load per expert: `method, seed, expert, load`. */
  loads: pl.DataFrame;
}

/**
 * The long tables of a training experiment as Polars DataFrames.
 *
 * @example
 * ```ts
 * import { loadBrown, runTrainExperiment, trainFrames } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const x = runTrainExperiment({
 *   methods: ["none"], seeds: [1], steps: 3, dim: 8, hidden: 8, experts: 4, topK: 1,
 *   batchSeqs: 2, seqLen: 16, validTokens: 64,
 * }, { corpus: loadBrown({ maxFiles: 10 }) });
 * const { curves } = trainFrames(x);
 * assert.deepEqual(curves.columns, ["step", "method", "seed", "loss", "aux", "maxVioBatch"]);
 * assert.equal(curves.height, 3);
 * ```
 */
export function trainFrames(x: TrainExperiment): TrainFrames {
  const step: number[] = [], method: string[] = [], seed: number[] = [];
  const loss: number[] = [], aux: number[] = [], mvb: number[] = [];
  const lm: string[] = [],
    ls: number[] = [],
    le: number[] = [],
    lv: number[] = [];
  for (const r of x.runs) {
    const n = r.curve.loss.length;
    for (let i = 0; i < n; i++) {
      step.push(i + 1);
      method.push(r.method);
      seed.push(r.seed);
      loss.push(r.curve.loss[i]);
      aux.push(r.curve.aux[i]);
      mvb.push(r.curve.maxVioBatch[i]);
    }
    r.loads.forEach((load, e) => {
      lm.push(r.method);
      ls.push(r.seed);
      le.push(e);
      lv.push(load);
    });
  }
  const col = <T>(
    runs: TrainExperiment["runs"],
    f: (r: TrainExperiment["runs"][0]) => T,
  ) => runs.map(f);
  return {
    curves: pl.DataFrame({
      step: pl.Series("step", step, pl.Int32),
      method: pl.Series("method", method, pl.Utf8),
      seed: pl.Series("seed", seed, pl.Int32),
      loss: pl.Series("loss", loss, pl.Float64),
      aux: pl.Series("aux", aux, pl.Float64),
      maxVioBatch: pl.Series("maxVioBatch", mvb, pl.Float64),
    }),
    runs: pl.DataFrame({
      method: pl.Series("method", col(x.runs, (r) => r.method), pl.Utf8),
      seed: pl.Series("seed", col(x.runs, (r) => r.seed), pl.Int32),
      perplexity: pl.Series(
        "perplexity",
        col(x.runs, (r) => r.perplexity),
        pl.Float64,
      ),
      bitsPerChar: pl.Series(
        "bitsPerChar",
        col(x.runs, (r) => r.bitsPerChar),
        pl.Float64,
      ),
      maxVioGlobal: pl.Series(
        "maxVioGlobal",
        col(x.runs, (r) => r.maxVioGlobal),
        pl.Float64,
      ),
      maxVioBatch: pl.Series(
        "maxVioBatch",
        col(x.runs, (r) => r.maxVioBatch),
        pl.Float64,
      ),
      seconds: pl.Series("seconds", col(x.runs, (r) => r.seconds), pl.Float64),
    }),
    loads: pl.DataFrame({
      method: pl.Series("method", lm, pl.Utf8),
      seed: pl.Series("seed", ls, pl.Int32),
      expert: pl.Series("expert", le, pl.Int32),
      load: pl.Series("load", lv, pl.Int32),
    }),
  };
}

/**
 * The `summary.json` object: the preset, the seeds and one entry per
 * method, `{ method, perplexity, bitsPerChar, maxVioGlobal, maxVioBatch,
 * seconds }`, each figure `{ mean, std }` over the seeds (`std` null over one
 * seed).
 */
export function trainSummary(x: TrainExperiment): {
  preset: TrainExperiment["preset"];
  backend: string;
  methods: TrainMethodSummary[];
} {
  return { preset: x.preset, backend: "cpu", methods: x.summary };
}

/**
 * Writes `curves.parquet`, `runs.parquet`, `loads.parquet` and
 * `summary.json` as the whole of `dir`, through a temporary folder that
 * replaces it, so the folder holds the earlier run or this one, never a
 * mix; a `dir` holding files no run writes is refused.
 *
 * @returns The paths written.
 */
export function writeTrainOutputs(x: TrainExperiment, dir: string): string[] {
  const f = trainFrames(x);
  const files: OutputFile[] = [
    ["curves.parquet", (p) => f.curves.writeParquet(p)],
    ["runs.parquet", (p) => f.runs.writeParquet(p)],
    ["loads.parquet", (p) => f.loads.writeParquet(p)],
    [
      "summary.json",
      (p) => writeFileSync(p, JSON.stringify(trainSummary(x), null, 2) + "\n"),
    ],
  ];
  return writeFilesAtomically(dir, files, TRAIN_OUTPUT_FILES);
}

/** Every file a training run writes, which a new run replaces as a whole. */
export const TRAIN_OUTPUT_FILES: readonly string[] = [
  "curves.parquet",
  "runs.parquet",
  "loads.parquet",
  "summary.json",
];

/** `mean ± std`; the mean alone where the spread is unknown (one seed). */
function pm(m: MeanStd, digits: number): string {
  return Number.isNaN(m.std)
    ? m.mean.toFixed(digits)
    : `${m.mean.toFixed(digits)} ± ${m.std.toFixed(digits)}`;
}

/** "N seeds (mean ± std)", or "1 seed" (no spread to show). */
function seedsPhrase(n: number): string {
  return n === 1 ? "1 seed" : `${n} seeds (mean ± std)`;
}

/**
 * The summary as a fixed-width text table, one row per method, figures as
 * mean ± sample standard deviation over the seeds (the mean alone over
 * one seed).
 *
 * @example
 * ```ts
 * import { formatTrainTable, loadBrown, runTrainExperiment } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const x = runTrainExperiment({
 *   methods: ["none"], seeds: [1], steps: 2, dim: 8, hidden: 8, experts: 4, topK: 1,
 *   batchSeqs: 2, seqLen: 16, validTokens: 64,
 * }, { corpus: loadBrown({ maxFiles: 10 }) });
 * assert.match(formatTrainTable(x), /MaxVio_global/);
 * ```
 */
export function formatTrainTable(x: TrainExperiment): string {
  const header = [
    "method",
    "perplexity",
    "bits/char",
    "MaxVio_global",
    "MaxVio_batch",
    "train s",
  ];
  const rows = x.summary.map((s) => [
    s.method,
    pm(s.perplexity, 3),
    pm(s.bitsPerChar, 4),
    pm(s.maxVioGlobal, 3),
    pm(s.maxVioBatch, 3),
    pm(s.seconds, 1),
  ]);
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => r[c].length))
  );
  const line = (cells: string[]) =>
    cells.map((
      cell,
      c,
    ) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join("  ");
  const p = x.preset;
  const title =
    `${p.experts ?? 8} experts, top-${p.topK ?? 2}, ${
      p.gate ?? "sigmoid"
    } gate, ` +
    `${p.steps ?? 300} steps x ${
      (p.batchSeqs ?? 8) * (p.seqLen ?? 32)
    } characters, ` +
    `${seedsPhrase(x.preset.seeds.length)}; validation: ${
      p.validTokens ?? 8192
    } characters`;
  return [
    title,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}
