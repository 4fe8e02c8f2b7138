import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pl from "nodejs-polars";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSimulation } from "../sim/run.ts";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import { EP_STRATEGIES } from "../sim/ep_config.ts";
import { writeSimOutputs } from "./sim_outputs.ts";
import { gpuLoadsFrame, simFrames, simTableSources } from "./sim_frames.ts";
import { writeTableParquet } from "./_table_writer.ts";

// Two layers, three methods, an EP stage: every table has rows.
const RUN = {
  steps: 6,
  layers: 2,
  tokens: 96,
  experts: 8,
  topK: 2,
  seed: 3,
  methods: ["greedy", "loss-free(rate=0.01)", "bip"],
  ep: { gpus: 4, gpusPerNode: 2 },
};

/**
 * A long table's expected rows built by nested loops, in the order the
 * simulator documents (step, layer, method, inner), apart from the code
 * under test: `row(step, layer, method, inner)` gives the value.
 */
function expectedRows(
  steps: number,
  layers: number,
  methods: readonly string[],
  inner: readonly (string | number)[],
  names: [string, string, string, string, string],
  value: (row: number) => number,
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let row = 0;
  for (let s = 0; s < steps; s++) {
    for (let l = 0; l < layers; l++) {
      for (const m of methods) {
        for (const i of inner) {
          out.push({
            [names[0]]: s,
            [names[1]]: l,
            [names[2]]: m,
            [names[3]]: i,
            [names[4]]: value(row++),
          });
        }
      }
    }
  }
  return out;
}

/** Rows of a frame as records, NaN written as a string so that deepEqual compares it. */
function records(frame: pl.DataFrame): Record<string, unknown>[] {
  return frame.toRecords().map((r) =>
    Object.fromEntries(
      Object.entries(r).map((
        [k, v],
      ) => [k, typeof v === "number" && Number.isNaN(v) ? "NaN" : v]),
    )
  );
}

describe("writeSimOutputs: the parquet tables", () => {
  const result = runSimulation(RUN);
  const { steps, layers, experts } = result.config;
  const labels = result.labels;
  const t = result.tables;
  const experts_ = Array.from({ length: experts }, (_, j) => j);
  const nan = (v: number) => Number.isNaN(v) ? "NaN" : v;
  const want = {
    loads: expectedRows(
      steps,
      layers,
      labels,
      experts_,
      ["step", "layer", "method", "expert", "load"],
      (r) => t.loads.load[r],
    ),
    biases: expectedRows(
      steps,
      layers,
      labels,
      experts_,
      ["step", "layer", "method", "expert", "bias"],
      (r) => nan(t.biases.bias[r]) as number,
    ),
    metrics: expectedRows(
      steps,
      layers,
      labels,
      BATCH_METRICS,
      ["step", "layer", "method", "metric", "value"],
      (r) => nan(t.metrics.value[r]) as number,
    ),
  };

  test("each table holds every row, in order, with the in-memory build's columns and types", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-simout-"));
    try {
      writeSimOutputs(result, join(dir, "run"));
      const frames = simFrames(result);
      for (const name of ["loads", "biases", "metrics"] as const) {
        const back = pl.readParquet(join(dir, "run", `${name}.parquet`));
        assert.deepEqual(records(back), want[name], name);
        const mem = frames[name];
        assert.deepEqual(back.columns, mem.columns, name);
        assert.deepEqual(back.dtypes.map(String), mem.dtypes.map(String));
        assert.ok(back.frameEqual(mem, true), name);
      }
      // gpu_loads: against the EP stage's own columns.
      const gpu = pl.readParquet(join(dir, "run", "gpu_loads.parquet"));
      const ep = result.ep!.table;
      assert.ok(ep.tokens.length > 0);
      assert.deepEqual(
        gpu.toRecords(),
        Array.from(ep.tokens, (tokens, r) => ({
          step: ep.step[r],
          layer: ep.layer[r],
          method: labels[ep.method[r]],
          strategy: EP_STRATEGIES[ep.strategy[r]],
          gpu: ep.gpu[r],
          tokens,
        })),
      );
      const mem = gpuLoadsFrame(result)!;
      assert.deepEqual(gpu.dtypes.map(String), mem.dtypes.map(String));
      assert.ok(gpu.frameEqual(mem, true));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("row groups cut anywhere in the index give the same file content", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-simout-"));
    try {
      const sources = simTableSources(result);
      for (const group of [1, 5, experts * labels.length + 3]) {
        for (const name of ["loads", "metrics"] as const) {
          const path = join(dir, `${name}-${group}.parquet`);
          writeTableParquet(path, sources[name], group);
          assert.deepEqual(
            records(pl.readParquet(path)),
            want[name],
            `${name}, ${group} rows per group`,
          );
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
