// The synthetic workload's scores (lib/workload/synthetic.ts) and the gates
// of lib/scores/gate.ts, bit for bit: the xoshiro128** stream of
// lib/scores/rng.ts, float32 logits `centre + noise * table[u32 >> shift]`,
// and the sigmoid and softmax gates: the same operations in the same order,
// float64 where the TypeScript computes in float64, rounded to float32
// where it stores into a Float32Array.
//
// Math.exp is correctly rounded in V8 (LLVM libc's exp, src/base/ieee754.cc),
// so the gates need the correctly rounded exp. exp_exact computes it
// (256-bit fixed point, rounded once; microseconds). The fast paths take an
// estimate within ESTIMATE_STEPS steps of it (exp_estimate, a polynomial
// in float64x2 lanes; the synthetic kernel's products of tables, 3
// ESTIMATE_STEPS) and use it only where it cannot change the answer:
// - sigmoid: where s = 1 / (1 + e) lies farther than SIGMOID_MARGIN
//   double-ulps (ten times the estimate's reach) from a float32 rounding
//   midpoint, f32(s) is that of the exact e;
// - softmax: each exp is bracketed (BRACKET_STEPS on each side) and carried
//   through the row from both ends (every step is monotone); where the
//   ends agree in float32, so does the exact exp.
// Elsewhere (a few values in a million, and arguments beyond the
// estimate's range) the exact exp decides.
#include <stdint.h>
#include <wasm_simd128.h>

static inline uint64_t bits_of(double x) {
  uint64_t u;
  __builtin_memcpy(&u, &x, sizeof u);
  return u;
}

static inline double double_of(uint64_t u) {
  double x;
  __builtin_memcpy(&x, &u, sizeof x);
  return x;
}

static const double INV_LN2 = 0x1.71547652b82fep0;
// ln2 in two parts, the first with 32 trailing zero bits (k LN2_HI is exact
// for |k| < 2^20).
static const double LN2_HI = 0x1.62e42feep-1;
static const double LN2_LO = 0x1.a39ef35793c76p-33;
// Above it exp overflows (fdlibm's threshold, the double below ln(2^1024)).
static const double O_THRESHOLD = 0x1.62e42fefa39efp9;

// ---------------------------------------------------------------------------
// Correctly rounded exp: 256-bit two's complement fixed point, 224 fraction
// bits, in eight 32-bit limbs (least significant first). x = k ln2 + r with
// |r| <= ln2 / 2 + 2^-40, exp(r) by its Taylor series to below 2^-220, then
// 2^k exp(r) rounded to nearest once, subnormal results included. Slow
// (microseconds); the gates call it a few times in 10^8 values.
enum { LIMBS = 8, FRACTION_BITS = 224 };
typedef struct {
  uint32_t w[LIMBS];
} fixed;

// floor(ln2 * 2^224).
static const fixed LN2_FIXED = {{0x8A0D175Bu, 0x7298B62Du, 0x40F34326u, 0x03F2F6AFu,
                                 0xC9E3B398u, 0xD1CF79ABu, 0xB17217F7u, 0x00000000u}};

static void fixed_add(fixed *a, const fixed *b) {
  uint64_t carry = 0;
  for (int i = 0; i < LIMBS; i++) {
    carry += (uint64_t)a->w[i] + b->w[i];
    a->w[i] = (uint32_t)carry;
    carry >>= 32;
  }
}

static void fixed_sub(fixed *a, const fixed *b) {
  int64_t borrow = 0;
  for (int i = 0; i < LIMBS; i++) {
    int64_t d = (int64_t)a->w[i] - b->w[i] + borrow;
    a->w[i] = (uint32_t)d;
    borrow = d < 0 ? -1 : 0;
  }
}

static void fixed_negate(fixed *a) {
  uint64_t carry = 1;
  for (int i = 0; i < LIMBS; i++) {
    carry += (uint32_t)~a->w[i];
    a->w[i] = (uint32_t)carry;
    carry >>= 32;
  }
}

static int fixed_is_zero(const fixed *a) {
  uint32_t any = 0;
  for (int i = 0; i < LIMBS; i++) any |= a->w[i];
  return any == 0;
}

// a * b for non-negative a, b below 2^31, truncated to 224 fraction bits.
static void fixed_mul(fixed *out, const fixed *a, const fixed *b) {
  uint32_t prod[2 * LIMBS] = {0};
  for (int i = 0; i < LIMBS; i++) {
    uint64_t carry = 0;
    for (int j = 0; j < LIMBS; j++) {
      carry += (uint64_t)a->w[i] * b->w[j] + prod[i + j];
      prod[i + j] = (uint32_t)carry;
      carry >>= 32;
    }
    prod[i + LIMBS] = (uint32_t)carry;
  }
  for (int i = 0; i < LIMBS; i++) out->w[i] = prod[i + FRACTION_BITS / 32];
}

// a / n for a non-negative a, truncated.
static void fixed_div_small(fixed *a, uint32_t n) {
  uint64_t rem = 0;
  for (int i = LIMBS - 1; i >= 0; i--) {
    uint64_t cur = (rem << 32) | a->w[i];
    a->w[i] = (uint32_t)(cur / n);
    rem = cur % n;
  }
}

static int fixed_bit(const fixed *a, int bit) { return (a->w[bit >> 5] >> (bit & 31)) & 1; }

