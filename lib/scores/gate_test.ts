import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { applyGate, sigmoid, softmax } from "./gate.ts";

describe("gates", () => {
  test("sigmoid pins known values", () => {
    const s = sigmoid(new Float32Array([0, 2, -2, -Infinity]));
    assert.equal(s[0], 0.5);
    assert.ok(Math.abs(s[1] - 1 / (1 + Math.exp(-2))) < 1e-7);
    assert.ok(Math.abs(s[1] + s[2] - 1) < 1e-7);
    assert.equal(s[3], 0);
  });

  test("softmax rows sum to 1, are shift invariant and stable for large logits", () => {
    const p = softmax(new Float32Array([1, 2, 3, 1001, 1002, 1003]), 3);
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(p[j] - p[3 + j]) < 1e-7);
    assert.ok(Math.abs(p[0] + p[1] + p[2] - 1) < 1e-6);
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const z = e[0] + e[1] + e[2];
    e.forEach((v, j) => assert.ok(Math.abs(p[j] - v / z) < 1e-7));
  });

  test("softmax gives zeros on an all-masked row and ignores masked entries", () => {
    const p = softmax(
      new Float32Array([-Infinity, -Infinity, 0, -Infinity]),
      2,
    );
    assert.deepEqual([...p], [0, 0, 1, 0]);
  });

  test("applyGate validates its input", () => {
    assert.throws(
      () => applyGate(new Float32Array(4), 2, 2, "relu" as "sigmoid"),
      RangeError,
    );
    assert.throws(() => softmax(new Float32Array(5), 2), RangeError);
    assert.throws(
      () => applyGate(new Float32Array([NaN, 0]), 1, 2, "sigmoid"),
      RangeError,
    );
  });
});
