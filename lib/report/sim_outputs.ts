// A simulation run's files: parquet tables, summary.json and the HTML report.
import { writeFileSync } from "node:fs";
import {
  checkReplaceable,
  type OutputFile,
  writeFilesAtomically,
} from "../write_files.ts";
import type { SimResult } from "../sim/run.ts";
import { simSummary } from "../sim/summary_table.ts";
import { simReportHtml } from "./html_report.ts";
import { gpuLoadsSource, simTableSources } from "./sim_frames.ts";
import { writeTableParquet } from "./_table_writer.ts";

/**
 * Writes `loads.parquet`, `metrics.parquet`, `biases.parquet`,
 * `gpu_loads.parquet` (with the EP stage; each table streamed to its file
 * in slices of rows, so that a large run is never held as dataframes),
 * `summary.json` and `report.html` (summary, convergence plot and load
 * heatmap on one self-contained page) as the whole of `dir`. Everything
 * is first written to a temporary folder beside `dir`, which then replaces
 * `dir`: the folder holds the earlier run or this one, never a mix. A
 * `dir` holding files no run writes is refused before any work.
 *
 * @param result A run of `runSimulation`.
 * @param dir The folder to write into (created if missing).
 * @returns The paths written.
 * @throws {RangeError} If `dir` is a file, or a folder holding other files.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { writeSimOutputs } from "@moelab/balance/report";
 * import { mkdtempSync, readFileSync, rmSync } from "node:fs";
 * import { tmpdir } from "node:os";
 * import { basename, join } from "node:path";
 * import assert from "node:assert/strict";
 *
 * const dir = mkdtempSync(join(tmpdir(), "moelab-"));
 * const r = runSimulation({ steps: 2, layers: 1, tokens: 64, experts: 8, topK: 2 });
 * const files = writeSimOutputs(r, dir).map((p) => basename(p));
 * assert.ok(files.includes("loads.parquet") && files.includes("report.html"));
 * const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
 * assert.equal(summary.methods.length, 2);
 * rmSync(dir, { recursive: true });
 * ```
 */
export function writeSimOutputs(result: SimResult, dir: string): string[] {
  checkReplaceable("dir", dir, SIM_OUTPUT_FILES);
  const tables = simTableSources(result);
  const files: OutputFile[] = [
    ["loads.parquet", (p) => writeTableParquet(p, tables.loads)],
    ["metrics.parquet", (p) => writeTableParquet(p, tables.metrics)],
    ["biases.parquet", (p) => writeTableParquet(p, tables.biases)],
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
  return writeFilesAtomically(dir, files, SIM_OUTPUT_FILES);
}

/**
 * Every file a simulation run may write: a folder holding only these is
 * an earlier run's, which a new run replaces as a whole.
 */
export const SIM_OUTPUT_FILES: readonly string[] = [
  "loads.parquet",
  "metrics.parquet",
  "biases.parquet",
  "gpu_loads.parquet",
  "summary.json",
  "report.html",
];

/** `[["gpu_loads.parquet", writer]]`, or nothing when the EP stage was off. */
function epFiles(result: SimResult): OutputFile[] {
  const source = gpuLoadsSource(result);
  return source
    ? [["gpu_loads.parquet", (p) => writeTableParquet(p, source)]]
    : [];
}
