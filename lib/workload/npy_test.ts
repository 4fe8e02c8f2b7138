import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { encodeNpy, parseNpy } from "./npy.ts";

/** A .npy file as numpy 1.x writes it for np.arange(6, dtype=np.float32).reshape(2, 3). */
function numpyBytes(): Uint8Array {
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const padded = header + " ".repeat(128 - 10 - header.length - 1) + "\n";
  const out = new Uint8Array(128 + 24);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  out[8] = padded.length;
  for (let i = 0; i < padded.length; i++) out[10 + i] = padded.charCodeAt(i);
  new Float32Array(out.buffer, 128, 6).set([0, 1, 2, 3, 4, 5]);
  return out;
}

describe("npy", () => {
  test("reads a file laid out as numpy writes it", () => {
    const a = parseNpy(numpyBytes());
    assert.deepEqual(a.shape, [2, 3]);
    assert.deepEqual([...a.data], [0, 1, 2, 3, 4, 5]);
  });

  test("round-trips through encodeNpy, header aligned to 64 bytes", () => {
    const data = new Float32Array([1.5, -2, 3, Infinity]);
    const bytes = encodeNpy(data, [4]);
    assert.equal((bytes.length - 16) % 64, 0);
    const a = parseNpy(bytes);
    assert.deepEqual(a.shape, [4]);
    assert.deepEqual([...a.data], [...data]);
  });

  test("rejects malformed files clearly", () => {
    assert.throws(
      () => parseNpy(new TextEncoder().encode("hello world")),
      SyntaxError,
    );
    const f8 = numpyBytes();
    f8.set(new TextEncoder().encode("<f8"), 10 + "{'descr': '".length);
    assert.throws(() => parseNpy(f8), { name: "TypeError", message: /'<f8'/ });
    const truncated = numpyBytes().subarray(0, 140);
    assert.throws(() => parseNpy(truncated), {
      name: "RangeError",
      message: /6 float32 values/,
    });
    const fortran = numpyBytes();
    const text = new TextDecoder().decode(fortran.subarray(10, 128)).replace(
      "False",
      "True ",
    );
    fortran.set(new TextEncoder().encode(text), 10);
    assert.throws(() => parseNpy(fortran), TypeError);
  });

  test("refuses a size beyond 2^53 - 1 even when another size is 0", () => {
    // An empty array passes the length check whatever its other sizes.
    for (
      const shape of ["(0, 99999999999999999999999)", "(9007199254740993, 0)"]
    ) {
      const header =
        `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
      const padded = header + " ".repeat(128 - 10 - header.length - 1) + "\n";
      const bytes = new Uint8Array(128);
      bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
      bytes[8] = padded.length;
      for (let i = 0; i < padded.length; i++) {
        bytes[10 + i] = padded.charCodeAt(i);
      }
      assert.throws(() => parseNpy(bytes), {
        name: "RangeError",
        message:
          `.npy shape sizes must be at most 2^53 - 1: current value is ${shape}`,
      });
    }
  });
});
