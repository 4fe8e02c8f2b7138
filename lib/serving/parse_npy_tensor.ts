import { show } from "../validate.ts";
import { ITEM_SIZE, readElements } from "./_elements.ts";
import type { Tensor, TensorDtype } from "./tensor.ts";

const DTYPES: Record<string, TensorDtype> = {
  "|b1": "bool",
  "|u1": "uint8",
  "|i1": "int8",
  "<i2": "int16",
  "<i4": "int32",
  "<i8": "int64",
  "<f4": "float32",
  "<f8": "float64",
};

/** Whether `bytes` start with the `.npy` magic string `\x93NUMPY`. */
export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 6 && bytes[0] === 0x93 &&
    new TextDecoder("latin1").decode(bytes.subarray(1, 6)) === "NUMPY";
}

/**
 * Reads a NumPy `.npy` file (format 1 to 3) of any integer, boolean,
 * float32 or float64 dtype, little-endian, C or Fortran order. (The core's
 * `parseNpy` reads float32 score matrices only.)
 *
 * @param bytes The file's bytes.
 * @returns The array as a {@linkcode Tensor}, row-major.
 * @throws {SyntaxError} If the magic string or header is malformed.
 * @throws {TypeError} If the dtype is not one of `|b1 |u1 |i1 <i2 <i4 <i8
 * <f4 <f8`.
 * @throws {RangeError} If the data is shorter than the shape.
 *
 * @example Per-token routed experts, int32 [tokens, layers, top_k]
 * ```ts
 * import { parseNpyTensor } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * const routed = parseNpyTensor(readFileSync("data/fixtures/routed_experts.npy"));
 * assert.equal(routed.dtype, "int32");
 * assert.equal(routed.shape.length, 3);
 * ```
 */
export function parseNpyTensor(bytes: Uint8Array): Tensor {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `bytes must be a Uint8Array: current value is ${show(bytes)}`,
    );
  }
  if (!isNpy(bytes) || bytes.length < 10) {
    throw new SyntaxError(
      "not a .npy file: the magic string \\x93NUMPY is missing",
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  if (major !== 1 && major !== 2 && major !== 3) {
    throw new SyntaxError(
      `.npy format version must be 1, 2 or 3: current value is ${major}`,
    );
  }
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) {
    throw new SyntaxError(".npy header is truncated");
  }
  const headerLen = major === 1
    ? view.getUint16(8, true)
    : view.getUint32(8, true);
  if (start + headerLen > bytes.length) {
    throw new SyntaxError(".npy header is truncated");
  }
  const header = new TextDecoder("latin1").decode(
    bytes.subarray(start, start + headerLen),
  );
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) {
    throw new SyntaxError(
      `.npy header is malformed: ${JSON.stringify(header.trim())}`,
    );
  }
  const dtype = DTYPES[descr[1].replace(/^=/, "<")];
  if (dtype === undefined) {
    throw new TypeError(
      `.npy dtype must be one of ${
        Object.keys(DTYPES).join(" ")
      }: current value is '${descr[1]}'`,
    );
  }
  const sizes = shapeM[1].split(",").map((s) => s.trim()).filter((s) =>
    s !== ""
  );
  const shape = sizes.map(Number);
  // Decimal digits only, as numpy writes them (Number() also reads 0x10).
  if (
    sizes.some((s) => !/^\d+$/.test(s)) ||
    shape.some((d) => !Number.isSafeInteger(d))
  ) {
    throw new SyntaxError(`.npy shape is malformed: (${shapeM[1]})`);
  }
  const data = bytes.subarray(start + headerLen);
  // Refused before the elements are allocated: a header may claim any size.
  const count = shape.reduce((a, b) => a * b, 1);
  if (count * ITEM_SIZE[dtype] > data.length) {
    throw new RangeError(
      `.npy data is truncated: shape (${shapeM[1]}) of ${descr[1]} needs ${
        count * ITEM_SIZE[dtype]
      } bytes, the file holds ${data.length}`,
    );
  }
  if (fortran[1] === "False") {
    return readElements(data, dtype, shape, ".npy data");
  }
  // Fortran order: the first index varies fastest.
  return readElements(data, dtype, shape, ".npy data", (i) => {
    let at = 0, scale = 1;
    const idx: number[] = new Array(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = i % shape[d];
      i = Math.floor(i / shape[d]);
    }
    for (let d = 0; d < shape.length; d++) {
      at += idx[d] * scale, scale *= shape[d];
    }
    return at;
  });
}
