import { checkInteger, checkNumber, show } from "../validate.ts";

/** Expert weights that move when one placement replaces another. */
export interface Migration {
  /**
   * Expert copies received over the network: on each GPU and layer, the
   * experts the new placement holds that the old one did not (a second
   * replica of an expert already on the GPU is a local copy, not counted).
   */
  experts: number;
  /** `experts * expertBytes`. */
  bytes: number;
  /** Physical slots whose expert changed (rewritten in place, locally or not). */
  slotsChanged: number;
  /** `[layers][gpus]`: experts each GPU receives. */
  received: number[][];
}

/**
 * Migration volume between two successive placements (`phy2log` rows of
 * the same shape, slot `i` on GPU `floor(i / (slots / gpus))`): the expert
 * weights each GPU must receive, in experts and bytes. A re-plan is worth
 * its transfer when the step time it saves, times the steps until the next
 * re-plan, exceeds the transfer time ({@linkcode shouldReplan} decides on
 * the predicted gain alone).
 *
 * @param before `[layers][slots]` the current placement.
 * @param after `[layers][slots]` the new placement.
 * @param gpus GPUs, a divisor of the slots.
 * @param expertBytes Bytes of one expert's weights (default 0: count only).
 * @returns The {@linkcode Migration}.
 * @throws {TypeError} If the shapes differ.
 * @throws {RangeError} If `gpus` does not divide the slots or `expertBytes` is negative.
 *
 * @example GPU 1 receives expert 3; GPU 0 already had expert 1
 * ```ts
 * import { migrationVolume } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const m = migrationVolume([[0, 1, 2, 2]], [[1, 0, 2, 3]], 2, 1e6);
 * assert.equal(m.experts, 1);
 * assert.equal(m.bytes, 1e6);
 * assert.equal(m.slotsChanged, 3);
 * assert.deepEqual(m.received, [[0, 1]]);
 * ```
 */
export function migrationVolume(
  before: ArrayLike<ArrayLike<number>>,
  after: ArrayLike<ArrayLike<number>>,
  gpus: number,
  expertBytes = 0,
): Migration {
  checkInteger("gpus", gpus, 1);
  checkNumber("expertBytes", expertBytes, 0);
  if (
    before === null || after === null || typeof before !== "object" ||
    typeof after !== "object" || before.length !== after.length
  ) {
    throw new TypeError(
      `before and after must have the same layers: current values are ${
        show(before)
      } and ${show(after)}`,
    );
  }
  const received: number[][] = [];
  let experts = 0, slotsChanged = 0;
  for (let l = 0; l < before.length; l++) {
    const a = before[l], b = after[l];
    if (a?.length !== b?.length) {
      throw new TypeError(
        `before[${l}] and after[${l}] must have the same slots: current lengths are ${a?.length} and ${b?.length}`,
      );
    }
    if (a.length === 0 || a.length % gpus !== 0) {
      throw new RangeError(
        `slots per layer must be a positive multiple of gpus (${gpus}): current value is ${a.length}`,
      );
    }
    const per = a.length / gpus, row: number[] = [];
    for (let g = 0; g < gpus; g++) {
      const had = new Set<number>(), got = new Set<number>();
      for (let i = g * per; i < (g + 1) * per; i++) {
        had.add(a[i]);
        got.add(b[i]);
        if (a[i] !== b[i]) slotsChanged++;
      }
      let n = 0;
      for (const e of got) if (!had.has(e)) n++;
      row.push(n);
      experts += n;
    }
    received.push(row);
  }
  return { experts, bytes: experts * expertBytes, slotsChanged, received };
}

/**
 * The re-plan threshold policy: re-plan only when the step time predicted
 * for the new placement improves on the current one's by more than
 * `threshold` (`currentMs / plannedMs - 1 > threshold`; 0.05 = 5 %).
 *
 * @param currentMs Predicted step time of the current placement.
 * @param plannedMs Predicted step time of the new placement.
 * @param threshold Smallest gain worth a re-plan (non-negative).
 * @returns Whether to re-plan.
 * @throws {RangeError} If a time is not positive or the threshold negative.
 *
 * @example
 * ```ts
 * import { shouldReplan } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(shouldReplan(11, 10, 0.05), true); // 10 % gain
 * assert.equal(shouldReplan(10.4, 10, 0.05), false); // 4 %
 * ```
 */
export function shouldReplan(
  currentMs: number,
  plannedMs: number,
  threshold: number,
): boolean {
  checkNumber("currentMs", currentMs, Number.MIN_VALUE);
  checkNumber("plannedMs", plannedMs, Number.MIN_VALUE);
  checkNumber("threshold", threshold, 0);
  return currentMs / plannedMs - 1 > threshold;
}