// x exactly, for 2^-60 <= |x| < 2^30.
static void fixed_from_double(fixed *out, double x) {
  const uint64_t u = bits_of(x);
  const int biased = (int)((u >> 52) & 0x7FF);
  const uint64_t m = (u & 0xFFFFFFFFFFFFFull) | (1ull << 52);
  const int shift = biased - 1075 + FRACTION_BITS; // x = m 2^(biased - 1075)
  for (int i = 0; i < LIMBS; i++) out->w[i] = 0;
  for (int b = 0; b < 53; b++) {
    if ((m >> b) & 1) {
      const int at = b + shift;
      out->w[at >> 5] |= 1u << (at & 31);
    }
  }
  if (u >> 63) fixed_negate(out);
}

// 2^e as a double, for -1074 <= e <= 1023.
static double pow2(int e) {
  if (e >= -1022) return double_of((uint64_t)(e + 1023) << 52);
  return double_of(1ull << (e + 1074));
}

static double exp_exact(double x) {
  if (x != x) return x + x;
  if (x > O_THRESHOLD) return __builtin_inf();
  if (x < -746.0) return 0.0;
  if (__builtin_fabs(x) < 0x1p-54) return 1.0;
  const double kd = __builtin_trunc(x * INV_LN2 + (x < 0 ? -0.5 : 0.5));
  const int k = (int)kd;
  fixed r, kln2 = LN2_FIXED;
  fixed_from_double(&r, x);
  // r = x - k ln2 (k ln2 by shifts and adds of ln2: |k| < 1100).
  const uint32_t ak = (uint32_t)(k < 0 ? -k : k);
  fixed kl = {{0}};
  for (int b = 0; b < 11; b++) {
    if ((ak >> b) & 1) fixed_add(&kl, &kln2);
    fixed_add(&kln2, &kln2);
  }
  if (k < 0) fixed_add(&r, &kl);
  else fixed_sub(&r, &kl);
  const int negative = (int)(r.w[LIMBS - 1] >> 31);
  if (negative) fixed_negate(&r);
  fixed sum = {{0}}, term = {{0}};
  sum.w[FRACTION_BITS / 32] = 1;
  term.w[FRACTION_BITS / 32] = 1;
  for (uint32_t n = 1; n < 80; n++) {
    fixed next;
    fixed_mul(&next, &term, &r);
    fixed_div_small(&next, n);
    term = next;
    if (fixed_is_zero(&term)) break;
    if (negative && (n & 1)) fixed_sub(&sum, &term);
    else fixed_add(&sum, &term);
  }
  // sum = exp(r) in [0.70, 1.42]: its top bit, then the result's exponent.
  int top = LIMBS * 32 - 1;
  while (!fixed_bit(&sum, top)) top--;
  const int e2 = top - FRACTION_BITS + k; // 2^e2 <= result < 2^(e2 + 1)
  int prec = e2 >= -1022 ? 53 : e2 + 1075;
  if (prec <= 0) return prec == 0 ? pow2(-1074) : 0.0;
  const int drop = top - prec + 1;
  uint64_t mant = 0;
  for (int b = top; b >= drop; b--) mant = (mant << 1) | (uint64_t)fixed_bit(&sum, b);
  const int round = fixed_bit(&sum, drop - 1);
  int sticky = 0;
  for (int b = drop - 2; b >= 0 && !sticky; b--) sticky = fixed_bit(&sum, b);
  if (round && (sticky || (mant & 1))) mant++;
  const int e = e2 - prec + 1; // the weight of mant's last bit
  if (e > 971) return __builtin_inf();
  return (double)mant * pow2(e);
}

// Correctly rounded exp of `n` float64 values (Math.exp on V8), for the
// tests.
__attribute__((export_name("moelab_exp_f64"))) void
moelab_exp_f64(const double *x, double *out, int n) {
  for (int i = 0; i < n; i++) out[i] = exp_exact(x[i]);
}

// exp on [-ln2 / 4, ln2 / 4] (widened by 10^-4): the degree-8 Chebyshev
// fit, coefficients of r^0..r^8 (absolute error 2^-49.2).
#define EXP_FIT_0 0x1.0000000000000p+0
#define EXP_FIT_1 0x1.ffffffffffd39p-1
#define EXP_FIT_2 0x1.fffffffffff72p-2
#define EXP_FIT_3 0x1.55555556895a9p-3
#define EXP_FIT_4 0x1.55555555d0878p-5
#define EXP_FIT_5 0x1.1111080dae8cfp-7
#define EXP_FIT_6 0x1.6c16ba3658c02p-10
#define EXP_FIT_7 0x1.a07e06a3575ebp-13
#define EXP_FIT_8 0x1.a06a043cbe16cp-16

// Double-ulps around a midpoint between float32 values within which the
// estimated sigmoid defers to the exact one. The estimates e of exp(-x)
// are within 48 steps of the correctly rounded one (exp_estimate: 16, the
// synthetic kernel's tables: 3 16), so s = 1 / (1 + e) is within
// 2 (48 + 2) ulps of the exact s: a margin of 10 times that.
#define SIGMOID_MARGIN 1024

// The constants of the float64x2 paths, loaded once per call from memory
// (V8 builds a v128.const anew at each use: kept in locals they cost
// nothing).
typedef struct {
  v128_t limit, two_inv_ln2, shifter, half_ln2_hi, half_ln2_lo;
  v128_t fit[9];
  v128_t sqrt2, one, half, exp_bias, i64_one;
  v128_t mantissa29, midpoint29, margin, min_normal_f32, two_149, sub_margin;
} lanes;

