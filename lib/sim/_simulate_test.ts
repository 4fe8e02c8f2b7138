import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createBalancer } from "../route/registry.ts";
import { prepareRun } from "./prepare_run.ts";
import { balancerContext, simulateLayers, startPrices } from "./_simulate.ts";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import {
  allocateTables,
  indexColumns,
  tableBuffers,
  tablesOf,
} from "./tables.ts";

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

describe("simulateLayers into full tables", () => {
  test("shares of the layers, each writing its own rows in place, give the full run's tables", () => {
    const run = prepareRun({
      steps: 4,
      layers: 3,
      tokens: 64,
      experts: 8,
      topK: 2,
      methods: ["greedy", "loss-free(rate=0.1)"],
      gapSteps: 2,
    });
    const fresh = () =>
      run.specs.map((s) => createBalancer(s, balancerContext(run.config)));
    const full = simulateLayers(run, fresh(), [0, 1, 2]);
    const into = {
      tables: allocateTables(4, 3, 2, 8),
      gaps: new Float64Array(4 * 3 * 2).fill(NaN),
    };
    simulateLayers(run, fresh(), [2], undefined, into);
    const part = simulateLayers(run, fresh(), [1, 0], undefined, into);
    assert.equal(part.tables, into.tables);
    assert.deepEqual(part.layers, [0, 1, 2]);
    assert.deepEqual(into.tables.loads.load, full.tables.loads.load);
    assert.deepEqual(into.tables.biases.bias, full.tables.biases.bias);
    assert.deepEqual(into.tables.metrics.value, full.tables.metrics.value);
    assert.deepEqual(into.gaps, full.gaps);
    assert.ok(full.gaps.some((g) => Number.isFinite(g)));
  });
});

describe("tablesOf", () => {
  test("index columns follow the (step, layer, method, inner) row order, any slice of them too", () => {
    const [S, M, E] = [3, 2, 5];
    const layers = [4, 1];
    const t = tablesOf(S, layers, M, E, {
      load: new Int32Array(S * 2 * M * E),
      bias: new Float64Array(S * 2 * M * E),
      value: new Float64Array(S * 2 * M * BATCH_METRICS.length),
    });
    // Nested loops, the plain way.
    const want: number[][] = [];
    for (let s = 0; s < S; s++) {
      for (const l of layers) {
        for (let m = 0; m < M; m++) {
          for (let j = 0; j < E; j++) want.push([s, l, m, j]);
        }
      }
    }
    const got = want.map((_, r) => [
      t.loads.step[r],
      t.loads.layer[r],
      t.loads.method[r],
      t.loads.expert[r],
    ]);
    assert.deepEqual(got, want);
    assert.equal(t.biases.step, t.loads.step, "loads and biases share them");
    assert.equal(t.metrics.metric.length, S * 2 * M * BATCH_METRICS.length);
    for (const [from, to] of [[0, 1], [7, 33], [59, 60]]) {
      const c = indexColumns(S, layers, M, E, from, to);
      assert.deepEqual(
        Array.from({ length: to - from }, (_, i) => [
          c.step[i],
          c.layer[i],
          c.method[i],
          c.inner[i],
        ]),
        want.slice(from, to),
      );
    }
  });
});

describe("tableBuffers", () => {
  test("leaves out columns on shared memory, which cannot be transferred", () => {
    const rows = 2 * 1 * 1 * 4, metricRows = 2 * BATCH_METRICS.length;
    const shared = tablesOf(2, [0], 1, 4, {
      load: new Int32Array(new SharedArrayBuffer(rows * 4)),
      bias: new Float64Array(new SharedArrayBuffer(rows * 8)),
      value: new Float64Array(new SharedArrayBuffer(metricRows * 8)),
    });
    const buffers = [...new Set(tableBuffers(shared))];
    // The index columns only: step, layer, method, expert (shared by loads
    // and biases) and step, layer, method, metric.
    assert.equal(buffers.length, 8);
    assert.ok(buffers.every((b) => b instanceof ArrayBuffer));
    const copy = structuredClone(shared, { transfer: buffers });
    assert.equal(copy.loads.load.buffer instanceof SharedArrayBuffer, true);
    assert.deepEqual(Array.from(copy.loads.expert), [0, 1, 2, 3, 0, 1, 2, 3]);
    const plain = allocateTables(2, 1, 1, 4);
    assert.equal(new Set(tableBuffers(plain)).size, 11);
  });
});

describe("startPrices", () => {
  // Three methods' bias rows of four experts, after an unrelated row.
  const E = 4;
  const rows = (...r: number[][]) =>
    Float64Array.from([9, 9, 9, 9, ...r.flat()]);
  test("a non-causal method's prices first, negated", () => {
    const bias = rows([0, 0, 0, 0], [-1, 2, 0, -0], [-3, 0, 1, 0]);
    const q = startPrices([true, true, false], bias, E, E)!;
    assert.deepEqual([...q], [3, 0, -1, 0]);
    // 0 - v: a zero bias gives the price +0, not -0.
    assert.ok(Object.is(q[1], 0));
  });
  test("else the first causal method with a nonzero bias", () => {
    const bias = rows([0, 0, 0, 0], [-1, 2, 0, -0], [-3, 0, 1, 0]);
    assert.deepEqual([...startPrices([true, true, true], bias, E, E)!], [
      1,
      -2,
      0,
      0,
    ]);
    // A non-causal method without a bias (Expert Choice) gives none.
    const zero = rows([0, -0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0]);
    assert.deepEqual([...startPrices([false, true, false], zero, E, E)!], [
      0,
      0,
      -0.5,
      0,
    ]);
  });
  test("a bias that is not finite is passed over", () => {
    const bias = rows([0, -Infinity, 1, 0], [NaN, 0, 0, 0], [0, 2, 0, 0]);
    assert.deepEqual([...startPrices([false, false, true], bias, E, E)!], [
      0,
      -2,
      0,
      0,
    ]);
    assert.equal(startPrices([false, false], bias, E, E), undefined);
  });
  test("none where every bias is zero", () => {
    const bias = rows([0, 0, 0, 0], [0, -0, 0, 0]);
    assert.equal(startPrices([false, true], bias, E, E), undefined);
  });
});
