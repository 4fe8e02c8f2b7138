import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  BATCH_METRICS,
  batchMetrics,
  batchMetricsMany,
  METRIC,
} from "./batch_metrics.ts";
import { selectedScoreSum } from "./load_metrics.ts";

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

  test("equals a plain two-pass twin bit for bit (read-ahead edges, -1 slots, -Infinity)", () => {
    // Sizes around the read-ahead distance (8 KiB of rows ahead) and odd
    // widths; a seeded LCG fills scores, slots and loads.
    let seed = 17;
    const u = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      return (seed >>> 0) / 4294967296;
    };
    for (
      const [tokens, experts, k, topK] of [
        [1, 1, 1, 1],
        [7, 256, 8, 8],
        [8, 256, 8, 8],
        [9, 256, 8, 6],
        [40, 256, 8, 8],
        [1000, 3, 2, 2],
        [3000, 64, 6, 4],
        [513, 2048, 3, 4],
      ]
    ) {
      const data = Float32Array.from(
        { length: tokens * experts },
        () => u() < 0.02 ? -Infinity : u() * 4 - 1,
      );
      const experts_ = Int32Array.from(
        { length: tokens * k },
        () => u() < 0.1 ? -1 : Math.floor(u() * experts),
      );
      const loads = Int32Array.from(
        { length: experts },
        () => u() < 0.2 ? 0 : Math.floor(u() * 50),
      );
      const scores = { data, tokens, experts };
      const routing = {
        experts: experts_,
        weights: new Float32Array(),
        loads,
        k,
      };
      const got = batchMetrics(scores, routing, { topK, referenceSum: 321.5 });
      const want = twin(data, experts_, loads, tokens, experts, k, topK, 321.5);
      assert.deepEqual([...got], want, `${tokens} x ${experts}, k ${k}`);
      assert.ok(
        Object.is(
          selectedScoreSum(scores, routing),
          twinSum(data, experts_, tokens, experts, k),
        ),
      );
    }
  });
});

describe("batchMetricsMany", () => {
  test("each routing's batchMetrics and sum, bit for bit, in one pass", () => {
    // Routings of one batch with different slot counts (k = 1, 3, 8, and
    // E slots as Expert Choice's), empty slots and masked scores; the
    // reference is each of them in turn. Twins: batchMetrics with the
    // reference's selectedScoreSum, and twinSum.
    let seed = 5;
    const u = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      return (seed >>> 0) / 4294967296;
    };
    for (const [tokens, experts] of [[1, 4], [9, 256], [700, 64], [301, 17]]) {
      const data = Float32Array.from(
        { length: tokens * experts },
        () => u() < 0.02 ? -Infinity : u() * 4 - 1,
      );
      const scores = { data, tokens, experts };
      const routings = [1, 3, 8, experts].map((k) => ({
        experts: Int32Array.from(
          { length: tokens * k },
          () => u() < 0.1 ? -1 : Math.floor(u() * experts),
        ),
        weights: new Float32Array(),
        loads: Int32Array.from({ length: experts }, () => Math.floor(u() * 9)),
        k,
      }));
      for (let ref = 0; ref < routings.length; ref++) {
        const { values, sums } = batchMetricsMany(scores, routings, {
          topK: 3,
          referenceIndex: ref,
        });
        const referenceSum = selectedScoreSum(scores, routings[ref]);
        routings.forEach((routing, r) => {
          const what = `${tokens} x ${experts}, routing ${r}, reference ${ref}`;
          assert.ok(
            Object.is(
              sums[r],
              twinSum(data, routing.experts, tokens, experts, routing.k),
            ),
            what,
          );
          assert.deepEqual(
            values[r],
            batchMetrics(scores, routing, { topK: 3, referenceSum }),
            what,
          );
        });
      }
    }
  });

  test("writes into out; rejects a reference it does not have and a short routing", () => {
    const scores = {
      data: new Float32Array([0.25, 0.75, 0.5, 0.5]),
      tokens: 2,
      experts: 2,
    };
    const routing = {
      experts: new Int32Array([1, 0]),
      weights: new Float32Array(2),
      loads: new Int32Array([1, 1]),
      k: 1,
    };
    const out = [new Float64Array(BATCH_METRICS.length)];
    const { values, sums } = batchMetricsMany(scores, [routing], {
      topK: 1,
      referenceIndex: 0,
      out,
    });
    assert.equal(values[0], out[0]);
    assert.equal(sums[0], 1.25);
    assert.equal(out[0][METRIC.scoreRetention], 1);
    for (const referenceIndex of [1, -1, 0.5, NaN]) {
      assert.throws(
        () => batchMetricsMany(scores, [routing], { topK: 1, referenceIndex }),
        new RegExp(
          `referenceIndex must name one of the 1 routings: current value is ${referenceIndex}`,
        ),
      );
    }
    const short = { ...routing, experts: new Int32Array([1]) };
    assert.throws(
      () =>
        batchMetricsMany(scores, [routing, short], {
          topK: 1,
          referenceIndex: 0,
        }),
      TypeError,
    );
  });
});

/** The selected score sum, slot by slot in token order. */
function twinSum(
  data: Float32Array,
  sel: Int32Array,
  tokens: number,
  experts: number,
  k: number,
): number {
  let sum = 0;
  for (let i = 0; i < tokens; i++) {
    for (let r = 0; r < k; r++) {
      const j = sel[i * k + r];
      if (j >= 0 && data[i * experts + j] !== -Infinity) {
        sum += data[i * experts + j];
      }
    }
  }
  return sum;
}

/** The metrics from their definitions, one pass per quantity. */
function twin(
  data: Float32Array,
  sel: Int32Array,
  loads: Int32Array,
  tokens: number,
  experts: number,
  k: number,
  topK: number,
  referenceSum: number,
): number[] {
  const total = loads.reduce((a, b) => a + b, 0);
  const mean = total / experts;
  const max = Math.max(...loads);
  const ss = loads.reduce((a, c) => a + (c - mean) ** 2, 0);
  let empty = 0, without = 0;
  for (let i = 0; i < tokens; i++) {
    const used = [...sel.subarray(i * k, i * k + k)].filter((j) => j >= 0)
      .length;
    empty += Math.max(0, topK - used);
    if (used === 0) without++;
  }
  const sum = twinSum(data, sel, tokens, experts, k);
  return [
    mean === 0 ? 0 : (max - mean) / mean,
    mean === 0 ? 0 : Math.sqrt(ss / experts) / mean,
    mean === 0 ? 0 : max / mean,
    loads.filter((c) => c === 0).length,
    referenceSum === 0 ? 1 : sum / referenceSum,
    empty / (tokens * topK),
    without,
  ];
}