static const double LANE_VALUES[] = {
    700.0, 2.0 * INV_LN2, 0x1.8p52, 0.5 * LN2_HI, 0.5 * LN2_LO,
    EXP_FIT_0, EXP_FIT_1, EXP_FIT_2, EXP_FIT_3, EXP_FIT_4, EXP_FIT_5, EXP_FIT_6, EXP_FIT_7, EXP_FIT_8,
    0x1.6a09e667f3bcdp0, 1.0, 0x1p-126, 0x1p149, SIGMOID_MARGIN * 0x1p-30};

// Hides where `p` points from the optimizer, so that the loads through it
// stay loads (made once, before the loops).
static inline const double *opaque(const double *p) {
  __asm__("" : "+r"(p));
  return p;
}

static inline lanes load_lanes(void) {
  const double *v = opaque(LANE_VALUES);
  lanes k;
  k.limit = wasm_f64x2_splat(v[0]);
  k.two_inv_ln2 = wasm_f64x2_splat(v[1]);
  k.shifter = wasm_f64x2_splat(v[2]);
  k.half_ln2_hi = wasm_f64x2_splat(v[3]);
  k.half_ln2_lo = wasm_f64x2_splat(v[4]);
  for (int n = 0; n < 9; n++) k.fit[n] = wasm_f64x2_splat(v[5 + n]);
  k.sqrt2 = wasm_f64x2_splat(v[14]);
  k.one = wasm_f64x2_splat(v[15]);
  k.half = wasm_f64x2_splat(0.5 * v[15]);
  k.min_normal_f32 = wasm_f64x2_splat(v[16]);
  k.two_149 = wasm_f64x2_splat(v[17]);
  k.sub_margin = wasm_f64x2_splat(v[18]);
  // Integer lanes from the same loads: 1023 = (int)(1.0 * 1023) etc.
  const int64_t one = (int64_t)v[15];
  k.exp_bias = wasm_i64x2_splat(1023 * one);
  k.i64_one = wasm_i64x2_splat(one);
  k.mantissa29 = wasm_i64x2_splat(((int64_t)1 << 29) * one - 1);
  k.midpoint29 = wasm_i64x2_splat(((int64_t)1 << 28) * one);
  k.margin = wasm_i64x2_splat(SIGMOID_MARGIN * one);
  return k;
}

// Steps of the bit pattern between exp_estimate and the exact exp, at most
// (15 seen over millions of inputs).
#define ESTIMATE_STEPS 16

// An estimate of exp in two float64 lanes with |x| < 700, within
// ESTIMATE_STEPS steps of the bit pattern of the correctly rounded exp
// (lib/wasm/scores_test.ts measures it): k = round(2x / ln2), r = x - k ln2
// / 2 in two parts (|r| <= ln2 / 4), exp(r) by the fit (Estrin's scheme),
// times sqrt(2) for odd k and 2^(k >> 1).
static inline v128_t exp_estimate(v128_t x, const lanes *k) {
  const v128_t ks = wasm_f64x2_add(wasm_f64x2_mul(x, k->two_inv_ln2), k->shifter);
  const v128_t kf = wasm_f64x2_sub(ks, k->shifter);
  const v128_t r = wasm_f64x2_sub(wasm_f64x2_sub(x, wasm_f64x2_mul(kf, k->half_ln2_hi)),
                                  wasm_f64x2_mul(kf, k->half_ln2_lo));
  const v128_t r2 = wasm_f64x2_mul(r, r), r4 = wasm_f64x2_mul(r2, r2);
  const v128_t q0 = wasm_f64x2_add(k->fit[0], wasm_f64x2_mul(k->fit[1], r));
  const v128_t q1 = wasm_f64x2_add(k->fit[2], wasm_f64x2_mul(k->fit[3], r));
  const v128_t q2 = wasm_f64x2_add(k->fit[4], wasm_f64x2_mul(k->fit[5], r));
  const v128_t q3 = wasm_f64x2_add(k->fit[6], wasm_f64x2_mul(k->fit[7], r));
  const v128_t s0 = wasm_f64x2_add(q0, wasm_f64x2_mul(q1, r2));
  const v128_t s1 = wasm_f64x2_add(q2, wasm_f64x2_mul(q3, r2));
  const v128_t s2 = wasm_f64x2_add(s1, wasm_f64x2_mul(k->fit[8], r4));
  const v128_t p = wasm_f64x2_add(s0, wasm_f64x2_mul(s2, r4));
  // k sits in the low bits of ks.
  const v128_t ki = wasm_i64x2_sub(ks, k->shifter);
  const v128_t odd = wasm_i64x2_eq(wasm_v128_and(ki, k->i64_one), k->i64_one);
  const v128_t root = wasm_v128_bitselect(k->sqrt2, k->one, odd);
  const v128_t twopk = wasm_i64x2_shl(wasm_i64x2_add(wasm_i64x2_shr(ki, 1), k->exp_bias), 52);
  return wasm_f64x2_mul(wasm_f64x2_mul(p, root), twopk);
}

// Lanes of `x` inside the estimate's range (|x| < 700, not NaN).
static inline v128_t in_range(v128_t x, const lanes *k) {
  return wasm_f64x2_lt(wasm_f64x2_abs(x), k->limit);
}

// The estimate of `n` float64 values (exp_exact outside its range), for
// the tests of its error.
__attribute__((export_name("moelab_exp_estimate_f64"))) void
moelab_exp_estimate_f64(const double *x, double *out, int n) {
  const lanes k = load_lanes();
  for (int i = 0; i < n; i++) {
    const v128_t v = wasm_f64x2_splat(x[i]);
    out[i] = wasm_i64x2_all_true(in_range(v, &k)) ? wasm_f64x2_extract_lane(exp_estimate(v, &k), 0)
                                                  : exp_exact(x[i]);
  }
}

