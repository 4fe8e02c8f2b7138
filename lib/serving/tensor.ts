/**
 * Element types a tensor file may hold. Integers of up to 32 bits and
 * booleans are read into an `Int32Array`; 64-bit integers and floats into a
 * `Float64Array` (a 64-bit integer above 2^53 is refused rather than
 * rounded).
 */
export type TensorDtype =
  | "bool"
  | "uint8"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "float32"
  | "float64";

/**
 * A dense array read from a `torch.save`, safetensors or `.npy` file.
 *
 * @example
 * ```ts
 * import { parseTorchSave, type Tensor } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * // torch.save(ids) of int32 routed experts [tokens, layers, top_k]
 * const t = parseTorchSave(readFileSync("data/fixtures/routed_experts.pt")) as Tensor;
 * assert.equal(t.dtype, "int32");
 * assert.equal(t.data.length, t.shape[0] * t.shape[1] * t.shape[2]);
 * ```
 */
export interface Tensor {
  /** The element type as stored. */
  dtype: TensorDtype;
  /** The shape, C order. */
  shape: number[];
  /** The elements, row-major (C order), whatever order they were stored in. */
  data: Int32Array | Float64Array;
}
