// Little-endian element decoding shared by the torch, safetensors and .npy
// readers.
import type { Tensor, TensorDtype } from "./tensor.ts";

/** Bytes per element of each dtype. */
export const ITEM_SIZE: Record<TensorDtype, number> = {
  bool: 1,
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Reads `count` elements of `dtype` at element indices `index(i)` of
 * `bytes` (little-endian). `what` names the array in error messages.
 */
export function readElements(
  bytes: Uint8Array,
  dtype: TensorDtype,
  shape: number[],
  what: string,
  index: (i: number) => number = (i) => i,
): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const size = ITEM_SIZE[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const wide = dtype === "int64" || dtype === "float32" ||
    dtype === "float64";
  const data = wide ? new Float64Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const at = index(i) * size;
    if (at < 0 || at + size > bytes.length) {
      throw new RangeError(
        `${what} is truncated: element ${i} lies past its ${bytes.length} bytes`,
      );
    }
    switch (dtype) {
      case "bool":
      case "uint8":
        data[i] = view.getUint8(at);
        break;
      case "int8":
        data[i] = view.getInt8(at);
        break;
      case "int16":
        data[i] = view.getInt16(at, true);
        break;
      case "int32":
        data[i] = view.getInt32(at, true);
        break;
      case "int64": {
        const v = view.getBigInt64(at, true);
        if (v > MAX_SAFE || v < -MAX_SAFE) {
          throw new RangeError(
            `${what} element ${i} is ${v}, beyond the 2^53 a count can reach exactly`,
          );
        }
        data[i] = Number(v);
        break;
      }
      case "float32":
        data[i] = view.getFloat32(at, true);
        break;
      case "float64":
        data[i] = view.getFloat64(at, true);
        break;
    }
  }
  return { dtype, shape, data };
}
