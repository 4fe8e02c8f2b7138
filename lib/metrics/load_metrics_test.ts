import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  coefficientOfVariation,
  maxOverMean,
  maxVio,
  selectedScoreSum,
  zeroLoadExperts,
} from "./load_metrics.ts";
import { route } from "../route/route.ts";

describe("load metrics", () => {
  test("pin hand-computed values", () => {
    // loads 6, 2, 0, 4: mean 3, max 6
    const loads = new Int32Array([6, 2, 0, 4]);
    assert.equal(maxVio(loads), 1);
    assert.equal(maxOverMean(loads), 2);
    assert.equal(zeroLoadExperts(loads), 1);
    // deviations 3, -1, -3, 1: variance 20/4 = 5
    assert.equal(coefficientOfVariation(loads), Math.sqrt(5) / 3);
  });

  test("perfect balance is zero violation", () => {
    assert.equal(maxVio([5, 5, 5]), 0);
    assert.equal(coefficientOfVariation([5, 5, 5]), 0);
    assert.equal(maxOverMean([5, 5, 5]), 1);
  });

  test("all-zero loads are defined", () => {
    assert.equal(maxVio([0, 0]), 0);
    assert.equal(zeroLoadExperts([0, 0]), 2);
  });

  test("bad loads are rejected with the entry shown", () => {
    assert.throws(() => maxVio([]), RangeError);
    assert.throws(() => maxVio([1, -2]), {
      name: "RangeError",
      message: /entry 1 is -2/,
    });
    assert.throws(() => maxVio([1, NaN]), RangeError);
    assert.throws(() => maxVio(null as unknown as number[]), TypeError);
  });

  test("selected score sum adds the chosen scores and skips empty slots", () => {
    const s = {
      data: new Float32Array([0.5, 0.25, 0.75, 0.125]),
      tokens: 2,
      experts: 2,
    };
    const r = route(s, { k: 1 });
    assert.equal(selectedScoreSum(s, r), 0.5 + 0.75);
    r.experts[1] = -1;
    assert.equal(selectedScoreSum(s, r), 0.5);
  });
});
