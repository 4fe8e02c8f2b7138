// Argument checks shared by the placement builders and the routing of
// tokens to replicas.
import { show } from "../validate.ts";

/**
 * Slot layers of a slot-aligned placement (each layer partitions the GPUs
 * into groups of `d`, one expert a group): `E / (G / d)`.
 * @throws {RangeError} If `d` does not divide `G` or `G / d` does not divide `E`.
 */
export function slotLayers(experts: number, gpus: number, d: number): number {
  if (gpus % d !== 0) {
    throw new RangeError(
      `gpus must be a multiple of replicas (${d}): current value is ${gpus}`,
    );
  }
  const perSlot = gpus / d;
  if (experts % perSlot !== 0) {
    throw new RangeError(
      `experts must be a multiple of gpus / replicas (${perSlot}): current value is ${experts}`,
    );
  }
  return experts / perSlot;
}

/**
 * Checks `input[e][g]` (tokens of expert `e` starting on GPU `g`): `E`
 * rows of `G` non-negative integers. Returns each expert's total.
 * @throws {TypeError} If a shape is wrong.
 * @throws {RangeError} If a count is negative or fractional.
 */
export function checkInput(
  input: ArrayLike<ArrayLike<number>>,
  experts: number,
  gpus: number,
): Float64Array {
  if (input?.length !== experts) {
    throw new TypeError(
      `input must have one row per expert (${experts}): current value is ${
        show(input)
      }`,
    );
  }
  const loads = new Float64Array(experts);
  for (let e = 0; e < experts; e++) {
    const row = input[e];
    if (row?.length !== gpus) {
      throw new TypeError(
        `input[${e}] must have one entry per GPU (${gpus}): current value is ${
          show(row)
        }`,
      );
    }
    for (let g = 0; g < gpus; g++) {
      const v = row[g];
      if (!Number.isInteger(v) || v < 0) {
        throw new RangeError(
          `input must hold non-negative integers: value at expert ${e}, GPU ${g} is ${
            show(v)
          }`,
        );
      }
      loads[e] += v;
    }
  }
  return loads;
}
