import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { normalQuantile, syntheticWorkload } from "./synthetic.ts";
import { replayWorkload } from "./replay.ts";
import { route } from "../route/route.ts";
import { maxVio } from "../metrics/load_metrics.ts";

describe("syntheticWorkload", () => {
  test("same seed gives identical scores, in any access order", () => {
    const a = syntheticWorkload({
      steps: 5,
      layers: 2,
      tokens: 64,
      experts: 8,
      seed: 7,
    });
    const b = syntheticWorkload({
      steps: 5,
      layers: 2,
      tokens: 64,
      experts: 8,
      seed: 7,
    });
    const late = Float32Array.from(a.scores(4, 1).data);
    b.scores(0, 0);
    assert.deepEqual(Float32Array.from(b.scores(4, 1).data), late);
    assert.deepEqual(
      Float32Array.from(a.scores(0, 0).data),
      Float32Array.from(b.scores(0, 0).data),
    );
    const c = syntheticWorkload({
      steps: 5,
      layers: 2,
      tokens: 64,
      experts: 8,
      seed: 8,
    });
    assert.notDeepEqual(Float32Array.from(c.scores(4, 1).data), late);
  });

  test("scores are sigmoid outputs in (0, 1), softmax rows sum to 1", () => {
    const s = syntheticWorkload({
      steps: 1,
      layers: 1,
      tokens: 32,
      experts: 16,
    }).scores(0, 0);
    assert.ok(s.data.every((v) => v > 0 && v < 1));
    const p = syntheticWorkload({
      steps: 1,
      layers: 1,
      tokens: 32,
      experts: 16,
      gate: "softmax",
    })
      .scores(0, 0);
    for (let i = 0; i < 32; i++) {
      const row = p.data.subarray(i * 16, i * 16 + 16).reduce(
        (a, b) => a + b,
        0,
      );
      assert.ok(Math.abs(row - 1) < 1e-5);
    }
  });

  test("defaults make greedy top-6 of 64 clearly imbalanced; no skew makes it balanced", () => {
    const skewed = syntheticWorkload({ steps: 1, layers: 2, tokens: 4096 });
    const flat = syntheticWorkload({
      steps: 1,
      layers: 2,
      tokens: 4096,
      zipf: 0,
      popularity: 0,
      affinity: 0,
    });
    for (let l = 0; l < 2; l++) {
      assert.ok(maxVio(route(skewed.scores(0, l), { k: 6 }).loads) > 0.5);
      assert.ok(maxVio(route(flat.scores(0, l), { k: 6 }).loads) < 0.3);
    }
  });

  test("drift changes the token mix over steps; zero drift keeps its distribution", () => {
    const loads = (drift: number, step: number) => {
      const w = syntheticWorkload({
        steps: 400,
        layers: 1,
        tokens: 8192,
        drift,
        seed: 3,
      });
      return route(w.scores(step, 0), { k: 6 }).loads;
    };
    const dist = (a: Int32Array, b: Int32Array) =>
      a.reduce((s, v, j) => s + Math.abs(v - b[j]), 0) / (8192 * 6);
    const still = dist(loads(0, 0), loads(0, 399));
    const moving = dist(loads(0.1, 0), loads(0.1, 399));
    assert.ok(moving > 3 * still, `drift 0.1: ${moving}, drift 0: ${still}`);
  });

  test("normal quantiles match published values", () => {
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959963985) < 1e-8);
    assert.ok(Math.abs(normalQuantile(0.5)) < 1e-12);
    assert.ok(Math.abs(normalQuantile(0.001) + 3.090232306) < 1e-8);
  });

  test("rejects bad sizes", () => {
    assert.throws(() => syntheticWorkload({ tokens: -5 }), {
      name: "RangeError",
      message: /tokens must be an integer of at least 1: current value is -5/,
    });
    assert.throws(() => syntheticWorkload({ experts: 2.5 }), RangeError);
    const w = syntheticWorkload({ steps: 2, layers: 1, tokens: 4, experts: 4 });
    assert.throws(() => w.scores(2, 0), RangeError);
  });
});

describe("replayWorkload", () => {
  test("reads [steps, tokens, experts] and [steps, layers, tokens, experts]", () => {
    const three = replayWorkload({
      shape: [2, 1, 3],
      data: new Float32Array([0, 0, 0, 1, 2, 3]),
    });
    assert.equal(three.layers, 1);
    assert.ok(
      Math.abs(three.scores(1, 0).data[2] - 1 / (1 + Math.exp(-3))) < 1e-7,
    );
    const four = replayWorkload({
      shape: [1, 2, 1, 2],
      data: new Float32Array([0, 0, 5, 5]),
    }, "softmax");
    assert.equal(four.layers, 2);
    assert.deepEqual([...four.scores(0, 1).data], [0.5, 0.5]);
  });

  test("rejects other shapes and NaN", () => {
    assert.throws(
      () => replayWorkload({ shape: [4], data: new Float32Array(4) }),
      RangeError,
    );
    assert.throws(
      () =>
        replayWorkload({ shape: [1, 1, 2], data: new Float32Array([0, NaN]) }),
      { name: "RangeError", message: /NaN/ },
    );
  });
});
