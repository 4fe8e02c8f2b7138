// The WebAssembly SIMD runtime of the "wasm" kernels: one instance of the
// module built from lib/wasm/src/*.c per thread, created on first use
// (synchronously: the module is small), with a private memory the runtime
// grows. Kernels copy their input into named regions of that memory, call
// an exported C function, and copy the result out.
//
// The shared heap (`sharedWasmHeap`) is the other memory: one shared
// WebAssembly.Memory per thread that asks for one (its buffer a
// SharedArrayBuffer, 4 GiB of address space from the start), regions
// allocated and freed by the thread that made it, on which every routing
// thread instantiates the threads module (the route kernel built for a
// shared memory, `sharedWasmInstance`) with a stack of its own, so that
// the kernel reads score matrices allocated there in place.
import {
  WASM_INITIAL_PAGES,
  WASM_MODULE_BASE64,
  WASM_SOURCES_SHA256,
  WASM_THREADS_INITIAL_PAGES,
  WASM_THREADS_MAX_PAGES,
  WASM_THREADS_MODULE_BASE64,
  WASM_THREADS_STACK_BYTES,
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
  /**
   * Whether arrays on `buffer` lie in this runtime's memory, where its
   * kernels read them in place (a shared heap's, see
   * {@linkcode wasmRuntimeOn}); never for the module's private memory.
   */
  holds(buffer: ArrayBufferLike): boolean;
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
  return {
    exports: Object.freeze(functions),
    memory,
    // The last region grows in place; another moves to the top (its old
    // space is not reused: slots are few and sized once per shape).
    reserve: slotReserver((size, held) => {
      const ptr = held && held.ptr + held.bytes === top ? held.ptr : top;
      const end = ptr + size;
      if (end > memory.buffer.byteLength) {
        memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE));
      }
      top = Math.max(top, end);
      return ptr;
    }),
    ...views(memory),
    holds: () => false,
  };
}

/** A region and its size. */
interface Region {
  ptr: number;
  bytes: number;
}

/**
 * {@linkcode WasmRuntime.reserve} over `place`, which gives the address of
 * `size` (aligned) bytes for a slot that holds `held` (too small) or none.
 */
function slotReserver(
  place: (size: number, held: Region | undefined) => number,
): (slot: string, bytes: number) => number {
  const slots = new Map<string, Region>();
  return (slot, bytes) => {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`bytes must be a non-negative integer: ${bytes}`);
    }
    const held = slots.get(slot);
    if (held && held.bytes >= bytes) return held.ptr;
    const size = align(Math.max(bytes, ALIGN));
    const ptr = place(size, held);
    slots.set(slot, { ptr, bytes: size });
    return ptr;
  };
}

