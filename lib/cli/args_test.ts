import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { asFlagError } from "./args.ts";

describe("asFlagError", () => {
  const names = {
    gpus: "--gpus",
    replicas: "--replicas",
    experts: "the experts of --loads",
  };

  test("names the flags of the condition, keeps the value and the class", () => {
    const e = asFlagError(
      new RangeError(
        "gpus must be a multiple of replicas (2): current value is 3",
      ),
      names,
    ) as Error;
    assert.ok(e instanceof RangeError);
    assert.equal(
      e.message,
      "--gpus must be a multiple of --replicas (2): current value is 3",
    );
  });

  test("words after the first ': ' are the value and stay as they are", () => {
    const e = asFlagError(
      new TypeError('experts must be an integer: current value is "gpus"'),
      names,
    ) as Error;
    assert.equal(
      e.message,
      'the experts of --loads must be an integer: current value is "gpus"',
    );
  });

  test("an error about another argument, or of another class, is kept", () => {
    const other = new RangeError("seed must be an integer: current value is x");
    assert.equal(asFlagError(other, names), other);
    const plain = new Error("gpus failed");
    assert.equal(asFlagError(plain, names), plain);
  });
});