// Two float32 lanes (the low two of `v`) as float64.
static inline v128_t low_f64(v128_t v) { return wasm_f64x2_promote_low_f32x4(v); }
static inline v128_t high_f64(v128_t v) {
  return wasm_f64x2_promote_low_f32x4(wasm_i64x2_shuffle(v, v, 1, 0));
}

// Two float64 pairs rounded to four float32 lanes.
static inline v128_t to_f32x4(v128_t a, v128_t b) {
  return wasm_i64x2_shuffle(wasm_f32x4_demote_f64x2_zero(a), wasm_f32x4_demote_f64x2_zero(b), 0, 2);
}

static inline float sigmoid_exact(double x) { return (float)(1.0 / (1.0 + exp_exact(-x))); }

// s = 1 / (1 + e) of two float64 lanes, and in `clear` the lanes where
// f32(s) is sure for any e within the estimate's error of the exact one:
// - s >= 2^-126 (a normal float32): s lies outside the margin of a float32
//   rounding midpoint (the low 29 bits of its mantissa against 2^28);
// - below, float32 steps are 2^-149: the fraction of s 2^149 (below 2^23,
//   so its ulp is at most 2^-30) lies farther than SIGMOID_MARGIN 2^-30
//   from 1/2.
// NaN is never clear. Without `subnormal` (a constant: the synthetic
// kernel's first pass) the second case is never clear.
static inline v128_t sigmoid_of_exp(v128_t e, const lanes *k, v128_t *clear, int subnormal) {
  const v128_t s = wasm_f64x2_div(k->one, wasm_f64x2_add(k->one, e));
  const v128_t off = wasm_i64x2_abs(wasm_i64x2_sub(wasm_v128_and(s, k->mantissa29), k->midpoint29));
  const v128_t normal = wasm_f64x2_ge(s, k->min_normal_f32);
  if (!subnormal) {
    *clear = wasm_v128_and(wasm_i64x2_gt(off, k->margin), normal);
    return s;
  }
  const v128_t f = wasm_f64x2_mul(s, k->two_149);
  const v128_t mid = wasm_f64x2_abs(wasm_f64x2_sub(wasm_f64x2_sub(f, wasm_f64x2_trunc(f)), k->half));
  const v128_t sub_clear = wasm_v128_andnot(wasm_f64x2_gt(mid, k->sub_margin), normal);
  *clear = wasm_v128_or(wasm_v128_and(wasm_i64x2_gt(off, k->margin), normal), sub_clear);
  return s;
}

// sigmoid_of_exp of the synthetic kernel's first pass where every logit
// is below TABLE_LOGIT_LIMIT in magnitude: s = 1 / (1 + e) is then normal
// (at least 1 / (1 + e^64 (1 + 2^-40))), and `clear` is valid in the low
// int32 lane of each lane only: the low 29 bits of s's mantissa, within
// an int32, against the midpoint.
static inline v128_t sigmoid_of_exp_in_tables(v128_t e, const lanes *k, v128_t *clear) {
  const v128_t s = wasm_f64x2_div(k->one, wasm_f64x2_add(k->one, e));
  const v128_t low = wasm_v128_and(s, k->mantissa29);
  *clear = wasm_i32x4_gt(wasm_i32x4_abs(wasm_i32x4_sub(low, k->midpoint29)), k->margin);
  return s;
}

static inline v128_t sigmoid_estimate(v128_t x, const lanes *k, v128_t *clear) {
  return sigmoid_of_exp(exp_estimate(wasm_f64x2_neg(x), k), k, clear, 1);
}

// lib/scores/gate.ts sigmoid of four float32 logits, f32(1 / (1 + exp(-x))),
// from the estimate; `*unsure` gets the lanes where that may differ from
// the exact sigmoid (outside the estimate's range, or near a midpoint):
// sigmoid_row redoes those. No call on the way: the loop stays tight.
static inline v128_t sigmoid_fast4(v128_t v, const lanes *k, v128_t *unsure) {
  const v128_t x0 = low_f64(v), x1 = high_f64(v);
  v128_t c0, c1;
  const v128_t s0 = sigmoid_estimate(x0, k, &c0), s1 = sigmoid_estimate(x1, k, &c1);
  const v128_t sure = wasm_v128_and(wasm_v128_and(c0, in_range(x0, k)),
                                    wasm_v128_and(c1, in_range(x1, k)));
  *unsure = wasm_v128_not(sure);
  return to_f32x4(s0, s1);
}

// Values per pass of sigmoid_row: its record of unsure groups lives on the
// stack.
enum { SIGMOID_CHUNK = 256 };

