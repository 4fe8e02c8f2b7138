import { show } from "../validate.ts";
import { ITEM_SIZE, readElements } from "./_elements.ts";
import type { Tensor, TensorDtype } from "./tensor.ts";

const DTYPES: Record<string, TensorDtype> = {
  BOOL: "bool",
  U8: "uint8",
  I8: "int8",
  I16: "int16",
  I32: "int32",
  I64: "int64",
  F32: "float32",
  F64: "float64",
};

/**
 * Whether `bytes` look like a safetensors file: an 8-byte little-endian
 * header length that fits the file, then a header starting with `{`.
 *
 * @param bytes The file's bytes.
 * @returns `true` for a safetensors file.
 *
 * @example
 * ```ts
 * import { isSafetensors } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isSafetensors(readFileSync("data/fixtures/trtllm/rank0.safetensors")));
 * assert.ok(!isSafetensors(new TextEncoder().encode("step,layer\n")));
 * ```
 */
export function isSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  return n >= 2n && n <= BigInt(bytes.length - 8) && bytes[8] === 0x7b;
}

/**
 * Reads a safetensors file: an 8-byte little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?}`,
 * then the raw little-endian data (offsets relative to the end of the
 * header). Integer, boolean, float32 and float64 tensors are read; int64
 * as exact numbers up to 2^53.
 *
 * @param bytes The file's bytes.
 * @param options `name`: the file's name in error messages (default
 * `"safetensors file"`).
 * @returns Tensor name to tensor, in header order (`__metadata__` left out).
 * @throws {SyntaxError} If the header length or JSON is malformed.
 * @throws {TypeError} If a tensor's dtype is not one of the above, or its
 * shape or offsets are not integer lists; the message names the tensor.
 * @throws {RangeError} If a tensor's byte range does not match its shape
 * or lies outside the file, or an int64 exceeds 2^53.
 *
 * @example TensorRT-LLM's load statistics: one int64 vector per "{iter}_{layer}"
 * ```ts
 * import { parseSafetensors } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * const stats = parseSafetensors(readFileSync("data/fixtures/trtllm/rank0.safetensors"));
 * const [key, counts] = [...stats][0];
 * assert.match(key, /^\d+_\d+$/);
 * assert.equal(counts.dtype, "int64");
 * assert.equal(counts.shape.length, 1);
 * ```
 */
export function parseSafetensors(
  bytes: Uint8Array,
  options: { name?: string } = {},
): Map<string, Tensor> {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `bytes must be a Uint8Array: current value is ${show(bytes)}`,
    );
  }
  const what = options.name ?? "safetensors file";
  if (!isSafetensors(bytes)) {
    throw new SyntaxError(
      `${what} is not a safetensors file: it does not start with a header length and "{"`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)),
    );
  } catch (e) {
    throw new SyntaxError(
      `${what} header is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SyntaxError(`${what} header must be a JSON object`);
  }
  const data = bytes.subarray(8 + headerLen);
  const out = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const e = entry as {
      dtype?: unknown;
      shape?: unknown;
      data_offsets?: unknown;
    };
    const field = `${what} tensor ${JSON.stringify(name)}`;
    const dtype = DTYPES[String(e?.dtype)];
    if (dtype === undefined) {
      throw new TypeError(
        `${field}: dtype must be one of ${
          Object.keys(DTYPES).join(", ")
        }: current value is ${show(e?.dtype)}`,
      );
    }
    const ints = (v: unknown, n?: number) =>
      Array.isArray(v) && (n === undefined || v.length === n) &&
      v.every((x) => Number.isSafeInteger(x) && x >= 0);
    if (!ints(e.shape)) {
      throw new TypeError(
        `${field}: shape must be a list of sizes: current value is ${
          show(e.shape)
        }`,
      );
    }
    if (!ints(e.data_offsets, 2)) {
      throw new TypeError(
        `${field}: data_offsets must be [begin, end]: current value is ${
          show(e.data_offsets)
        }`,
      );
    }
    const shape = e.shape as number[];
    const [begin, end] = e.data_offsets as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * ITEM_SIZE[dtype] || end > data.length) {
      throw new RangeError(
        `${field}: data_offsets [${begin}, ${end}] must span ${
          count * ITEM_SIZE[dtype]
        } bytes within the ${data.length} after the header`,
      );
    }
    out.set(name, readElements(data.subarray(begin, end), dtype, shape, field));
  }
  return out;
}
