import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { SimResult } from "../sim/run.ts";
import { resolveSimConfig } from "../sim/config.ts";
import { BATCH_METRICS, METRIC } from "../metrics/batch_metrics.ts";
import {
  convergencePlot,
  loadHeatmap,
  metricOverSteps,
  mostImbalancedLayer,
} from "./sim_plots.ts";

/**
 * A hand-built run: 2 steps x 2 layers x 1 method x 2 experts, with loads
 * given per (step, layer) and MaxVio the only metric filled in.
 */
function fakeRun(loads: number[][], maxVio: number[]): SimResult {
  const config = resolveSimConfig({
    steps: 2,
    layers: 2,
    experts: 2,
    topK: 1,
    tokens: 4,
    methods: ["greedy"],
  });
  const n = loads.length * 2;
  const lt = {
    step: new Int32Array(n),
    layer: new Int32Array(n),
    method: new Int32Array(n),
    expert: new Int32Array(n),
    load: new Int32Array(n),
  };
  loads.forEach((pair, r) => {
    for (let j = 0; j < 2; j++) {
      lt.step[r * 2 + j] = r >> 1;
      lt.layer[r * 2 + j] = r & 1;
      lt.expert[r * 2 + j] = j;
      lt.load[r * 2 + j] = pair[j];
    }
  });
  // Every cell has a row per batch metric, MaxVio's filled in.
  const Q = BATCH_METRICS.length, m = maxVio.length * Q;
  const value = new Float64Array(m);
  maxVio.forEach((v, cell) => (value[cell * Q + METRIC.maxVio] = v));
  const metrics = {
    step: Int32Array.from({ length: m }, (_, r) => Math.floor(r / Q) >> 1),
    layer: Int32Array.from({ length: m }, (_, r) => Math.floor(r / Q) & 1),
    method: new Int32Array(m),
    metric: Int32Array.from({ length: m }, (_, r) => r % Q),
    value,
  };
  // Cast: other parts of SimResult (placement, optimum) play no part here.
  return {
    config,
    workload: {},
    backend: "cpu",
    labels: ["greedy"],
    methods: [],
    tables: {
      loads: lt,
      biases: { ...lt, bias: new Float64Array(n) },
      metrics,
    },
  } as unknown as SimResult;
}

describe("sim plots", () => {
  // Rows (step, layer): (0,0), (0,1), (1,0), (1,1).
  const run = fakeRun([[3, 1], [2, 2], [4, 0], [2, 2]], [0.5, 0, 1, 0.2]);

  test("metricOverSteps averages over layers, by hand", () => {
    assert.deepEqual(metricOverSteps(run), [
      { step: 0, method: "greedy", value: 0.25 },
      { step: 1, method: "greedy", value: 0.6 },
    ]);
  });

  test("mostImbalancedLayer picks the layer with the larger MaxVio sum", () => {
    assert.equal(mostImbalancedLayer(run), 0);
    const flipped = fakeRun([[2, 2], [3, 1], [2, 2], [4, 0]], [0, 0.5, 0.2, 1]);
    assert.equal(mostImbalancedLayer(flipped), 1);
  });

  test("loadHeatmap colours load over mean: 2 steps x 2 experts", () => {
    const svg = loadHeatmap(run, { layer: 0 }).svg;
    const cells = svg.match(/<rect fill="#[0-9a-f]{6}"/g) ?? [];
    assert.equal(cells.length, 4);
    // Loads 3,1 then 4,0 over mean 2: 1.5, 0.5, 2, 0; the legend runs 0 to 2.
    assert.match(svg, />0<\/text>/);
    assert.match(svg, />2<\/text>/);
  });

  test("loadHeatmap bins steps to at most maxColumns columns", () => {
    const svg = loadHeatmap(run, { layer: 0, maxColumns: 1 }).svg;
    assert.equal((svg.match(/<rect fill="#[0-9a-f]{6}"/g) ?? []).length, 2);
    assert.match(svg, /mean over 2 steps a column/);
    assert.throws(() => loadHeatmap(run, { layer: 2 }), RangeError);
  });

  test("convergencePlot draws the threshold and rejects unknown metrics", () => {
    const svg = convergencePlot(run, { logY: false }).svg;
    assert.match(svg, /MaxVio_batch/);
    assert.match(svg, /stroke-dasharray/);
    assert.throws(
      () => convergencePlot(run, { metric: "nope" as "maxVio" }),
      RangeError,
    );
  });
});
