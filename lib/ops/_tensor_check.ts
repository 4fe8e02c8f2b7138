// Checks of the float32 tensors the training ops take: type, length,
// flags, and that a written array does not overlap an input.
import { show } from "../validate.ts";

/**
 * Throws unless `value` is a `Float32Array` of `length` entries (`shape`
 * says which, for the message).
 */
export function checkFloats(
  name: string,
  value: unknown,
  length: number,
  shape: string,
): Float32Array {
  if (!(value instanceof Float32Array)) {
    throw new TypeError(
      `${name} must be a Float32Array: current value is ${show(value)}`,
    );
  }
  if (value.length !== length) {
    throw new RangeError(
      `${name} must hold ${shape} = ${length} entries: current length is ${value.length}`,
    );
  }
  return value;
}

/** Throws unless `value` is a boolean or undefined (false). */
export function checkFlag(name: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") {
    throw new TypeError(
      `${name} must be a boolean: current value is ${show(value)}`,
    );
  }
  return value;
}

/** Throws if the written array `out` shares memory with the input `x`. */
export function checkDisjoint(
  outName: string,
  out: ArrayBufferView,
  name: string,
  x: ArrayBufferView,
): void {
  if (out.buffer !== x.buffer || out.byteLength === 0 || x.byteLength === 0) {
    return;
  }
  const o0 = out.byteOffset, o1 = o0 + out.byteLength;
  const x0 = x.byteOffset, x1 = x0 + x.byteLength;
  if (o0 < x1 && x0 < o1) {
    throw new RangeError(
      `${outName} must not overlap ${name}: bytes [${o0}, ${o1}) and [${x0}, ${x1}) of one buffer`,
    );
  }
}

/** Throws unless `value` is an `Int32Array` of `length` entries. */
export function checkInts(
  name: string,
  value: unknown,
  length: number,
  shape: string,
): Int32Array {
  if (!(value instanceof Int32Array)) {
    throw new TypeError(
      `${name} must be an Int32Array: current value is ${show(value)}`,
    );
  }
  if (value.length !== length) {
    throw new RangeError(
      `${name} must hold ${shape} = ${length} entries: current length is ${value.length}`,
    );
  }
  return value;
}

/** Throws if any written array of `outs` overlaps another array of `outs` or `ins`. */
export function checkAllDisjoint(
  outs: Record<string, ArrayBufferView>,
  ins: Record<string, ArrayBufferView>,
): void {
  const written = Object.entries(outs);
  for (let i = 0; i < written.length; i++) {
    const [name, out] = written[i];
    for (const [other, x] of Object.entries(ins)) {
      checkDisjoint(name, out, other, x);
    }
    for (let j = i + 1; j < written.length; j++) {
      checkDisjoint(name, out, written[j][0], written[j][1]);
    }
  }
}
