import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BATCH_METRICS, batchMetrics, METRIC } from "./batch_metrics.ts";

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-6, `${what}: ${a} vs ${b}`);

describe("batchMetrics", () => {
  test("METRIC names every position of BATCH_METRICS once", () => {
    assert.deepEqual(
      Object.entries(METRIC).sort((a, b) => a[1] - b[1]).map(([name]) => name),
      [...BATCH_METRICS],
    );
  });

  test("pins hand-computed values of a batch with empty slots", () => {
    // 3 tokens x 4 experts, 2 slots: token 0 -> 0, 1; token 1 -> 1 and an
    // empty slot; token 2 -> nothing. Loads 1, 2, 0, 0: mean 3/4, max 2.
    const scores = {
      data: new Float32Array([
        ...[0.5, 0.25, 0.125, 0.125],
        ...[0.125, 0.625, 0.25, 0],
        ...[1, 1, 1, 1],
      ]),
      tokens: 3,
      experts: 4,
    };
    const routing = {
      experts: new Int32Array([0, 1, 1, -1, -1, -1]),
      weights: new Float32Array(6),
      loads: new Int32Array([1, 2, 0, 0]),
      k: 2,
    };
    const v = batchMetrics(scores, routing, { topK: 2, referenceSum: 2.75 });
    close(v[METRIC.maxVio], (2 - 0.75) / 0.75, "maxVio");
    // deviations 1/4, 5/4, -3/4, -3/4: variance 11/16
    close(v[METRIC.cv], Math.sqrt(11 / 16) / 0.75, "cv");
    close(v[METRIC.maxOverMean], 2 / 0.75, "maxOverMean");
    assert.equal(v[METRIC.zeroExperts], 2);
    // selected 0.5 + 0.25 + 0.625 = 1.375 of 2.75
    assert.equal(v[METRIC.scoreRetention], 0.5);
    // slots short of K = 2: 0 + 1 + 2 of 3 x 2
    assert.equal(v[METRIC.droppedFraction], 0.5);
    assert.equal(v[METRIC.tokensWithoutExpert], 1);
  });

  test("an empty batch balances trivially; slots beyond K drop nothing", () => {
    const scores = { data: new Float32Array(4), tokens: 2, experts: 2 };
    const none = {
      experts: new Int32Array([-1, -1]),
      weights: new Float32Array(2),
      loads: new Int32Array(2),
      k: 1,
    };
    const out = new Float64Array(BATCH_METRICS.length).fill(NaN);
    const v = batchMetrics(scores, none, { topK: 1, referenceSum: 0, out });
    assert.equal(v, out);
    assert.deepEqual([...v], [0, 0, 0, 2, 1, 1, 2]);
    // Three slots for a K of 1 (an Expert Choice routing): nothing dropped.
    const wide = {
      experts: new Int32Array([0, 1, -1, 1, -1, -1]),
      weights: new Float32Array(6),
      loads: new Int32Array([1, 2]),
      k: 3,
    };
    const w = batchMetrics(scores, wide, { topK: 1, referenceSum: 1 });
    assert.equal(w[METRIC.droppedFraction], 0);
    assert.equal(w[METRIC.tokensWithoutExpert], 0);
  });
});
