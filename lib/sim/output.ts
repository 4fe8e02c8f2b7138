import { type OutputFile, writeFilesAtomically } from "../_write_files.ts";
import pl from "nodejs-polars";
import { writeFileSync } from "node:fs";
import { BATCH_METRICS, type SimResult } from "./run.ts";
import { epFiles, formatEpSection } from "./ep_output.ts";
import { simReportHtml } from "../report/html_report.ts";

/** The Polars DataFrames of a run. */
export interface SimFrames {
  /** `step, layer, method, expert, load`. */
  loads: pl.DataFrame;
  /** `step, layer, method, metric, value`. */
  metrics: pl.DataFrame;
  /** `step, layer, method, expert, bias`. */
  biases: pl.DataFrame;
}

function labelColumn(labels: string[], index: Int32Array): string[] {
  const out = new Array<string>(index.length);
  for (let i = 0; i < index.length; i++) out[i] = labels[index[i]];
  return out;
}

/**
 * The long tables of a run as Polars DataFrames (`loads`, `metrics`,
 * `biases`), with the method column holding labels.
 *
 * @example
 * ```ts
 * import { runSimulation, simFrames } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 });
 * const { loads } = simFrames(r);
 * assert.deepEqual(loads.columns, ["step", "layer", "method", "expert", "load"]);
 * assert.equal(loads.height, 2 * 1 * 2 * 8);
 * ```
 */
export function simFrames(result: SimResult): SimFrames {
  const { loads, metrics, biases } = result.tables;
  const names = BATCH_METRICS as readonly string[];
  return {
    loads: pl.DataFrame({
      step: pl.Series("step", loads.step, pl.Int32),
      layer: pl.Series("layer", loads.layer, pl.Int32),
      method: pl.Series(
        "method",
        labelColumn(result.labels, loads.method),
        pl.Utf8,
      ),
      expert: pl.Series("expert", loads.expert, pl.Int32),
      load: pl.Series("load", loads.load, pl.Int32),
    }),
    metrics: pl.DataFrame({
      step: pl.Series("step", metrics.step, pl.Int32),
      layer: pl.Series("layer", metrics.layer, pl.Int32),
      method: pl.Series(
        "method",
        labelColumn(result.labels, metrics.method),
        pl.Utf8,
      ),
      metric: pl.Series(
        "metric",
        Array.from(metrics.metric, (q) => names[q]),
        pl.Utf8,
      ),
      value: pl.Series("value", metrics.value, pl.Float64),
    }),
    biases: pl.DataFrame({
      step: pl.Series("step", biases.step, pl.Int32),
      layer: pl.Series("layer", biases.layer, pl.Int32),
      method: pl.Series(
        "method",
        labelColumn(result.labels, biases.method),
        pl.Utf8,
      ),
      expert: pl.Series("expert", biases.expert, pl.Int32),
      bias: pl.Series("bias", biases.bias, pl.Float64),
    }),
  };
}

/**
 * The `summary.json` object of a run: `{ config, backend, methods }`.
 *
 * @example
 * ```ts
 * import { runSimulation, simSummary } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = simSummary(runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 }));
 * assert.equal(s.backend, "cpu");
 * assert.deepEqual(s.methods.map((m) => m.method), ["greedy", "loss-free"]);
 * ```
 */
export function simSummary(result: SimResult): {
  config: Record<string, unknown>;
  backend: string;
  methods: SimResult["methods"];
} {
  return {
    config: {
      ...result.config,
      workload: result.workload,
      // The steps whose exact optimum the optimality gap compares against.
      optimumSteps: result.optimumSteps,
    },
    backend: result.backend,
    methods: result.methods,
  };
}

/**
 * Writes `loads.parquet`, `metrics.parquet`, `biases.parquet`,
 * `summary.json` and `report.html` (summary, convergence plot and load
 * heatmap on one self-contained page) into `dir`. Everything is first
 * written to a temporary folder beside `dir`, then renamed into place, so a
 * failure leaves no half-written file in `dir`.
 *
 * @returns The paths written.
 */
export function writeSimOutputs(result: SimResult, dir: string): string[] {
  const frames = simFrames(result);
  const files: OutputFile[] = [
    ["loads.parquet", (p) => frames.loads.writeParquet(p)],
    ["metrics.parquet", (p) => frames.metrics.writeParquet(p)],
    ["biases.parquet", (p) => frames.biases.writeParquet(p)],
    ...epFiles(result),
    [
      "summary.json",
      (p) =>
        writeFileSync(p, JSON.stringify(simSummary(result), null, 2) + "\n"),
    ],
    [
      "report.html",
      (p) => writeFileSync(p, simReportHtml(result, simSummary(result))),
    ],
  ];
  return writeFilesAtomically(dir, files);
}

function fmt(x: number | null, digits = 3): string {
  if (x === null) return "never";
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

/**
 * The summary as a fixed-width text table, one row per method.
 *
 * @example
 * ```ts
 * import { runSimulation, formatSummaryTable } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const t = formatSummaryTable(runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 }));
 * assert.match(t, /MaxVio_global/);
 * ```
 */
export function formatSummaryTable(result: SimResult): string {
  const header = [
    "method",
    "causal",
    "MaxVio_batch",
    "MaxVio_global",
    "score retention",
    "optimality gap",
    "steps to balance",
    "wall ms",
  ];
  const rows = result.methods.map((m) => [
    m.method,
    m.causal ? "yes" : "no",
    fmt(m.maxVioBatch),
    fmt(m.maxVioGlobal),
    fmt(m.scoreRetention, 4),
    m.optimalityGap === null ? "-" : `${(100 * m.optimalityGap).toFixed(2)}%`,
    m.stepsToBalance === null ? "never" : String(m.stepsToBalance),
    fmt(m.wallMs, 0),
  ]);
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => r[c].length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, c) =>
      c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])
    ).join(
      "  ",
    );
  const c = result.config;
  const title =
    `${c.layers} layers x ${c.steps} steps x ${c.tokens} tokens, ${c.experts} experts, top-${c.topK}, ${c.gate} gate; evaluation: last ${
      Math.round(c.evalFraction * 100)
    }% of steps${
      result.optimumSteps.length
        ? `; optimality gap against the exact optimum on ${result.optimumSteps.length} of them`
        : ""
    }`;
  return [
    title,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...formatEpSection(result),
  ].join("\n");
}