/** {@linkcode WasmRuntime}'s typed views of `memory` (its buffer now). */
function views(memory: WebAssembly.Memory) {
  return {
    f32: (ptr: number, length: number) =>
      new Float32Array(memory.buffer, ptr, length),
    f64: (ptr: number, length: number) =>
      new Float64Array(memory.buffer, ptr, length),
    i32: (ptr: number, length: number) =>
      new Int32Array(memory.buffer, ptr, length),
  };
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/**
 * A WebAssembly memory shared between threads, with an allocator of
 * 16-byte aligned regions run by the thread that made it. The memory is
 * 4 GiB from the start and never grows (the threads module's kernels run
 * faster on a shared memory of fixed size: lib/wasm/build.ts); the
 * operating system backs its pages when they are first written. A
 * region's address stays valid until it is freed.
 */
export interface SharedWasmHeap {
  /** The memory (`shared`: its buffer is a `SharedArrayBuffer`). */
  readonly memory: WebAssembly.Memory;
  /**
   * The address of a free region of at least `bytes` bytes (16-byte
   * aligned, not zeroed), or `undefined` where the memory has no such
   * region left.
   */
  alloc(bytes: number): number | undefined;
  /** Returns a region from {@linkcode SharedWasmHeap.alloc} (once). */
  free(ptr: number): void;
  /** Bytes held by regions not freed. */
  used(): number;
  /** Whether `buffer` is this memory's buffer. */
  holds(buffer: ArrayBufferLike): boolean;
}

/** The threads module's exports on one thread, on a shared memory. */
export interface SharedWasmInstance {
  /** The exported functions, by C name (`moelab_route_...`). */
  readonly exports: Readonly<Record<string, WasmFunction>>;
  /** The shared memory it runs on. */
  readonly memory: WebAssembly.Memory;
  /** The first address past the module's stack and data (`__heap_base`). */
  readonly heapBase: number;
}

/** Bytes of the stack each thread's instance gets in the shared heap. */
export const SHARED_STACK_BYTES: number = WASM_THREADS_STACK_BYTES;

let heap: SharedWasmHeap | null | undefined;
let threadsModule: WebAssembly.Module | null | undefined;
const instances = new WeakMap<WebAssembly.Memory, SharedWasmInstance>();

/**
 * This thread's shared heap, made on first use, or `undefined` where the
 * engine has no shared WebAssembly memory (then score matrices live on a
 * plain `SharedArrayBuffer` and are copied into each thread's memory).
 */
export function sharedWasmHeap(): SharedWasmHeap | undefined {
  if (heap === undefined) heap = createSharedWasmHeap() ?? null;
  return heap ?? undefined;
}

/** Frees an array's region of the shared heap when the array is collected. */
const heapArrays = new FinalizationRegistry<number>((ptr) => heap?.free(ptr));

/**
 * `length` float32 zeros in this thread's shared heap
 * ({@linkcode sharedWasmHeap}), their region freed when the returned array
 * is garbage collected (keep it, not only views of its buffer, while it is
 * in use); `undefined` where the engine has no shared WebAssembly memory
 * or the heap has no room left for them. The route op's WebAssembly kernel
 * reads scores there in place.
 */
export function sharedHeapFloat32(length: number): Float32Array | undefined {
  return heapArray(Float32Array, length);
}

/**
 * `length` int32 zeros in this thread's shared heap, as
 * {@linkcode sharedHeapFloat32}. The route op's threads write a
 * routing's experts there in place.
 */
export function sharedHeapInt32(length: number): Int32Array | undefined {
  return heapArray(Int32Array, length);
}

function heapArray<T extends Float32Array | Int32Array>(
  make: new (buffer: ArrayBufferLike, offset: number, length: number) => T,
  length: number,
): T | undefined {
  const h = sharedWasmHeap();
  const ptr = h?.alloc(4 * length);
  if (h === undefined || ptr === undefined) return undefined;
  const data = new make(h.memory.buffer, ptr, length);
  data.fill(0);
  heapArrays.register(data, ptr);
  return data;
}

/** A copy of an array for a computation, freed by `release`. */
export interface Staged {
  /** The array, or its copy. */
  readonly data: Float32Array;
  /** Frees the copy's region (once; nothing where no copy was made). */
  release(): void;
}

/**
 * `data` where it lies in this thread's shared heap, else a copy of it
 * there, so that every WebAssembly kernel of a computation reads it in
 * place instead of copying it in at each call; `data` itself where there
 * is no shared heap or it cannot hold the copy. `release` frees the copy's
 * region when the computation is done (regions freed that way are reused
 * while their pages are still mapped: a fresh region of 16 MiB took 11-15
 * ms to fill, against a few for one reused).
 */
export function stagedInSharedHeap(data: Float32Array): Staged {
  const none = { data, release() {} };
  if (heap && data.buffer instanceof SharedArrayBuffer) {
    if (heap.holds(data.buffer)) return none;
  }
  const h = sharedWasmHeap();
  const ptr = h?.alloc(4 * data.length);
  if (h === undefined || ptr === undefined) return none;
  const copy = new Float32Array(h.memory.buffer, ptr, data.length);
  copy.set(data);
  let held = true;
  return {
    data: copy,
    release() {
      if (held) h.free(ptr);
      held = false;
    },
  };
}

let heapRuntime: WasmRuntime | null | undefined;

/**
 * The runtime whose kernels read `data` in place where it lies in this
 * thread's shared heap (the threads module's instance on it, its regions
 * reserved in the heap: `holds` is true for the heap's buffers), else
 * {@linkcode wasmRuntime}; `undefined` where the engine cannot run the
 * module. The two give the same answers (the same C sources).
 */
export function wasmRuntimeOn(data: ArrayBufferView): WasmRuntime | undefined {
  // No heap made yet on this thread: nothing lies in it.
  if (heap && data.buffer instanceof SharedArrayBuffer) {
    if (heap.holds(data.buffer)) {
      if (heapRuntime === undefined) heapRuntime = makeHeapRuntime(heap);
      if (heapRuntime) return heapRuntime;
    }
  }
  return wasmRuntime();
}

/**
 * The address of `data` in `rt`'s memory: its own where `rt` holds its
 * buffer (read in place), else that of a copy in the region `slot`.
 */
export function floatsIn(
  rt: WasmRuntime,
  data: Float32Array,
  slot: string,
): number {
  if (rt.holds(data.buffer)) return data.byteOffset;
  const at = rt.reserve(slot, data.length * 4);
  rt.f32(at, data.length).set(data);
  return at;
}

function makeHeapRuntime(h: SharedWasmHeap): WasmRuntime | null {
  const rt = sharedWasmInstance(h.memory);
  if (rt === undefined) return null;
  return {
    exports: rt.exports,
    memory: h.memory,
    // A slot that outgrows its region gets a new one; the old is freed.
    reserve: slotReserver((size, held) => {
      const ptr = h.alloc(size);
      if (ptr === undefined) {
        throw new RangeError(
          `the shared WebAssembly heap cannot hold ${size} more bytes`,
        );
      }
      if (held) h.free(held.ptr);
      return ptr;
    }),
    ...views(h.memory),
    holds: (buffer) => h.holds(buffer),
  };
}

/**
 * The threads module's instance of this thread on `memory` (a shared
 * heap's), made once per memory. Its stack is the `SHARED_STACK_BYTES`
 * below `stackTop`, which must be this thread's alone: the default, the
 * module's own stack (the memory's first bytes, below every region), is
 * for the thread that made the heap; another thread passes the top of a
 * region allocated for it. `undefined` where the engine cannot run it.
 */
export function sharedWasmInstance(
  memory: WebAssembly.Memory,
  stackTop: number = WASM_THREADS_STACK_BYTES,
): SharedWasmInstance | undefined {
  const have = instances.get(memory);
  if (have) return have;
  const module = threadsWasmModule();
  if (module === undefined) return undefined;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const exported = instance.exports as Record<string, unknown>;
  (exported.__stack_pointer as WebAssembly.Global).value = stackTop;
  const functions: Record<string, WasmFunction> = {};
  for (const [name, value] of Object.entries(exported)) {
    if (typeof value === "function") functions[name] = value as WasmFunction;
  }
  const heapBase = (exported.__heap_base as WebAssembly.Global).value as number;
  const made = { exports: Object.freeze(functions), memory, heapBase };
  instances.set(memory, made);
  return made;
}

function threadsWasmModule(): WebAssembly.Module | undefined {
  if (threadsModule === undefined) {
    threadsModule = null;
    if (wasmRuntime() !== undefined) {
      try {
        threadsModule = new WebAssembly.Module(
          decodeBase64(WASM_THREADS_MODULE_BASE64),
        );
      } catch { /* no threads proposal: the copying path */ }
    }
  }
  return threadsModule ?? undefined;
}

/**
 * A new shared heap of its own (a memory and an allocator, as
 * {@linkcode sharedWasmHeap}'s), or `undefined` where the engine has no
 * shared WebAssembly memory or the system will not map one. The kernels
 * read in place only in this thread's {@linkcode sharedWasmHeap}; a heap
 * of its own serves to test the allocator from a known state.
 */
export function createSharedWasmHeap(): SharedWasmHeap | undefined {
  if (typeof SharedArrayBuffer !== "function") return undefined;
  let memory: WebAssembly.Memory;
  try {
    // The threads module's sizes, one fixed size: where the system will
    // not map 4 GiB, no heap (the kernels copy their inputs in instead).
    memory = new WebAssembly.Memory({
      initial: WASM_THREADS_INITIAL_PAGES,
      maximum: WASM_THREADS_MAX_PAGES,
      shared: true,
    });
    if (!(memory.buffer instanceof SharedArrayBuffer)) return undefined;
  } catch {
    return undefined;
  }
  // The heap's own thread runs on the module's stack, the first bytes.
  const own = sharedWasmInstance(memory);
  if (own === undefined) return undefined;
  const buffer = memory.buffer;
  /** Free regions, by address, none adjacent to another. */
  const free: { ptr: number; bytes: number }[] = [];
  const held = new Map<number, number>();
  // Regions start at the first page past the module's stack and data: on
  // a page boundary, where the first scores allocated route faster (at
  // __heap_base itself, 288 bytes on, routeParallel took about 10% longer
  // at 262144 x 256).
  let top = Math.ceil(own.heapBase / PAGE) * PAGE;
  let inUse = 0;
  return {
    memory,
    alloc(bytes: number): number | undefined {
      if (!Number.isSafeInteger(bytes) || bytes < 0) {
        throw new RangeError(`bytes must be a non-negative integer: ${bytes}`);
      }
      const size = align(Math.max(bytes, ALIGN));
      let ptr = -1;
      // First fit among the free regions; else at the top.
      for (let i = 0; i < free.length; i++) {
        const f = free[i];
        if (f.bytes < size) continue;
        ptr = f.ptr;
        if (f.bytes === size) free.splice(i, 1);
        else free[i] = { ptr: f.ptr + size, bytes: f.bytes - size };
        break;
      }
      if (ptr < 0) {
        if (top + size > buffer.byteLength) return undefined;
        ptr = top;
        top += size;
      }
      held.set(ptr, size);
      inUse += size;
      return ptr;
    },
    free(ptr: number): void {
      const size = held.get(ptr);
      if (size === undefined) {
        throw new RangeError(`ptr is not an allocated region: ${ptr}`);
      }
      held.delete(ptr);
      inUse -= size;
      // Insert by address, merged with the free neighbours.
      let i = 0;
      while (i < free.length && free[i].ptr < ptr) i++;
      let region = { ptr, bytes: size };
      const next = free[i];
      if (next && region.ptr + region.bytes === next.ptr) {
        region = { ptr, bytes: region.bytes + next.bytes };
        free.splice(i, 1);
      }
      const prev = free[i - 1];
      if (prev && prev.ptr + prev.bytes === region.ptr) {
        region = { ptr: prev.ptr, bytes: prev.bytes + region.bytes };
        free.splice(--i, 1);
      }
      // A free region at the top lowers the top instead.
      if (region.ptr + region.bytes === top) top = region.ptr;
      else free.splice(i, 0, region);
    },
    used: () => inUse,
    holds: (b) => b === buffer,
  };
}
