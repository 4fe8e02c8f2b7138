// One streaming pass over float32 data: the baseline the benchmarks
// measure the WebAssembly kernels against (the WebAssembly twin of a numpy
// `sum`), and the runtime's self-check.
#include <wasm_simd128.h>

// Sum of `n` float32 values at `p` (16-byte aligned), in four float32x4
// accumulators (16 lanes), added lane by lane at the end in float64.
__attribute__((export_name("moelab_sum_f32"))) double
moelab_sum_f32(const float *p, int n) {
  v128_t a = wasm_f32x4_splat(0.0f), b = a, c = a, d = a;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    a = wasm_f32x4_add(a, wasm_v128_load(p + i));
    b = wasm_f32x4_add(b, wasm_v128_load(p + i + 4));
    c = wasm_f32x4_add(c, wasm_v128_load(p + i + 8));
    d = wasm_f32x4_add(d, wasm_v128_load(p + i + 12));
  }
  a = wasm_f32x4_add(wasm_f32x4_add(a, b), wasm_f32x4_add(c, d));
  double s = (double)wasm_f32x4_extract_lane(a, 0) +
             (double)wasm_f32x4_extract_lane(a, 1) +
             (double)wasm_f32x4_extract_lane(a, 2) +
             (double)wasm_f32x4_extract_lane(a, 3);
  for (; i < n; i++) s += (double)p[i];
  return s;
}
