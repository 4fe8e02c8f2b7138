import { checkChoice, show } from "../validate.ts";
import { type Gate, gateInto, GATES } from "../scores/gate.ts";
import type { ScoreMatrix } from "../types.ts";
import type { NpyArray } from "./npy.ts";
import type { Workload } from "./workload.ts";

/**
 * Replays recorded router logits: a float32 array shaped
 * `[steps, tokens, experts]` (one layer) or `[steps, layers, tokens,
 * experts]`, turned into scores by the gate on each access.
 *
 * @param array The logits, for example from {@linkcode parseNpy}.
 * @param gate Gate applied to the logits. Default `"sigmoid"`.
 * @throws {RangeError} If the array does not have 3 or 4 dimensions, a
 * dimension is zero, or a logit is NaN, or +Infinity with a gate other
 * than the sigmoid (softmax would make its row NaN, sqrtsoftplus its score
 * +Infinity).
 *
 * @example
 * ```ts
 * import { replayWorkload } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const w = replayWorkload({ shape: [2, 1, 2], data: new Float32Array([0, 0, 1, -1]) }, "softmax");
 * assert.equal(w.steps, 2);
 * assert.deepEqual([...w.scores(0, 0).data], [0.5, 0.5]);
 * ```
 */
export function replayWorkload(
  array: NpyArray,
  gate: Gate = "sigmoid",
): Workload {
  checkChoice("gate", gate, GATES);
  const { shape, data } = array;
  if (shape.length !== 3 && shape.length !== 4) {
    throw new RangeError(
      `scores must be shaped [steps, tokens, experts] or [steps, layers, tokens, experts]: current shape is [${
        shape.join(", ")
      }]`,
    );
  }
  const [steps, layers, tokens, experts] = shape.length === 3
    ? [shape[0], 1, shape[1], shape[2]]
    : shape;
  if ([steps, layers, tokens, experts].some((d) => d < 1)) {
    throw new RangeError(
      `scores must have no empty dimension: current shape is [${
        shape.join(", ")
      }]`,
    );
  }
  // +Infinity is a logit the sigmoid gate maps to 1; under softmax it
  // makes its row NaN, under sqrtsoftplus a score +Infinity, and routing
  // would stop at that batch, after the batches before it.
  const infinityFails = gate !== "sigmoid";
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v !== v || (infinityFails && v === Infinity)) {
      const per = tokens * experts;
      const at = `value at batch ${Math.floor(i / per)}, token ${
        Math.floor((i % per) / experts)
      }, expert ${i % experts}`;
      throw new RangeError(
        v !== v
          ? `scores must not hold NaN: ${at} is NaN`
          : `scores must not hold +Infinity with the ${gate} gate (${
            gate === "softmax"
              ? "its row's scores would be NaN"
              : "its score would be +Infinity"
          }): ${at} is Infinity`,
      );
    }
  }
  const size = tokens * experts;
  const buffer = new Float32Array(size);
  return {
    steps,
    layers,
    tokens,
    experts,
    scores(step: number, layer: number): ScoreMatrix {
      if (!(step >= 0 && step < steps && layer >= 0 && layer < layers)) {
        throw new RangeError(
          `step ${show(step)}, layer ${show(layer)} is outside the recording`,
        );
      }
      const logits = data.subarray(
        (step * layers + layer) * size,
        (step * layers + layer + 1) * size,
      );
      gateInto(logits, experts, gate, buffer);
      return { data: buffer, tokens, experts };
    },
    describe: () => ({ kind: "npy", shape: [...shape], gate }),
  };
}
