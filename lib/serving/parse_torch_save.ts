import { show } from "../validate.ts";
import { readElements } from "./_elements.ts";
import { PickleGlobal, unpickle } from "./_pickle.ts";
import { isZip, readZip } from "./_zip.ts";
import type { Tensor, TensorDtype } from "./tensor.ts";

const STORAGE_DTYPES: Record<string, TensorDtype | null> = {
  "torch.BoolStorage": "bool",
  "torch.ByteStorage": "uint8",
  "torch.CharStorage": "int8",
  "torch.ShortStorage": "int16",
  "torch.IntStorage": "int32",
  "torch.LongStorage": "int64",
  "torch.FloatStorage": "float32",
  "torch.DoubleStorage": "float64",
  "torch.HalfStorage": null,
  "torch.BFloat16Storage": null,
};

interface Storage {
  dtype: TensorDtype;
  bytes: Uint8Array;
  key: string;
}

function isIntList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

/**
 * Reads a file written by PyTorch's `torch.save` (the zip format, PyTorch
 * 1.6 and later) without PyTorch and without executing anything: a
 * restricted unpickler accepts only dicts (`dict`, `collections.OrderedDict`),
 * lists, tuples, numbers, strings, `None` and dense CPU tensors
 * (`torch._utils._rebuild_tensor_v2` over `torch.*Storage`), and refuses
 * any other global or opcode with a `SyntaxError`.
 *
 * @param bytes The file's bytes.
 * @param options `name`: the file's name in error messages (default
 * `"torch.save file"`).
 * @returns The saved object: dicts as `Map`, lists and tuples as arrays,
 * `None` as `null`, tensors as {@linkcode Tensor} (row-major whatever their
 * strides).
 * @throws {SyntaxError} If the bytes are not a zip archive holding
 * `<prefix>/data.pkl`, or the pickle names a global or opcode outside the
 * set above (such as `os.system`): nothing is executed.
 * @throws {TypeError} If a tensor is float16 or bfloat16.
 * @throws {RangeError} If a storage is missing or shorter than its tensor,
 * or a 64-bit integer exceeds 2^53.
 *
 * @example A dict saved by `torch.save({"n": 3})`, read back
 * ```ts
 * import { parseTorchSave, type Tensor } from "@moelab/balance/serving";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * const saved = parseTorchSave(readFileSync("data/fixtures/sglang_stat.pt"));
 * assert.ok(saved instanceof Map);
 * const count = saved.get("logical_count") as Tensor;
 * assert.equal(count.dtype, "int32");
 * assert.equal(count.shape.length, 3); // steps x layers x logical experts
 * assert.throws(() => parseTorchSave(new Uint8Array([1, 2, 3])), SyntaxError);
 * ```
 */
export function parseTorchSave(
  bytes: Uint8Array,
  options: { name?: string } = {},
): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `bytes must be a Uint8Array: current value is ${show(bytes)}`,
    );
  }
  const what = options.name ?? "torch.save file";
  if (!isZip(bytes)) {
    throw new SyntaxError(
      `${what} is not a torch.save zip archive (PyTorch 1.6 or later): it does not start with PK\\x03\\x04`,
    );
  }
  const entries = readZip(bytes, what);
  const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl === undefined) {
    throw new SyntaxError(
      `${what} is a zip archive but not a torch.save file: it has no <name>/data.pkl entry`,
    );
  }
  const prefix = pkl.slice(0, -"data.pkl".length);
  const storages = new Map<string, Storage>();
  const persistent = (pid: unknown): Storage => {
    if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 3) {
      throw new SyntaxError(
        `${what}: persistent id ${show(pid)} is not a storage`,
      );
    }
    const [, type, key] = pid;
    const typeName = type instanceof PickleGlobal ? type.name : String(type);
    const dtype = STORAGE_DTYPES[typeName];
    if (dtype === undefined) {
      throw new SyntaxError(
        `${what}: storage type ${typeName} is not a torch storage`,
      );
    }
    if (dtype === null) {
      throw new TypeError(
        `${what}: storage ${key} is ${typeName}; only integer, float32 and float64 tensors are read`,
      );
    }
    const found = storages.get(String(key));
    if (found) return found;
    const data = entries.get(`${prefix}data/${key}`);
    if (data === undefined) {
      throw new RangeError(`${what}: storage ${prefix}data/${key} is missing`);
    }
    const s = { dtype, bytes: data, key: String(key) };
    storages.set(s.key, s);
    return s;
  };
  const rebuild = (args: unknown[]): Tensor => {
    const [storage, offset, size, stride] = args as [
      Storage,
      number,
      number[],
      number[],
    ];
    if (
      !storage?.bytes || !Number.isSafeInteger(offset) || !isIntList(size) ||
      !isIntList(stride) || size.length !== stride.length
    ) {
      throw new SyntaxError(
        `${what}: a tensor's storage, offset, size or stride is malformed`,
      );
    }
    const dims = size.length;
    return readElements(
      storage.bytes,
      storage.dtype,
      [...size],
      `${what} storage ${storage.key}`,
      (i) => {
        let at = offset;
        for (let d = dims - 1; d >= 0; d--) {
          at += (i % size[d]) * stride[d];
          i = Math.floor(i / size[d]);
        }
        return at;
      },
    );
  };
  return unpickle(
    entries.get(pkl)!,
    what,
    {
      "collections.OrderedDict": () => new Map(),
      "torch._utils._rebuild_tensor_v2": rebuild,
    },
    new Set(Object.keys(STORAGE_DTYPES)),
    persistent,
  );
}