// lib/scores/gate.ts sigmoid of `n` float32 logits (`in` may be `out`): a
// pass of sigmoid_fast4 that records the groups where it is unsure (their
// logits and place), then the exact sigmoid of those.
static void sigmoid_row(const float *in, float *out, int n, const lanes *k) {
  for (int base = 0; base < n; base += SIGMOID_CHUNK) {
    const int m = n - base < SIGMOID_CHUNK ? n - base : SIGMOID_CHUNK;
    float redo_x[SIGMOID_CHUNK];
    int redo_at[SIGMOID_CHUNK / 4];
    int redo = 0;
    int j = 0;
    for (; j + 4 <= m; j += 4) {
      const v128_t v = wasm_v128_load(in + base + j);
      v128_t unsure;
      wasm_v128_store(out + base + j, sigmoid_fast4(v, k, &unsure));
      if (wasm_v128_any_true(unsure)) {
        wasm_v128_store(redo_x + 4 * redo, v);
        redo_at[redo++] = base + j;
      }
    }
    if (j < m) {
      // The last one to three, padded to a group.
      float x[4] = {0.0f, 0.0f, 0.0f, 0.0f}, y[4];
      for (int q = 0; q < m - j; q++) x[q] = in[base + j + q];
      v128_t unsure;
      wasm_v128_store(y, sigmoid_fast4(wasm_v128_load(x), k, &unsure));
      if (wasm_v128_any_true(unsure)) {
        for (int q = 0; q < m - j; q++) y[q] = sigmoid_exact(x[q]);
      }
      for (int q = 0; q < m - j; q++) out[base + j + q] = y[q];
    }
    for (int r = 0; r < redo; r++) {
      for (int q = 0; q < 4; q++) out[redo_at[r] + q] = sigmoid_exact(redo_x[4 * r + q]);
    }
  }
}

// lib/scores/gate.ts sigmoid: out[i] = f32(1 / (1 + exp(-x[i]))).
// `in` may be `out`.
__attribute__((export_name("moelab_sigmoid_f32"))) void
moelab_sigmoid_f32(const float *in, float *out, int n) {
  const lanes k = load_lanes();
  sigmoid_row(in, out, n, &k);
}

// lib/scores/gate.ts softmax of one row of `cols` logits, exactly: the
// maximum, the float64 exps stored as float32 and summed in float64 in
// column order, then each stored value times 1 / sum. A row without a
// value above -Infinity gives zeros. `in` may be `out`.
static void softmax_row_exact(const float *in, float *out, int cols, double max) {
  double sum = 0.0;
  for (int j = 0; j < cols; j++) {
    const double e = exp_exact((double)in[j] - max);
    out[j] = (float)e;
    sum += e;
  }
  const double inv = 1.0 / sum;
  for (int j = 0; j < cols; j++) out[j] = (float)((double)out[j] * inv);
}

// Steps of the bit pattern on each side of an estimated exp that hold the
// correctly rounded one, with room to spare.
#define BRACKET_STEPS (4 * ESTIMATE_STEPS)

// The same from the estimated exps and their brackets: the low and high
// ends of each exp, their sums in column order, and each output from both
// ends (every step is monotone); where an output's ends differ or an exp
// is out of the estimate's range, the row goes through softmax_row_exact.
// `scratch` holds 2 * cols float64 (the bracket of each exp).
static void softmax_row(const float *in, float *out, int cols, double *scratch, const lanes *k) {
  float max = -__builtin_inff();
  for (int j = 0; j < cols; j++) {
    if (in[j] > max) max = in[j];
  }
  if (max == -__builtin_inff()) {
    for (int j = 0; j < cols; j++) out[j] = 0.0f;
    return;
  }
  const double m = (double)max;
  const v128_t mv = wasm_f64x2_splat(m);
  const v128_t steps = wasm_i64x2_splat(BRACKET_STEPS);
  double *elo = scratch, *ehi = scratch + cols;
  double sum_lo = 0.0, sum_hi = 0.0;
  int ok = 1;
  for (int j = 0; ok && j < cols; j += 2) {
    // The last of an odd row twice.
    const int j1 = j + 1 < cols ? j + 1 : j;
    const v128_t x = wasm_f64x2_sub(wasm_f64x2_make(in[j], in[j1]), mv);
    ok = wasm_i64x2_all_true(in_range(x, k));
    const v128_t e = exp_estimate(x, k);
    const v128_t lo = wasm_i64x2_sub(e, steps), hi = wasm_i64x2_add(e, steps);
    elo[j] = wasm_f64x2_extract_lane(lo, 0);
    ehi[j] = wasm_f64x2_extract_lane(hi, 0);
    sum_lo += elo[j];
    sum_hi += ehi[j];
    if (j1 != j) {
      elo[j1] = wasm_f64x2_extract_lane(lo, 1);
      ehi[j1] = wasm_f64x2_extract_lane(hi, 1);
      sum_lo += elo[j1];
      sum_hi += ehi[j1];
    }
  }
  // Low output ends use the low exps and the high sum, high ends the
  // reverse; a first pass checks that they agree, the second writes (`in`
  // may be `out`).
  const double inv_lo = 1.0 / sum_hi, inv_hi = 1.0 / sum_lo;
  for (int j = 0; ok && j < cols; j++) {
    ok = (float)((double)(float)elo[j] * inv_lo) == (float)((double)(float)ehi[j] * inv_hi);
  }
  if (ok) {
    for (int j = 0; j < cols; j++) out[j] = (float)((double)(float)elo[j] * inv_lo);
    return;
  }
  softmax_row_exact(in, out, cols, m);
}

// lib/scores/gate.ts softmax over `rows` rows of `cols` logits; `scratch`
// holds 2 * cols float64.
__attribute__((export_name("moelab_softmax_f32"))) void
moelab_softmax_f32(const float *in, float *out, int rows, int cols, double *scratch) {
  const lanes k = load_lanes();
  for (int i = 0; i < rows; i++) {
    softmax_row(in + (long)i * cols, out + (long)i * cols, cols, scratch, &k);
  }
}

// lib/scores/rng.ts Rng(seed) for a seed in [0, 2^32): SplitMix32 into the
// four words of xoshiro128**.
__attribute__((export_name("moelab_rng_seed"))) void
moelab_rng_seed(uint32_t seed, uint32_t *state) {
  uint32_t x = seed;
  for (int w = 0; w < 4; w++) {
    x += 0x9e3779b9u;
    uint32_t z = x;
    z = (z ^ (z >> 16)) * 0x85ebca6bu;
    z = (z ^ (z >> 13)) * 0xc2b2ae35u;
    state[w] = z ^ (z >> 16);
  }
  if ((state[0] | state[1] | state[2] | state[3]) == 0) state[0] = 1;
}

