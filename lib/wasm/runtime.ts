// The WebAssembly SIMD runtime of the "wasm" kernels: one instance of the
// module built from lib/wasm/src/*.c per thread, created on first use
// (synchronously: the module is small), with a private memory the runtime
// grows. Kernels copy their input into named regions of that memory, call
// an exported C function, and copy the result out; nothing else is shared.
import {
  WASM_INITIAL_PAGES,
  WASM_MODULE_BASE64,
  WASM_SOURCES_SHA256,
} from "./_module.ts";
import { decodeBase64 } from "./_base64.ts";

/** An exported C function: integers (pointers, sizes) and floats in, a number out. */
export type WasmFunction = (...args: number[]) => number;

/** This thread's instance of the kernels' module. */
export interface WasmRuntime {
  /** The exported functions, by C name (`moelab_...`). */
  readonly exports: Readonly<Record<string, WasmFunction>>;
  /** The instance's memory (grows; take views after {@linkcode WasmRuntime.reserve}). */
  readonly memory: WebAssembly.Memory;
  /**
   * A 16-byte aligned region of at least `bytes` bytes, the same one for
   * the same `slot` name while it is large enough; growing memory
   * invalidates earlier views, never earlier pointers.
   */
  reserve(slot: string, bytes: number): number;
  /** A float32 view of `length` entries at byte address `ptr`. */
  f32(ptr: number, length: number): Float32Array;
  /** A float64 view of `length` entries at byte address `ptr`. */
  f64(ptr: number, length: number): Float64Array;
  /** An int32 view of `length` entries at byte address `ptr`. */
  i32(ptr: number, length: number): Int32Array;
}

/** Bytes of one page of WebAssembly memory. */
const PAGE = 65536;
/** Alignment of every reserved region (a v128 load). */
const ALIGN = 16;

let runtime: WasmRuntime | null | undefined;
let unavailable = "";

/**
 * This thread's runtime, or `undefined` where the engine cannot run the
 * module (no WebAssembly, or no SIMD): callers then use the `"cpu"`
 * kernels, whose answers are the same.
 */
export function wasmRuntime(): WasmRuntime | undefined {
  if (runtime === undefined) runtime = instantiate();
  return runtime ?? undefined;
}

/** Why {@linkcode wasmRuntime} is `undefined` (empty when it is not). */
export function wasmUnavailableReason(): string {
  wasmRuntime();
  return unavailable;
}

/** SHA-256 of the C sources the embedded module was built from. */
export const wasmSourcesHash: string = WASM_SOURCES_SHA256;

function instantiate(): WasmRuntime | null {
  if (typeof WebAssembly !== "object") {
    unavailable = "this engine has no WebAssembly";
    return null;
  }
  const bytes = decodeBase64(WASM_MODULE_BASE64);
  if (!WebAssembly.validate(bytes)) {
    unavailable = "this engine does not validate the module (no SIMD128?)";
    return null;
  }
  const memory = new WebAssembly.Memory({ initial: WASM_INITIAL_PAGES });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    env: { memory },
  });
  const exported = instance.exports as Record<string, unknown>;
  const functions: Record<string, WasmFunction> = {};
  for (const [name, value] of Object.entries(exported)) {
    if (typeof value === "function") functions[name] = value as WasmFunction;
  }
  const heapBase = (exported.__heap_base as WebAssembly.Global).value as number;
  let top = align(heapBase);
  const slots = new Map<string, { ptr: number; bytes: number }>();
  return {
    exports: Object.freeze(functions),
    memory,
    reserve(slot: string, bytes: number): number {
      if (!Number.isSafeInteger(bytes) || bytes < 0) {
        throw new RangeError(`bytes must be a non-negative integer: ${bytes}`);
      }
      const held = slots.get(slot);
      if (held && held.bytes >= bytes) return held.ptr;
      // The last region grows in place; another moves to the top (its
      // old space is not reused: slots are few and sized once per shape).
      const ptr = held && held.ptr + held.bytes === top ? held.ptr : top;
      const size = align(Math.max(bytes, ALIGN));
      const end = ptr + size;
      if (end > memory.buffer.byteLength) {
        memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE));
      }
      slots.set(slot, { ptr, bytes: size });
      top = Math.max(top, end);
      return ptr;
    },
    f32: (ptr, length) => new Float32Array(memory.buffer, ptr, length),
    f64: (ptr, length) => new Float64Array(memory.buffer, ptr, length),
    i32: (ptr, length) => new Int32Array(memory.buffer, ptr, length),
  };
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
