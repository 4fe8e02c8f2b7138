import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createBalancer } from "../route/registry.ts";
import { prepareRun } from "./prepare_run.ts";
import { balancerContext, simulateLayers } from "./_simulate.ts";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";

describe("simulateLayers", () => {
  test("holds only the rows of its layers, equal to the full run's", () => {
    const run = prepareRun({
      steps: 5,
      layers: 3,
      tokens: 64,
      experts: 8,
      topK: 2,
      methods: ["greedy", "loss-free(rate=0.1)", "exact"],
    });
    const fresh = () =>
      run.specs.map((s) => createBalancer(s, balancerContext(run.config)));
    const full = simulateLayers(run, fresh(), [0, 1, 2]);
    const part = simulateLayers(run, fresh(), [2, 0]);
    const [S, L, M, E, Q] = [5, 3, 3, 8, BATCH_METRICS.length];
    assert.equal(part.tables.loads.load.length, S * 2 * M * E);
    assert.equal(part.tables.metrics.value.length, S * 2 * M * Q);
    assert.equal(part.gaps.length, S * 2 * M);
    assert.deepEqual(part.layers, [2, 0]);
    for (let s = 0; s < S; s++) {
      part.layers.forEach((layer, h) => {
        const from = s * 2 + h, to = s * L + layer;
        const rows = (a: ArrayLike<number>, cell: number, size: number) =>
          Array.from(a).slice(cell * size, (cell + 1) * size);
        for (const column of ["layer", "load"] as const) {
          assert.deepEqual(
            rows(part.tables.loads[column], from, M * E),
            rows(full.tables.loads[column], to, M * E),
          );
        }
        assert.deepEqual(
          rows(part.tables.biases.bias, from, M * E),
          rows(full.tables.biases.bias, to, M * E),
        );
        assert.deepEqual(
          rows(part.tables.metrics.value, from, M * Q),
          rows(full.tables.metrics.value, to, M * Q),
        );
        assert.deepEqual(rows(part.gaps, from, M), rows(full.gaps, to, M));
      });
    }
  });
});