static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// Gate codes of moelab_synthetic_scores.
enum { GATE_NONE = 0, GATE_SIGMOID = 1, GATE_SOFTMAX = 2 };

// Where an argument of the synthetic sigmoid's tables is this large, its
// entry is NaN (its logits then take the exact path): the tables hold
// normal numbers with the estimate's accuracy only.
#define TABLE_LIMIT 600.0

// The tables of the synthetic kernel: exp_centre[i] = exp(-centre[i])
// (n_centre entries, none for gates other than the sigmoid) and, for each
// entry of the normal table, draws[2i] = P = noise * table[i] in float64
// (the logits' product) and draws[2i + 1] = exp(-P). The exps are
// estimates within ESTIMATE_STEPS, NaN where the argument reaches
// TABLE_LIMIT.
__attribute__((export_name("moelab_synthetic_tables"))) void
moelab_synthetic_tables(const float *centre, int n_centre, const float *table, int n_table,
                        double noise, double *exp_centre, double *draws) {
  const lanes k = load_lanes();
  for (int i = 0; i < n_centre + n_table; i++) {
    const double p = i < n_centre ? (double)centre[i] : noise * (double)table[i - n_centre];
    const double e = __builtin_fabs(p) < TABLE_LIMIT
                         ? wasm_f64x2_extract_lane(exp_estimate(wasm_f64x2_splat(-p), &k), 0)
                         : __builtin_nan("");
    if (i < n_centre) {
      exp_centre[i] = e;
    } else {
      draws[2 * (i - n_centre)] = p;
      draws[2 * (i - n_centre) + 1] = e;
    }
  }
}

// |logit| below which the synthetic sigmoid uses its tables: the float32
// rounding d of a logit is then below 2^-18, and exp(-d) = 1 - d + d^2/2
// within 2^-56.
#define TABLE_LOGIT_LIMIT 64.0f

// The synthetic sigmoid's estimate of exp(-L) for two logits L (float64
// lanes) that are the float32 roundings of S = c + P (c the centres, P =
// noise * draw, S rounded in float64): exp(-c) exp(-P) exp(-d) with
// d = L - (c + P) exactly (TwoSum gives the rounding of S; with `exact`,
// every c + P is exact (moelab_synthetic_sums_exact) and TwoSum's error is
// +0, so d = L - S, the same bits). Within 3 ESTIMATE_STEPS steps of the
// exact exp(-L) where the tables are (lib/wasm/scores_test.ts measures it;
// 31 seen): the tables' errors, three roundings and the dropped d^3 / 6 <
// 2^-56.
static inline __attribute__((always_inline)) v128_t
synthetic_exp(v128_t L, v128_t S, v128_t c, v128_t P, v128_t ec, v128_t ep, const lanes *k,
              const int exact) {
  v128_t d = wasm_f64x2_sub(L, S);
  if (!exact) {
    const v128_t bb = wasm_f64x2_sub(S, c);
    const v128_t err =
        wasm_f64x2_add(wasm_f64x2_sub(c, wasm_f64x2_sub(S, bb)), wasm_f64x2_sub(P, bb));
    d = wasm_f64x2_sub(d, err);
  }
  const v128_t q = wasm_f64x2_add(wasm_f64x2_sub(k->one, d),
                                  wasm_f64x2_mul(wasm_f64x2_mul(d, d), k->half));
  return wasm_f64x2_mul(wasm_f64x2_mul(ec, ep), q);
}

// The exponent of the lowest set bit of a finite, nonzero, normal `x`
// (x = m 2^e with m odd), or -100000 where it is not that.
static int lowest_bit_exponent(double x) {
  const uint64_t u = bits_of(x);
  const int biased = (int)((u >> 52) & 0x7FF);
  const uint64_t m = u & 0xFFFFFFFFFFFFFull;
  if (biased == 0 || biased == 0x7FF) return -100000;
  return biased - 1075 + __builtin_ctzll(m | (1ull << 52));
}

// What moelab_synthetic_facts finds out about a layer's tables.
enum {
  // Every sum c + P of a centre and a product is exact in float64.
  SUMS_EXACT = 1,
  // Every logit f32(c + P) is below TABLE_LOGIT_LIMIT in magnitude.
  LOGITS_IN_TABLES = 2,
};

// The facts (SUMS_EXACT, LOGITS_IN_TABLES) that hold for every sum c + P
// of a centre `centre[i]` and a product `draws[2 i]`
// (moelab_synthetic_tables), none where a term is not finite. Exact: all
// terms normal (or zero), and the sums' magnitudes below 2^top with top
// less the lowest set bit of any term at most 53, so that each sum is an
// integer multiple of that bit below 2^53 of it. In the tables: the
// largest |c| + |P| at most 63 (its float64 sum within a rounding of the
// true one, and f32 of a sum below 63 + 2^-40 is below 64).
__attribute__((export_name("moelab_synthetic_facts"))) int
moelab_synthetic_facts(const float *centre, int n_centre, const double *draws, int n_table) {
  double max_c = 0, max_p = 0;
  int low = 100000, normal = 1;
  for (int i = 0; i < n_centre + n_table; i++) {
    const double x = i < n_centre ? (double)centre[i] : draws[2 * (i - n_centre)];
    const double a = __builtin_fabs(x);
    if (!(a < __builtin_inf())) return 0;
    if (x == 0) continue;
    const int e = lowest_bit_exponent(x);
    if (e == -100000) normal = 0;
    else if (e < low) low = e;
    if (i < n_centre) {
      if (a > max_c) max_c = a;
    } else if (a > max_p) {
      max_p = a;
    }
  }
  const double bound = max_c + max_p;
  int facts = bound <= 63.0 ? LOGITS_IN_TABLES : 0;
  if (bound == 0) return facts | SUMS_EXACT;
  if (!normal || !(bound < 0x1p1000)) return facts;
  // |c + P| <= max_c + max_p, below the power of two two steps above the
  // float64 sum's leading bit.
  const int top = (int)((bits_of(bound) >> 52) & 0x7FF) - 1023 + 2;
  return top - low <= 53 ? facts | SUMS_EXACT : facts;
}

