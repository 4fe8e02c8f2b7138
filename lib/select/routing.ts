// The Routing constructor, below every routing kernel so that the kernels
// of each backend (lib/ops, kernels/) allocate their output the same way.
import { checkInteger } from "../validate.ts";
import type { Routing } from "../types.ts";

/**
 * Allocates an empty {@linkcode Routing} for `tokens` tokens, `k` slots and
 * `experts` experts.
 *
 * @param tokens Rows (`>= 0`).
 * @param k Slots per token (`>= 1`).
 * @param experts Experts (`>= 1`).
 * @returns Zero-filled experts and weights (tokens x k) and loads (experts).
 * @throws {RangeError} If a size is not an integer in range.
 *
 * @example
 * ```ts
 * import { createRouting } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const r = createRouting(3, 2, 4);
 * assert.equal(r.experts.length, 6);
 * assert.equal(r.loads.length, 4);
 * ```
 */
export function createRouting(
  tokens: number,
  k: number,
  experts: number,
): Routing {
  checkRoutingSizes(tokens, k, experts);
  return {
    experts: new Int32Array(tokens * k),
    weights: new Float32Array(tokens * k),
    loads: new Int32Array(experts),
    k,
  };
}

/**
 * Checks the sizes of a {@linkcode Routing} as {@linkcode createRouting}
 * takes them: `tokens >= 0`, `k >= 1`, `experts >= 1`, integers.
 *
 * @throws {RangeError} If a size is not an integer in range.
 */
export function checkRoutingSizes(
  tokens: number,
  k: number,
  experts: number,
): void {
  checkInteger("tokens", tokens, 0);
  checkInteger("k", k, 1);
  checkInteger("experts", experts, 1);
}
