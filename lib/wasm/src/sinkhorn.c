// Sinkhorn scaling steps (S-BASE, Clark et al. 2022; docs/algorithms.md
// section 8), the WebAssembly twin of the loop of lib/ops/sinkhorn.ts: the
// same float64 sums in the same order, so the same scale, bit for bit.
// Lanes run over rows, never along a sum: the kernel `exp(s / tau)` lies in
// tiles of TILE rows, tile-major and expert-major inside a tile (entry
// (t * TILE + r, j) at `t * TILE * E + j * TILE + r`), so each row's sum
// over the experts is one lane of four float64x2 accumulators, and each
// expert's sum over the rows adds the tile's rows in their order.
#include <wasm_simd128.h>

#define TILE 8

// Row scales of one tile: `u[r] = 1 / sum_j K[r][j] v[j]` (0 where the sum
// is not positive), each sum in order of j.
static void tile_rows(const double *k, int E, const double *vj, double *u) {
  v128_t a = wasm_f64x2_splat(0), b = a, c = a, d = a;
  for (int j = 0; j < E; j++) {
    const double *x = k + j * TILE;
    v128_t w = wasm_f64x2_splat(vj[j]);
    a = wasm_f64x2_add(a, wasm_f64x2_mul(wasm_v128_load(x), w));
    b = wasm_f64x2_add(b, wasm_f64x2_mul(wasm_v128_load(x + 2), w));
    c = wasm_f64x2_add(c, wasm_f64x2_mul(wasm_v128_load(x + 4), w));
    d = wasm_f64x2_add(d, wasm_f64x2_mul(wasm_v128_load(x + 6), w));
  }
  double r[TILE];
  wasm_v128_store(r, a);
  wasm_v128_store(r + 2, b);
  wasm_v128_store(r + 4, c);
  wasm_v128_store(r + 6, d);
  for (int i = 0; i < TILE; i++) u[i] = r[i] > 0 ? 1 / r[i] : 0;
}

// Column sums of one tile's scaled rows: `v[j] += u[r] * K[r][j]` for r in
// order, two experts per float64x2.
static void tile_columns(const double *k, int E, const double *u, double *v) {
  int j = 0;
  for (; j + 2 <= E; j += 2) {
    const double *x = k + j * TILE, *y = x + TILE;
    v128_t acc = wasm_v128_load(v + j);
    for (int r = 0; r < TILE; r += 2) {
      v128_t p = wasm_v128_load(x + r), q = wasm_v128_load(y + r);
      // (K[r][j], K[r][j+1]) and (K[r+1][j], K[r+1][j+1]).
      v128_t first = wasm_i64x2_shuffle(p, q, 0, 2);
      v128_t second = wasm_i64x2_shuffle(p, q, 1, 3);
      acc = wasm_f64x2_add(acc, wasm_f64x2_mul(wasm_f64x2_splat(u[r]), first));
      acc = wasm_f64x2_add(acc,
                           wasm_f64x2_mul(wasm_f64x2_splat(u[r + 1]), second));
    }
    wasm_v128_store(v + j, acc);
  }
  for (; j < E; j++) {
    const double *x = k + j * TILE;
    double s = v[j];
    for (int r = 0; r < TILE; r++) s += u[r] * x[r];
    v[j] = s;
  }
}

// The steps of the scaling from the column scale `vj` (experts) on the
// kernel `k` (`tiles` tiles of TILE rows; rows past the batch are zeros,
// whose scale is 0 and whose terms add +0): rows `u[i] = 1 / sum_j K[i][j]
// vj[j]`, column sums `v[j] = sum_i u[i] K[i][j]`, `error = max_j
// |v[j] vj[j] - target| / target`; stop when `error <= tolerance` or after
// `max_iterations` steps, else `vj[j] = target / v[j]` where `v[j] > 0`.
// `u` has room for `tiles * TILE`, `v` for `E`. Writes the error to
// `error_out` and returns the steps done.
__attribute__((export_name("moelab_sinkhorn_steps"))) int
moelab_sinkhorn_steps(const double *k, int tiles, int E, double *vj, double *u,
                      double *v, double target, double tolerance,
                      int max_iterations, double *error_out) {
  int iterations = 0;
  double error;
  for (;;) {
    for (int j = 0; j < E; j++) v[j] = 0;
    for (int t = 0; t < tiles; t++) {
      const double *kt = k + (long)t * TILE * E;
      tile_rows(kt, E, vj, u + t * TILE);
      tile_columns(kt, E, u + t * TILE, v);
    }
    iterations++;
    error = 0;
    for (int j = 0; j < E; j++) {
      double dev = __builtin_fabs(v[j] * vj[j] - target) / target;
      if (!(dev <= error)) error = dev;
    }
    if (error <= tolerance || iterations >= max_iterations) break;
    for (int j = 0; j < E; j++) {
      if (v[j] > 0) vj[j] = target / v[j];
    }
  }
  *error_out = error;
  return iterations;
}
