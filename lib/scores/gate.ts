import { checkChoice, checkInteger, checkScores, show } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";

/**
 * The gate functions that turn router logits into scores: Megatron-Core's
 * `moe_router_score_function` values (`"softmax"`, `"sigmoid"`,
 * `"sqrtsoftplus"`).
 */
export type Gate = "sigmoid" | "softmax" | "sqrtsoftplus";

/** The gate names, for validation and help text. */
export const GATES: readonly Gate[] = ["sigmoid", "softmax", "sqrtsoftplus"];

/**
 * Applies `sqrt(softplus(x))` to every logit, Megatron-Core's
 * `"sqrtsoftplus"` score function (`softplus(x) = log(1 + exp(x))`, taken
 * as `x` above 20 as PyTorch's `softplus` does).
 *
 * @param logits Logits, any length.
 * @param out Destination, same length (may be `logits` itself).
 * @returns `out`.
 * @throws {TypeError} If `out` has another length.
 *
 * @example
 * ```ts
 * import { sqrtSoftplus } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sqrtSoftplus(new Float32Array([0, 30]));
 * assert.equal(s[0], Math.fround(Math.sqrt(Math.LN2)));
 * assert.equal(s[1], Math.fround(Math.sqrt(30)));
 * ```
 */
export function sqrtSoftplus(
  logits: Float32Array,
  out: Float32Array = new Float32Array(logits.length),
): Float32Array {
  if (out.length !== logits.length) {
    throw new TypeError(
      `out must have the length of logits (${logits.length}): current length is ${out.length}`,
    );
  }
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    out[i] = Math.sqrt(x > 20 ? x : Math.log1p(Math.exp(x)));
  }
  return out;
}

/**
 * Applies the sigmoid `1 / (1 + exp(-x))` to every logit (DeepSeek-V3 and
 * the Loss-Free paper's main runs).
 *
 * @param logits Logits, any length.
 * @param out Destination, same length (may be `logits` itself).
 * @returns `out`.
 * @throws {TypeError} If `out` has another length.
 *
 * @example
 * ```ts
 * import { sigmoid } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sigmoid(new Float32Array([0, Math.log(3)]));
 * assert.equal(s[0], 0.5);
 * assert.ok(Math.abs(s[1] - 0.75) < 1e-7);
 * ```
 */
export function sigmoid(
  logits: Float32Array,
  out: Float32Array = new Float32Array(logits.length),
): Float32Array {
  if (out.length !== logits.length) {
    throw new TypeError(
      `out must have the length of logits (${logits.length}): current length is ${out.length}`,
    );
  }
  for (let i = 0; i < logits.length; i++) {
    out[i] = 1 / (1 + Math.exp(-logits[i]));
  }
  return out;
}

/**
 * Applies a softmax over each row of a row-major `rows x cols` matrix of
 * logits, subtracting the row maximum first for stability. A row of all
 * `-Infinity` gives zeros.
 *
 * @param logits Logits, `Float32Array` (rows x cols), row-major.
 * @param cols Number of columns (experts).
 * @param out Destination, same length (may be `logits` itself).
 * @returns `out`.
 * @throws {RangeError} If `cols` does not divide the length.
 *
 * @example
 * ```ts
 * import { softmax } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = softmax(new Float32Array([0, 0, Math.log(2), 0]), 2);
 * assert.deepEqual([...p], [0.5, 0.5, Math.fround(2 / 3), Math.fround(1 / 3)]);
 * ```
 */
export function softmax(
  logits: Float32Array,
  cols: number,
  out: Float32Array = new Float32Array(logits.length),
): Float32Array {
  checkInteger("cols", cols, 1);
  if (logits.length % cols !== 0) {
    throw new RangeError(
      `cols must divide the number of logits (${logits.length}): current value is ${cols}`,
    );
  }
  if (out.length !== logits.length) {
    throw new TypeError(
      `out must have the length of logits (${logits.length}): current length is ${out.length}`,
    );
  }
  for (let base = 0; base < logits.length; base += cols) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) {
      if (logits[base + j] > max) max = logits[base + j];
    }
    if (max === -Infinity) {
      for (let j = 0; j < cols; j++) out[base + j] = 0;
      continue;
    }
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      const e = Math.exp(logits[base + j] - max);
      out[base + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < cols; j++) out[base + j] *= inv;
  }
  return out;
}

/**
 * Wraps scores in a validated {@linkcode ScoreMatrix}.
 *
 * @param data Scores, `Float32Array` (tokens x experts), row-major.
 * @param tokens Number of rows.
 * @param experts Number of columns.
 * @throws {TypeError} If the length is not `tokens * experts`.
 * @throws {RangeError} If a score is NaN or `+Infinity`.
 *
 * @example
 * ```ts
 * import { scoreMatrix } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = scoreMatrix(new Float32Array([0.1, 0.9, 0.5, 0.5]), 2, 2);
 * assert.equal(s.tokens, 2);
 * assert.throws(() => scoreMatrix(new Float32Array(3), 2, 2), TypeError);
 * ```
 */
export function scoreMatrix(
  data: Float32Array,
  tokens: number,
  experts: number,
): ScoreMatrix {
  const s = { data, tokens, experts };
  if (!(data instanceof Float32Array)) {
    throw new TypeError(
      `data must be a Float32Array: current value is ${show(data)}`,
    );
  }
  return checkScores("scores", s);
}

/**
 * Applies `gate` to logits of rows of `experts` into `out`, unchecked: the
 * form the workloads call per batch.
 */
export function gateInto(
  logits: Float32Array,
  experts: number,
  gate: Gate,
  out: Float32Array,
): Float32Array {
  return gate === "sigmoid"
    ? sigmoid(logits, out)
    : gate === "sqrtsoftplus"
    ? sqrtSoftplus(logits, out)
    : softmax(logits, experts, out);
}

/**
 * Applies a gate to router logits of shape `tokens x experts`.
 *
 * @example
 * ```ts
 * import { applyGate } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = applyGate(new Float32Array([0, 0]), 1, 2, "softmax");
 * assert.deepEqual([...s.data], [0.5, 0.5]);
 * ```
 */
export function applyGate(
  logits: Float32Array,
  tokens: number,
  experts: number,
  gate: Gate,
  out?: Float32Array,
): ScoreMatrix {
  checkChoice("gate", gate, GATES);
  const data = gate === "sigmoid"
    ? sigmoid(logits, out)
    : gate === "sqrtsoftplus"
    ? sqrtSoftplus(logits, out)
    : softmax(logits, experts, out);
  return scoreMatrix(data, tokens, experts);
}