// Groups of four logits synthetic_rows draws and gates at once (the
// sigmoid): two groups' independent float64 chains, each waiting on its
// division, side by side in one iteration took 0.79-0.80 of the time of
// one group an iteration at 16384 x 256 (paired over 150 batches, the
// same bits); three took 0.99 and four 1.08 (their registers spill).
enum { GROUPS_AT_ONCE = 2 };

// The synthetic sigmoid of one group of four logits f32(c + P) from its
// draws w[0..3] ([P, exp(-P)] each), centres `ce` and exp(-centre) `ec`:
// the sigmoids, the logits into *L and the lanes clear of a midpoint into
// *sure; with `exps` (the tests), the estimated exps there.
static inline __attribute__((always_inline)) v128_t
synthetic_group(const v128_t *w, const float *ce, const double *ec, const lanes *k,
                v128_t limit, double *exps, v128_t *L, v128_t *sure, const int exact,
                const int in_tables) {
  const v128_t p0 = wasm_i64x2_shuffle(w[0], w[1], 0, 2), p1 = wasm_i64x2_shuffle(w[2], w[3], 0, 2);
  const v128_t cv = wasm_v128_load(ce);
  const v128_t c0 = low_f64(cv), c1 = high_f64(cv);
  const v128_t s0 = wasm_f64x2_add(c0, p0), s1 = wasm_f64x2_add(c1, p1);
  *L = to_f32x4(s0, s1);
  const v128_t ep0 = wasm_i64x2_shuffle(w[0], w[1], 1, 3);
  const v128_t ep1 = wasm_i64x2_shuffle(w[2], w[3], 1, 3);
  const v128_t e0 = synthetic_exp(low_f64(*L), s0, c0, p0, wasm_v128_load(ec), ep0, k, exact);
  const v128_t e1 = synthetic_exp(high_f64(*L), s1, c1, p1, wasm_v128_load(ec + 2), ep1, k, exact);
  if (exps) {
    wasm_v128_store(exps, e0);
    wasm_v128_store(exps + 2, e1);
  }
  v128_t clear0, clear1, g0, g1;
  if (in_tables) {
    g0 = sigmoid_of_exp_in_tables(e0, k, &clear0);
    g1 = sigmoid_of_exp_in_tables(e1, k, &clear1);
  } else {
    g0 = sigmoid_of_exp(e0, k, &clear0, 0);
    g1 = sigmoid_of_exp(e1, k, &clear1, 0);
  }
  // Lanes in the tables' range whose sigmoid is clear of a midpoint.
  *sure = wasm_i32x4_shuffle(clear0, clear1, 0, 2, 4, 6);
  if (!in_tables) *sure = wasm_v128_and(wasm_f32x4_lt(wasm_f32x4_abs(*L), limit), *sure);
  return to_f32x4(g0, g1);
}

// One xoshiro128** step (lib/scores/rng.ts nextU32) on the state words.
#define XOSHIRO_NEXT(r)             \
  do {                              \
    (r) = rotl(b * 5u, 7) * 9u;     \
    const uint32_t t_ = b << 9;     \
    c ^= a;                         \
    d ^= b;                         \
    b ^= c;                         \
    a ^= d;                         \
    c ^= t_;                        \
    d = rotl(d, 11);                \
  } while (0)

// The groups of four logits the tables left unsure, through sigmoid_row
// (the estimate of exp, then the exact exp where that is unsure too): the
// logits at redo_x, their places in `out` at redo_at.
static void redo_groups(const float *redo_x, const int *redo_at, int redo, float *out,
                        const lanes *k) {
  for (int r = 0; r < redo; r++) {
    float y[4];
    sigmoid_row(redo_x + 4 * r, y, 4, k);
    for (int q = 0; q < 4; q++) out[redo_at[r] + q] = y[q];
  }
}

// Records a group of logits L (at `at` in `out`) whose sure lanes are not
// all set; redoes the record when it is full.
static inline __attribute__((always_inline)) void
keep_unsure(v128_t sure, v128_t L, int at, float *redo_x, int *redo_at, int *redo, float *out,
            const lanes *k) {
  if (!wasm_i32x4_all_true(sure)) {
    wasm_v128_store(redo_x + 4 * *redo, L);
    redo_at[(*redo)++] = at;
  }
  if (*redo == SIGMOID_CHUNK / 4) {
    redo_groups(redo_x, redo_at, *redo, out, k);
    *redo = 0;
  }
}

