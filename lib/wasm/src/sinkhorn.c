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

typedef unsigned long long u64;

// Doubles from their bits.
static double from_bits(u64 b) {
  union {
    u64 u;
    double d;
  } v = {b};
  return v.d;
}

// lib/numeric/fdlibm.ts fdlibmExp (fdlibm 5.3 e_exp.c), the same
// operations in the same order: the same bits. Its branch points, fdlibm's
// tests of the high word of |x|, as doubles (the high word, low word 0).
#define EXP_FILTER 0x1.62E42p+9 // 0x40862E42: filtered at or above
#define EXP_REDUCE 0x1.62E43p-2 // 0x3FD62E43: reduced at or above
#define EXP_ONE 0x1.0A2B2p+0    // 0x3FF0A2B2: k = +-1 below
#define EXP_TINY 0x1p-28        // 0x3E300000: 1 + x below
#define O_THRESHOLD 7.09782712893383973096e+02
#define U_THRESHOLD -7.45133219101941108420e+02
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define INV_LN2 1.44269504088896338700e+00
#define P1 1.66666666666666019037e-01
#define P2 -2.77777777770155933842e-03
#define P3 6.61375632143793436117e-05
#define P4 -1.65339022054652515390e-06
#define P5 4.13813679705723846039e-08

// 2^k, k in [-1022, 1023].
static double pow2(int k) { return from_bits((u64)(k + 1023) << 52); }

static double fdlibm_exp(double x) {
  double ax = __builtin_fabs(x);
  if (!(ax < EXP_FILTER)) {
    if (x != x) return x + x;
    if (x == __builtin_inf()) return x;
    if (x == -__builtin_inf()) return 0;
    if (x > O_THRESHOLD) return __builtin_inf();
    if (x < U_THRESHOLD) return 0;
  }
  int k = 0;
  double hi = 0, lo = 0;
  if (ax >= EXP_REDUCE) {
    if (ax < EXP_ONE) {
      if (x > 0) {
        hi = x - LN2_HI;
        lo = LN2_LO;
        k = 1;
      } else {
        hi = x + LN2_HI;
        lo = -LN2_LO;
        k = -1;
      }
    } else {
      k = (int)(INV_LN2 * x + (x < 0 ? -0.5 : 0.5));
      hi = x - k * LN2_HI;
      lo = k * LN2_LO;
    }
    x = hi - lo;
  } else if (ax < EXP_TINY) {
    return 1 + x;
  }
  double t = x * x;
  double c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1 - ((x * c) / (c - 2.0) - x);
  double y = 1 - ((lo - (x * c) / (2.0 - c)) - hi);
  if (k >= -1021) return k == 1024 ? y * 2 * pow2(1023) : y * pow2(k);
  return y * pow2(k + 1000) * pow2(-1000);
}

// exp_lanes' constants, in ExpConstants' order, splatted once per call of
// the kernel from a volatile table (clang would fold them back into
// v128.const, which V8 builds again at every use inside a loop; the
// kernel's time measured the same either way).
static volatile double EXP_TABLE[] = {
    0.5, -0.0, EXP_REDUCE, INV_LN2, LN2_HI, LN2_LO, P1, P2, P3, P4, P5,
    2.0, 1.0,  0x1.8p52,   EXP_TINY, -708.0, 709.0};
// ExpConstants' last: the exponent bias, an integer.
static volatile long long EXP_BIAS = 1023;
typedef struct {
  v128_t half, sign, reduce, invln2, ln2hi, ln2lo, p1, p2, p3, p4, p5, two,
      one, magic, tiny, low, high, bias;
} ExpConstants;

static ExpConstants exp_constants(void) {
  ExpConstants c;
  v128_t *at = &c.half;
  for (int i = 0; i < (int)(sizeof EXP_TABLE / sizeof EXP_TABLE[0]); i++) {
    at[i] = wasm_f64x2_splat(EXP_TABLE[i]);
  }
  c.bias = wasm_i64x2_splat(EXP_BIAS);
  return c;
}

