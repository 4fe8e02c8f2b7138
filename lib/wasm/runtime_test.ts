import { test } from "node:test";
import assert from "node:assert/strict";
import { readSources, sourcesHash } from "./build.ts";
import { wasmRuntime, wasmSourcesHash } from "./runtime.ts";

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