// `rows` rows of the synthetic workload's scores: row i's logits are
// f32(centre[cluster[i] * cols + j] + noise * table[nextU32() >> shift]),
// drawn in row-major order from the xoshiro128** state at `state` (updated
// in place), the products from `draws` (moelab_synthetic_tables), then the
// gate (GATE_NONE leaves the logits). The sigmoid takes its exp from
// `exp_centre` and `draws`
// where it can, redoing unsure groups through sigmoid_row; with
// `exps` not null (the tests), it also writes those exps there (rows x
// cols float64, the groups of four only). `scratch` holds 2 * cols float64
// (softmax). `exact` and `in_tables` (constants): SUMS_EXACT and
// LOGITS_IN_TABLES hold (moelab_synthetic_facts).
static inline __attribute__((always_inline)) void
synthetic_rows(uint32_t *state, const int32_t *cluster, const float *centre, const double *draws,
               int shift, int rows, int cols, int gate, float *out, double *scratch,
               const double *exp_centre, double *exps, const int exact, const int in_tables) {
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  const lanes k = load_lanes();
  const v128_t limit = wasm_f32x4_splat(TABLE_LOGIT_LIMIT);
  const int sigmoid = gate == GATE_SIGMOID;
  for (int i = 0; i < rows; i++) {
    const float *ce = centre + (long)cluster[i] * cols;
    const double *ec = exp_centre + (long)cluster[i] * cols;
    float *o = out + (long)i * cols;
    float redo_x[SIGMOID_CHUNK];
    int redo_at[SIGMOID_CHUNK / 4];
    int redo = 0;
    int j = 0;
    double *ex = exps ? exps + (long)i * cols : 0;
    // GROUPS_AT_ONCE groups of four an iteration, their draws first (in
    // order), then their gates side by side.
    for (; sigmoid && j + 4 * GROUPS_AT_ONCE <= cols; j += 4 * GROUPS_AT_ONCE) {
      v128_t w[4 * GROUPS_AT_ONCE];
      for (int q = 0; q < 4 * GROUPS_AT_ONCE; q++) {
        uint32_t r;
        XOSHIRO_NEXT(r);
        w[q] = wasm_v128_load(draws + 2 * (r >> shift));
      }
      v128_t L[GROUPS_AT_ONCE], sure[GROUPS_AT_ONCE], g[GROUPS_AT_ONCE];
      for (int u = 0; u < GROUPS_AT_ONCE; u++) {
        const int at = j + 4 * u;
        g[u] = synthetic_group(w + 4 * u, ce + at, ec + at, &k, limit, ex ? ex + at : 0, &L[u],
                               &sure[u], exact, in_tables);
      }
      for (int u = 0; u < GROUPS_AT_ONCE; u++) wasm_v128_store(o + j + 4 * u, g[u]);
      for (int u = 0; u < GROUPS_AT_ONCE; u++) {
        keep_unsure(sure[u], L[u], j + 4 * u, redo_x, redo_at, &redo, o, &k);
      }
    }
    // The groups of four left, one an iteration (all of them without a
    // gate: the logits).
    for (; j + 4 <= cols; j += 4) {
      // Four draws: [P, exp(-P)] each.
      v128_t w[4];
      for (int q = 0; q < 4; q++) {
        uint32_t r;
        XOSHIRO_NEXT(r);
        w[q] = wasm_v128_load(draws + 2 * (r >> shift));
      }
      if (!sigmoid) {
        const v128_t cv = wasm_v128_load(ce + j);
        const v128_t p0 = wasm_i64x2_shuffle(w[0], w[1], 0, 2);
        const v128_t p1 = wasm_i64x2_shuffle(w[2], w[3], 0, 2);
        wasm_v128_store(o + j, to_f32x4(wasm_f64x2_add(low_f64(cv), p0),
                                        wasm_f64x2_add(high_f64(cv), p1)));
        continue;
      }
      v128_t L, sure;
      const v128_t g = synthetic_group(w, ce + j, ec + j, &k, limit, ex ? ex + j : 0, &L, &sure,
                                       exact, in_tables);
      wasm_v128_store(o + j, g);
      keep_unsure(sure, L, j, redo_x, redo_at, &redo, o, &k);
    }
    redo_groups(redo_x, redo_at, redo, o, &k);
    const int tail = j;
    for (; j < cols; j++) {
      uint32_t r;
      XOSHIRO_NEXT(r);
      o[j] = (float)((double)ce[j] + draws[2 * (r >> shift)]);
    }
    if (sigmoid && tail < cols) sigmoid_row(o + tail, o + tail, cols - tail, &k);
    if (gate == GATE_SOFTMAX) softmax_row(o, o, cols, scratch, &k);
  }
  state[0] = a;
  state[1] = b;
  state[2] = c;
  state[3] = d;
}

// The kernel of synthetic_rows; `facts` (moelab_synthetic_facts of the
// same tables; 0 or left out: none known) picks its shorter steps.
__attribute__((export_name("moelab_synthetic_scores"))) void
moelab_synthetic_scores(uint32_t *state, const int32_t *cluster, const float *centre,
                        const double *draws, int shift, int rows, int cols, int gate,
                        float *out, double *scratch, const double *exp_centre, double *exps,
                        int facts) {
#define ROWS(EXACT, IN_TABLES)                                                                    \
  synthetic_rows(state, cluster, centre, draws, shift, rows, cols, gate, out, scratch, exp_centre, \
                 exps, EXACT, IN_TABLES)
  const int exact = facts & SUMS_EXACT, in_tables = facts & LOGITS_IN_TABLES;
  if (exact && in_tables) ROWS(1, 1);
  else if (exact) ROWS(1, 0);
  else if (in_tables) ROWS(0, 1);
  else ROWS(0, 0);
#undef ROWS
}