// fdlibm_exp of both lanes, without a branch where both lie in
// (-708, 709) (there -1021 <= k <= 1023): the same operations as
// fdlibm_exp's, lane by lane. In the reduced range below EXP_ONE,
// (int)(INV_LN2 * x +- 0.5) is +-1 (INV_LN2 |x| lies in [0.5000000013,
// 1.4999997]), so the general reduction is e_exp.c's k = +-1 case,
// operation for operation; with k = 0, hi = x and lo = 0 it is the
// unreduced one. One quotient q = x c / (c - 2) serves both of e_exp.c's
// endings: x c / (2 - c) is exactly -q and lo - (-q) is lo + q, and with
// k = 0 (lo = +0, q not -0) 1 - ((lo + q) - hi) is 1 - (q - x). Below
// EXP_TINY, 1 + x. Other lanes take fdlibm_exp.
static inline __attribute__((always_inline)) v128_t
exp_lanes(v128_t x, const ExpConstants *K) {
  v128_t ax = wasm_f64x2_abs(x);
  v128_t half = wasm_v128_or(K->half, wasm_v128_and(x, K->sign));
  v128_t reduce = wasm_f64x2_ge(ax, K->reduce);
  v128_t kf = wasm_v128_and(
      reduce,
      wasm_f64x2_trunc(wasm_f64x2_add(wasm_f64x2_mul(K->invln2, x), half)));
  v128_t hi = wasm_f64x2_sub(x, wasm_f64x2_mul(kf, K->ln2hi));
  v128_t lo = wasm_f64x2_mul(kf, K->ln2lo);
  v128_t r = wasm_f64x2_sub(hi, lo);
  v128_t t = wasm_f64x2_mul(r, r);
  v128_t poly = wasm_f64x2_add(K->p4, wasm_f64x2_mul(t, K->p5));
  poly = wasm_f64x2_add(K->p3, wasm_f64x2_mul(t, poly));
  poly = wasm_f64x2_add(K->p2, wasm_f64x2_mul(t, poly));
  poly = wasm_f64x2_add(K->p1, wasm_f64x2_mul(t, poly));
  v128_t c = wasm_f64x2_sub(r, wasm_f64x2_mul(t, poly));
  v128_t q = wasm_f64x2_div(wasm_f64x2_mul(r, c), wasm_f64x2_sub(c, K->two));
  v128_t y = wasm_f64x2_sub(K->one,
                            wasm_f64x2_sub(wasm_f64x2_add(lo, q), hi));
  // y * 2^k: k (an integer in [-1021, 1023] in the lanes kept) as the
  // low bits of kf + 1.5 2^52, less those of 1.5 2^52, plus the exponent
  // bias, shifted into the exponent.
  v128_t k = wasm_i64x2_sub(wasm_f64x2_add(kf, K->magic), K->magic);
  v128_t scale = wasm_i64x2_shl(
      wasm_i64x2_add(k, K->bias), 52);
  v128_t e = wasm_f64x2_mul(y, scale);
  v128_t tiny = wasm_f64x2_lt(ax, K->tiny);
  e = wasm_v128_bitselect(wasm_f64x2_add(K->one, x), e, tiny);
  v128_t ok = wasm_v128_and(wasm_f64x2_gt(x, K->low),
                            wasm_f64x2_lt(x, K->high));
  if (!wasm_i64x2_all_true(ok)) {
    if (!wasm_i64x2_extract_lane(ok, 0)) {
      e = wasm_f64x2_replace_lane(
          e, 0, fdlibm_exp(wasm_f64x2_extract_lane(x, 0)));
    }
    if (!wasm_i64x2_extract_lane(ok, 1)) {
      e = wasm_f64x2_replace_lane(
          e, 1, fdlibm_exp(wasm_f64x2_extract_lane(x, 1)));
    }
  }
  return e;
}

