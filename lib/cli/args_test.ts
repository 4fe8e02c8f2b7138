import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { asFlagError, parseFlags, UsageError } from "./args.ts";

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

describe("parseFlags numbers", () => {
  const spec = { steps: "integer", rate: "number" } as const;

  test("decimal forms are read", () => {
    assert.deepEqual(
      parseFlags(["--steps", "1e3", "--rate=-.5"], spec),
      { steps: 1000, rate: -0.5 },
    );
  });

  test("hexadecimal, binary and padded numbers are refused, the text shown", () => {
    for (const text of ["0x10", "0b11", " 12 ", "12px", ""]) {
      assert.throws(
        () => parseFlags(["--steps", text], spec),
        (e: Error) =>
          e instanceof UsageError &&
          e.message.includes(`current value is ${JSON.stringify(text)}`),
        text,
      );
    }
  });
});
