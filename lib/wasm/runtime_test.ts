import { test } from "node:test";
import assert from "node:assert/strict";
import { readSources, sourcesHash } from "./build.ts";
import {
  createSharedWasmHeap,
  sharedWasmHeap,
  sharedWasmInstance,
  wasmRuntime,
  wasmSourcesHash,
} from "./runtime.ts";

test("the embedded module was built from the C sources in lib/wasm/src", () => {
  assert.equal(sourcesHash(readSources()), wasmSourcesHash);
});

/** The sum in moelab_sum_f32's order: 16 float32 lanes, then float64. */
function sumTwin(x: Float32Array): number {
  const lanes = new Float32Array(16);
  let i = 0;
  for (; i + 16 <= x.length; i += 16) {
    for (let l = 0; l < 16; l++) lanes[l] = Math.fround(lanes[l] + x[i + l]);
  }
  const four = new Float32Array(4);
  for (let l = 0; l < 4; l++) {
    four[l] = Math.fround(
      Math.fround(lanes[l] + lanes[4 + l]) +
        Math.fround(lanes[8 + l] + lanes[12 + l]),
    );
  }
  let s = four[0] + four[1] + four[2] + four[3];
  for (; i < x.length; i++) s += x[i];
  return s;
}

test("moelab_sum_f32 matches its lane-by-lane twin at every tail length", () => {
  const rt = wasmRuntime();
  assert.ok(rt, "WebAssembly SIMD is available in Deno");
  for (const n of [0, 1, 15, 16, 17, 33, 1000, 4099]) {
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * 3);
    const p = rt.reserve("sum-test", 4 * n);
    rt.f32(p, n).set(x);
    assert.equal(rt.exports.moelab_sum_f32(p, n), sumTwin(x), `n = ${n}`);
  }
});

test("reserve: aligned, reused per slot, grows memory without losing data", () => {
  const rt = wasmRuntime()!;
  const a = rt.reserve("a-test", 100);
  assert.equal(a % 16, 0);
  assert.equal(rt.reserve("a-test", 64), a);
  const b = rt.reserve("b-test", 32);
  assert.ok(b >= a + 100);
  rt.f32(b, 8).fill(7);
  const pages = rt.memory.buffer.byteLength;
  const big = rt.reserve("big-test", pages + 4 * 65536);
  assert.ok(rt.memory.buffer.byteLength >= big + pages + 4 * 65536);
  assert.deepEqual([...rt.f32(b, 8)], new Array(8).fill(7));
  assert.throws(() => rt.reserve("c-test", -1), RangeError);
});

test("shared heap: a shared memory, aligned regions, freed ones reused and merged", () => {
  assert.ok(sharedWasmHeap(), "Deno and Bun have shared WebAssembly memory");
  // A heap of its own: this thread's may hold regions that other tests'
  // arrays free whenever they are collected.
  const heap = createSharedWasmHeap();
  assert.ok(heap);
  assert.ok(heap.memory.buffer instanceof SharedArrayBuffer);
  const before = heap.used();
  const a = heap.alloc(100)!, b = heap.alloc(40)!, c = heap.alloc(16)!;
  for (const p of [a, b, c]) assert.equal(p % 16, 0);
  assert.ok(b >= a + 100 && c >= b + 40, "regions do not overlap");
  assert.equal(heap.used(), before + 112 + 48 + 16);
  // Freed a, then b: one free region of 160 bytes where a was, which a
  // region of 150 bytes fits and one of 170 does not.
  heap.free(a);
  heap.free(b);
  assert.equal(heap.alloc(150), a);
  const d = heap.alloc(170)!;
  assert.ok(d > c);
  assert.throws(() => heap.free(a + 16), RangeError);
  assert.throws(() => heap.alloc(-1), RangeError);
  // Beyond 4 GiB: no region, nothing grown.
  const length = heap.memory.buffer.byteLength;
  assert.equal(heap.alloc(2 ** 32), undefined);
  assert.equal(heap.memory.buffer.byteLength, length);
  for (const p of [a, c, d]) heap.free(p);
  assert.equal(heap.used(), before);
});

test("shared heap: 4 GiB from the start, the same buffer for every region, no region past its end", () => {
  const heap = createSharedWasmHeap()!;
  const buffer = heap.memory.buffer;
  assert.equal(buffer.byteLength, 2 ** 32);
  const p = heap.alloc(64)!;
  const view = new Float32Array(heap.memory.buffer, p, 16);
  view.fill(3.5);
  // A region of a GiB, written at its last float: the memory stays the
  // same buffer, and the first region reads what it held.
  const big = heap.alloc(2 ** 30)!;
  new Float32Array(heap.memory.buffer, big, 2 ** 28)[2 ** 28 - 1] = 7;
  assert.equal(heap.memory.buffer, buffer, "one buffer, never replaced");
  assert.ok(heap.holds(view.buffer) && heap.holds(buffer));
  assert.ok(!heap.holds(new SharedArrayBuffer(8)));
  assert.deepEqual([...view], new Array(16).fill(3.5));
  // What is left past the top: a region of that size fits, one more
  // byte does not.
  const left = 2 ** 32 - (big + 2 ** 30);
  assert.equal(heap.alloc(left + 16), undefined);
  heap.free(big);
  heap.free(p);
});

test("the threads module instantiates on the shared heap, once per memory", () => {
  const heap = sharedWasmHeap()!;
  const rt = sharedWasmInstance(heap.memory)!;
  assert.equal(rt.memory, heap.memory);
  assert.equal(sharedWasmInstance(heap.memory), rt, "one instance a memory");
  assert.ok(rt.exports.moelab_route_scratch_bytes(256, 8, 1, 8) > 0);
});