// The largest of a row's E scores, as the TypeScript kernel finds it
// (no NaN, so any order: a zero's sign does not change exp(s - m), which
// is 1 for s = m), 0 where every score is -Infinity.
static double row_max(const float *row, int E) {
  float m = -__builtin_inff();
  int j = 0;
  if (E >= 4) {
    v128_t mv = wasm_f32x4_splat(-__builtin_inff());
    for (; j + 4 <= E; j += 4) {
      mv = wasm_f32x4_pmax(mv, wasm_v128_load(row + j));
    }
    float a = wasm_f32x4_extract_lane(mv, 0);
    float b = wasm_f32x4_extract_lane(mv, 1);
    float c = wasm_f32x4_extract_lane(mv, 2);
    float d = wasm_f32x4_extract_lane(mv, 3);
    a = b > a ? b : a;
    c = d > c ? d : c;
    m = c > a ? c : a;
  }
  for (; j < E; j++) m = row[j] > m ? row[j] : m;
  return m == -__builtin_inff() ? 0 : (double)m;
}

// The kernel of the scaling for `rows` rows of scores `s` (rows x E
// float32, no NaN or +Infinity), as lib/ops/sinkhorn.ts computes it:
// `exp((s[i][j] - m_i) / tau)` with m_i the row's largest score (0 where
// every score is -Infinity), fdlibm's exp. Written into the tiles from
// `k`, the first row at a tile's start; the last tile's rows past `rows`
// are zeros. Rows go two at a time, a row a lane: the pair's values of
// an expert sit side by side in the tile (one store), and four experts an
// iteration keep four exp chains in flight.
__attribute__((export_name("moelab_sinkhorn_kernel"))) void
moelab_sinkhorn_kernel(const float *s, int rows, int E, double tau,
                       double *k) {
  int divide = tau != 1.0;
  v128_t T = wasm_f64x2_splat(tau);
  ExpConstants K = exp_constants();
  int i = 0;
  for (; i + 2 <= rows; i += 2) {
    // i is even: rows i and i + 1 share a tile, side by side.
    const float *r0 = s + (long)i * E, *r1 = r0 + E;
    double *out = k + (long)(i / TILE) * TILE * E + i % TILE;
    double m0 = row_max(r0, E), m1 = row_max(r1, E);
    v128_t M = wasm_f64x2_make(m0, m1);
    int j = 0;
    for (; j + 4 <= E; j += 4) {
      v128_t a = wasm_v128_load(r0 + j), b = wasm_v128_load(r1 + j);
      v128_t lo = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5);
      v128_t hi = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
      v128_t x0 = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(lo), M);
      v128_t x1 = wasm_f64x2_sub(
          wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(lo, lo, 2, 3, 0, 1)),
          M);
      v128_t x2 = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(hi), M);
      v128_t x3 = wasm_f64x2_sub(
          wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(hi, hi, 2, 3, 0, 1)),
          M);
      if (divide) {
        x0 = wasm_f64x2_div(x0, T);
        x1 = wasm_f64x2_div(x1, T);
        x2 = wasm_f64x2_div(x2, T);
        x3 = wasm_f64x2_div(x3, T);
      }
      wasm_v128_store(out + j * TILE, exp_lanes(x0, &K));
      wasm_v128_store(out + (j + 1) * TILE, exp_lanes(x1, &K));
      wasm_v128_store(out + (j + 2) * TILE, exp_lanes(x2, &K));
      wasm_v128_store(out + (j + 3) * TILE, exp_lanes(x3, &K));
    }
    for (; j < E; j++) {
      v128_t x = wasm_f64x2_sub(wasm_f64x2_make(r0[j], r1[j]), M);
      if (divide) x = wasm_f64x2_div(x, T);
      wasm_v128_store(out + j * TILE, exp_lanes(x, &K));
    }
  }
  if (i < rows) {
    // The last row of an odd count, by the scalar port.
    const float *r0 = s + (long)i * E;
    double *out = k + (long)(i / TILE) * TILE * E + i % TILE;
    double m0 = row_max(r0, E);
    for (int j = 0; j < E; j++) {
      out[j * TILE] = fdlibm_exp(((double)r0[j] - m0) / tau);
    }
    i++;
  }
  // The last tile's rows past the batch.
  for (; i % TILE; i++) {
    double *out = k + (long)(i / TILE) * TILE * E + i % TILE;
    for (int j = 0; j < E; j++) out[j * TILE] = 0;
  }
}

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
