import { show } from "../validate.ts";

/** A float32 array read from a `.npy` file. */
export interface NpyArray {
  /** The array's shape, C order. */
  shape: number[];
  /** The values, row-major. */
  data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/**
 * Parses a NumPy `.npy` file (format versions 1 to 3) that holds a
 * little-endian float32 array in C order (`dtype '<f4'`).
 *
 * @param bytes The file's bytes.
 * @returns Shape and data (a copy, aligned).
 * @throws {SyntaxError} If the bytes are not a `.npy` file or the header is malformed.
 * @throws {TypeError} If the dtype is not `<f4` or the array is in Fortran order.
 * @throws {RangeError} If the data length does not match the shape, or a
 * size exceeds 2^53 - 1.
 *
 * @example Round trip
 * ```ts
 * import { parseNpy, encodeNpy } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * const a = parseNpy(bytes);
 * assert.deepEqual(a.shape, [2, 3]);
 * assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
 * assert.throws(() => parseNpy(new Uint8Array([1, 2, 3])), SyntaxError);
 * ```
 */
export function parseNpy(bytes: Uint8Array): NpyArray {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `bytes must be a Uint8Array: current value is ${show(bytes)}`,
    );
  }
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) {
    throw new SyntaxError(
      "not a .npy file: the magic string \\x93NUMPY is missing",
    );
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) {
      throw new SyntaxError("not a .npy file: the header is truncated");
    }
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new SyntaxError(
      `.npy format version must be 1, 2 or 3: current value is ${major}`,
    );
  }
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
  if (descr[1] !== "<f4" && descr[1] !== "=f4") {
    throw new TypeError(
      `.npy dtype must be float32 ('<f4'): current value is '${descr[1]}'`,
    );
  }
  if (fortran[1] === "True") {
    throw new TypeError(
      ".npy array must be in C order: current value is fortran_order True",
    );
  }
  const shape = shapeM[1].split(",").map((s) => s.trim()).filter((s) =>
    s !== ""
  ).map(
    (s) => {
      if (!/^\d+$/.test(s)) {
        throw new SyntaxError(`.npy shape is malformed: (${shapeM[1]})`);
      }
      // A size beyond 2^53 - 1 cannot be held exactly (and with a zero
      // beside it, the data length check would not catch it).
      if (!Number.isSafeInteger(Number(s))) {
        throw new RangeError(
          `.npy shape sizes must be at most 2^53 - 1: current value is (${
            shapeM[1]
          })`,
        );
      }
      return Number(s);
    },
  );
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (bytes.length - offset !== count * 4) {
    throw new RangeError(
      `.npy data must hold ${count} float32 values for shape [${
        shape.join(", ")
      }]: it holds ${(bytes.length - offset) / 4}`,
    );
  }
  const data = new Float32Array(count);
  new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + count * 4));
  return { shape, data };
}

/**
 * Encodes a float32 array as a `.npy` file (format 1.0, `'<f4'`, C order).
 *
 * @throws {RangeError} If the shape does not match the data length.
 *
 * @example
 * ```ts
 * import { encodeNpy } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeNpy(new Float32Array(4), [2, 2]);
 * assert.equal(bytes.length % 64, 16);
 * ```
 */
export function encodeNpy(
  data: Float32Array,
  shape: readonly number[],
): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new RangeError(
      `shape [${shape.join(", ")}] must match the data length (${data.length})`,
    );
  }
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(pad % 64) + "\n";
  const out = new Uint8Array(10 + header.length + data.length * 4);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(
    new Uint8Array(data.buffer, data.byteOffset, data.length * 4),
    10 + header.length,
  );
  return out;
}
