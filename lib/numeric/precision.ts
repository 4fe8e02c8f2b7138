// Storage precisions emulated exactly in software: a value kept in
// float32 or bfloat16 is rounded to nearest, ties to even, after every
// operation, as a GPU (and PyTorch, which computes a bfloat16 add in
// float32 and rounds the result) would store it.
import { checkChoice } from "../validate.ts";

/**
 * The precision a quantity is kept in: `"float64"` (JavaScript numbers,
 * the reference), `"float32"` or `"bfloat16"` (8 significant bits, the
 * exponent range of float32).
 */
export type Precision = "float64" | "float32" | "bfloat16";

/** The precisions, for validation and help text. */
export const PRECISIONS: readonly Precision[] = [
  "float64",
  "float32",
  "bfloat16",
];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Rounds to the nearest bfloat16, ties to even, as PyTorch converts: the
 * value is first rounded to float32 (`Math.fround`), then its low 16 bits
 * are rounded away. NaN stays NaN; values past the largest bfloat16 go to
 * `±Infinity`.
 *
 * @param x Any number.
 * @returns The bfloat16 value, as a number.
 *
 * @example
 * ```ts
 * import { bfloat16 } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(bfloat16(257), 256); // a tie: 256 is the even neighbour
 * assert.equal(bfloat16(259), 260);
 * assert.equal(bfloat16(1e-3), 0.00099945068359375);
 * ```
 */
export function bfloat16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) {
    return NaN;
  }
  const lsb = (bits >>> 16) & 1;
  u32[0] = ((bits + 0x7fff + lsb) & 0xffff0000) >>> 0;
  return f32[0];
}

/**
 * Rounds `x` to `precision` (round to nearest, ties to even).
 *
 * @example
 * ```ts
 * import { roundTo } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(roundTo(2 ** 24 + 1, "float32"), 2 ** 24);
 * assert.equal(roundTo(2 ** 24 + 1, "float64"), 2 ** 24 + 1);
 * assert.equal(roundTo(0.1, "bfloat16"), 0.10009765625);
 * ```
 */
export function roundTo(x: number, precision: Precision): number {
  return precision === "float64"
    ? x
    : precision === "float32"
    ? Math.fround(x)
    : bfloat16(x);
}

/**
 * The sum `a + b` as a GPU keeping both in `precision` computes it: exact
 * in float64 terms, then rounded once to float32 (`"float32"`), or to
 * float32 and then to bfloat16 (`"bfloat16"`: PyTorch adds bfloat16
 * tensors in float32 and rounds the result).
 *
 * @example Adding 1 to a bfloat16 count of 256 leaves 256
 * ```ts
 * import { addIn } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(addIn(256, 1, "bfloat16"), 256);
 * assert.equal(addIn(255, 1, "bfloat16"), 256);
 * assert.equal(addIn(2 ** 24, 1, "float32"), 2 ** 24);
 * ```
 */
export function addIn(a: number, b: number, precision: Precision): number {
  return precision === "float64"
    ? a + b
    : precision === "float32"
    ? Math.fround(a + b)
    : bfloat16(Math.fround(a + b));
}

/**
 * The largest integer count that adding 1 at a time still reaches in
 * `precision`: 256 for bfloat16 (257 rounds back to 256), `2^24` for
 * float32, `2^53` for float64. A counter kept there stops increasing.
 *
 * @example
 * ```ts
 * import { countCeiling } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(countCeiling("bfloat16"), 256);
 * assert.equal(countCeiling("float32"), 16777216);
 * ```
 */
export function countCeiling(precision: Precision): number {
  return precision === "float64"
    ? 2 ** 53
    : precision === "float32"
    ? 2 ** 24
    : 2 ** 8;
}

/** Checks a precision name (`name` for the message). */
export function checkPrecision(name: string, value: unknown): Precision {
  return checkChoice(name, value ?? "float64", PRECISIONS);
}
