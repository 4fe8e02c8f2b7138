import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { lossFree } from "./loss_free.ts";
import { greedy } from "./greedy.ts";
import { syntheticWorkload } from "../workload/synthetic.ts";
import { maxVio } from "../metrics/load_metrics.ts";

// Every token prefers expert 0: greedy top-1 sends all to 0. Values are
// dyadic so that the sums below are exact.
const scores = {
  data: new Float32Array([
    0.875,
    0.5,
    0.125,
    0.75,
    0.625,
    0.25,
    0.625,
    0.375,
    0.25,
  ]),
  tokens: 3,
  experts: 3,
};

describe("lossFree", () => {
  test("sign rule moves each bias by u against its load error", () => {
    const b = lossFree({ layers: 2, experts: 3, k: 1 }, { rate: 0.125 });
    const r = b.route(1, scores);
    assert.deepEqual([...r.loads], [3, 0, 0]);
    b.update(1, scores, r);
    // mean 1: e = [-2, 1, 1]
    assert.deepEqual([...b.biases(1)], [-0.125, 0.125, 0.125]);
    assert.deepEqual(
      [...b.biases(0)],
      [0, 0, 0],
      "layers keep separate biases",
    );
    // Next batch: token 0: 0.75 vs 0.625 -> 0; token 1: 0.625 vs 0.75 -> 1;
    // token 2: 0.5 vs 0.5, a tie -> the lower index, 0.
    const r2 = b.route(1, scores);
    assert.deepEqual([...r2.experts], [0, 1, 0]);
  });

  test("a balanced batch leaves the biases unchanged under the sign rule", () => {
    const b = lossFree({ layers: 1, experts: 3, k: 1 }, { rate: 0.1 });
    const eye = {
      data: new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1]),
      tokens: 3,
      experts: 3,
    };
    b.update(0, eye, b.route(0, eye));
    assert.deepEqual([...b.biases(0)], [0, 0, 0]);
  });

  test("proportional rule scales with the relative error", () => {
    const b = lossFree({ layers: 1, experts: 3, k: 1 }, {
      rate: 0.125,
      rule: "proportional",
    });
    b.update(0, scores, b.route(0, scores));
    // e / mean = [-2, 1, 1]
    assert.deepEqual([...b.biases(0)], [-0.25, 0.125, 0.125]);
  });

  test("multiplicative variant starts at 1 and selects on s * b", () => {
    const b = lossFree({ layers: 1, experts: 3, k: 1 }, {
      rate: 0.5,
      multiplicative: true,
    });
    assert.deepEqual([...b.biases(0)], [1, 1, 1]);
    b.update(0, scores, b.route(0, scores));
    assert.deepEqual([...b.biases(0)], [0.5, 1.5, 1.5]);
    // 0.875*0.5 = 0.4375 < 0.5*1.5 = 0.75: token 0 moves to expert 1.
    assert.equal(b.route(0, scores).experts[0], 1);
  });

  test("centring keeps the biases at mean zero", () => {
    const b = lossFree({ layers: 1, experts: 3, k: 1 }, {
      rate: 0.1,
      center: true,
    });
    b.update(0, scores, b.route(0, scores));
    const got = b.biases(0);
    assert.ok(Math.abs(got[0] + got[1] + got[2]) < 1e-15);
    assert.ok(got[0] < 0 && got[1] > 0);
  });

  test("gate weights stay unbiased", () => {
    const b = lossFree({ layers: 1, experts: 3, k: 1 }, { rate: 0.5 });
    b.update(0, scores, b.route(0, scores));
    const r = b.route(0, scores);
    assert.deepEqual([...r.experts], [1, 1, 1]);
    assert.deepEqual([...r.weights], [0.5, 0.625, 0.375]);
  });

  test("reaches MaxVio_batch below 0.1 on a stationary workload", () => {
    const layers = 1, experts = 16, k = 2, steps = 150;
    const w = syntheticWorkload({
      steps,
      layers,
      experts,
      tokens: 8192,
      drift: 0,
      seed: 4,
    });
    const lf = lossFree({ layers, experts, k }, { rate: 2e-3 });
    const gr = greedy({ layers, experts, k });
    let late = 0, greedyLate = 0;
    for (let s = 0; s < steps; s++) {
      const sc = w.scores(s, 0);
      const r = lf.route(0, sc);
      if (s >= steps - 20) {
        late += maxVio(r.loads) / 20;
        greedyLate += maxVio(gr.route(0, sc).loads) / 20;
      }
      lf.update(0, sc, r);
    }
    assert.ok(greedyLate > 0.3, `greedy is imbalanced: ${greedyLate}`);
    assert.ok(late < 0.1, `mean MaxVio_batch over the last 20 steps: ${late}`);
  });

  test("rejects bad options", () => {
    assert.throws(
      () => lossFree({ layers: 1, experts: 3, k: 1 }, { rate: -1 }),
      RangeError,
    );
    assert.throws(
      () =>
        lossFree({ layers: 1, experts: 3, k: 1 }, { rule: "cubic" as "sign" }),
      /rule must be one of "sign", "proportional": current value is "cubic"/,
    );
    assert.throws(() => lossFree({ layers: 1, experts: 3, k: 4 }), RangeError);
    assert.throws(() => lossFree({ layers: 0, experts: 3, k: 1 }), RangeError);
  });
});
