// The exact solver's row selection (the rowSelect op's WebAssembly SIMD
// kernel, lib/ops/row_select_wasm.ts), the same answers as its CPU kernel
// (lib/ops/row_select.ts rowSelectCpu) bit for bit: each token's top-k of
// s - q (float64, ties to the lowest expert), the largest value it leaves
// out, and the other experts at or above a guess of its (k+1)-th value
// (the running mean of the rows before less two mean deviations). The
// guess's candidates come from a float64x2 pass (the float32 scores
// promoted, the prices subtracted, compared with the guess) whose bits
// are unpacked as in the route kernel; a row where fewer than k + 1
// reach it is collected again below a lower guess, then whole.
//
// No global state: the caller passes the running state (`stats`, two
// float64) and a scratch region of `moelab_select_scratch_bytes` bytes.
#include <wasm_simd128.h>

#include "bits.h"
#include "round.h"
#include "top.h"

typedef unsigned long long u64;

#define INF __builtin_inf()
// Above this many candidates a row selects by insertion, not by rank (the
// CPU kernel's MAX_RANKED).
#define MAX_RANKED 24

// Scratch, laid out by `layout`.
typedef struct {
  int *candI;
  double *candV;
  int *rankI;
  double *rankV;
  int *topI;
  double *topV;
  unsigned char *mark;
} Scratch;

static unsigned align16(unsigned n) { return (n + 15u) & ~15u; }

static unsigned layout(Scratch *s, __UINTPTR_TYPE__ base, int E) {
  // E + 4 entries (unpack4 writes 4 past), at least 2 * 12 (RANK_SIMD).
  unsigned at = 0, e = (unsigned)E + 4u < 24u ? 24u : (unsigned)E + 4u;
#define TAKE(field, type, n)                                                   \
  s->field = (type *)(base + at);                                              \
  at += align16((unsigned)(n) * (unsigned)sizeof(type));
  TAKE(candI, int, e);
  TAKE(candV, double, e);
  TAKE(rankI, int, e);
  TAKE(rankV, double, e);
  TAKE(topI, int, e);
  TAKE(topV, double, e);
  TAKE(mark, unsigned char, e);
#undef TAKE
  return at;
}

// Bytes of scratch that `moelab_select_rows` needs for E experts.
__attribute__((export_name("moelab_select_scratch_bytes"))) int
moelab_select_scratch_bytes(int E) {
  Scratch s;
  return (int)layout(&s, 0, E);
}

// Bits of the two entries x0, x1 (float32 promoted) less q0, q1 that are
// at or above g.
static inline unsigned pass2(v128_t x, v128_t q, v128_t g) {
  return (unsigned)wasm_i64x2_bitmask(wasm_f64x2_ge(wasm_f64x2_sub(x, q), g));
}

// The experts j of the row with (double)row[j] - q[j] >= g, ascending,
// into cand (E + 4 entries); their number.
static int candidates(const float *row, const double *q, int E, double g,
                      int *cand) {
  v128_t G = wasm_f64x2_splat(g);
  int c = 0, j = 0;
  for (; j + 16 <= E; j += 16) {
    unsigned m = 0;
    for (int h = 0; h < 16; h += 4) {
      v128_t x = wasm_v128_load(row + j + h);
      m |= pass2(wasm_f64x2_promote_low_f32x4(x), wasm_v128_load(q + j + h),
                 G)
           << h;
      m |= pass2(wasm_f64x2_promote_low_f32x4(
                     wasm_i32x4_shuffle(x, x, 2, 3, 2, 3)),
                 wasm_v128_load(q + j + h + 2), G)
           << (h + 2);
    }
    c = unpack4(m, j, cand, c);
  }
  for (; j < E; j++) {
    cand[c] = j;
    c += (double)row[j] - q[j] >= g;
  }
  return c;
}

// Ranks of n <= 2 NV values V (padded with -Infinity to 2 NV; V holds
// that many) by the count of larger values, each value and its expert
// stored at its rank in rankV/rankI: float64x2 compares against NV
// vectors, no branch on the values. Equal values get equal ranks, so the
// ranks sum to n(n - 1) / 2 only without ties: returns 1 then (every rank
// is the CPU kernel's, larger values first), else 0 (rank again, with
// equal values at lower experts ahead). With -Infinity among the values
// (a row taken whole) the padding ties with it: 0.
#define RANK_SIMD(NAME, NV)                                                    \
  static int NAME(double *V, const int *I, int n, double *rankV,              \
                  int *rankI) {                                                \
    for (int r = n; r < 2 * (NV); r++) V[r] = -INF;                            \
    v128_t v[NV];                                                              \
    for (int q = 0; q < (NV); q++) v[q] = wasm_v128_load(V + 2 * q);           \
    int sum = 0;                                                               \
    for (int r = 0; r < n; r++) {                                              \
      v128_t x = wasm_f64x2_splat(V[r]);                                       \
      v128_t t = wasm_f64x2_gt(v[0], x);                                       \
      for (int q = 1; q < (NV); q++) t = wasm_i64x2_add(t, wasm_f64x2_gt(v[q], x)); \
      int rank = -(int)(wasm_i64x2_extract_lane(t, 0) +                        \
                        wasm_i64x2_extract_lane(t, 1));                        \
      rankV[rank] = V[r];                                                      \
      rankI[rank] = I[r];                                                      \
      sum += rank;                                                             \
    }                                                                          \
    return sum == n * (n - 1) / 2;                                             \
  }
RANK_SIMD(rank_simd8, 8)
RANK_SIMD(rank_simd12, 12)

// Selects rows `from` to `tokens - 1` of s (tokens x E float32) under the
// prices q (E float64), the rows' running state in stats, as the CPU
// kernel does: slots, vals, held (tokens x k), free, floor (tokens), the
// lists from start[from] (entries of list, listV, listS; start[i + 1]
// ends row i's). `cap` entries fit in the lists. Returns `tokens`, or the
// first row whose list would not fit (nothing of it written, stats as
// before it): grow the lists and call again from that row.
__attribute__((export_name("moelab_select_rows"))) int
moelab_select_rows(const float *s, int tokens, int E, int k, const double *q,
                   int from, double *stats, int *slots, double *vals,
                   float *held, double *free_, double *floor_, int *start,
                   int *list, double *listV, float *listS, int cap,
                   char *scratch) {
  Scratch sc;
  layout(&sc, (__UINTPTR_TYPE__)scratch, E);
  int *candI = sc.candI, *rankI = sc.rankI, *topI = sc.topI;
  double *candV = sc.candV, *rankV = sc.rankV, *topV = sc.topV;
  unsigned char *mark = sc.mark;
  int top = k + 1 < E ? k + 1 : E;
  for (int j = 0; j < E; j++) mark[j] = 0;
  int n = start[from];
  for (int i = from; i < tokens; i++) {
    const float *row = s + (long)i * E;
    int base = i * k;
    double g = stats[0] - 2 * stats[1];
    if (!(g > -INF)) g = -INF;
    int c = g > -INF ? candidates(row, q, E, g, candI) : E;
    if (c < top) {
      // The guess was too high for this row: lower it once, then take all.
      g -= 4 * stats[1] + 1e-300;
      c = g > -INF ? candidates(row, q, E, g, candI) : 0;
      if (c < top) {
        g = -INF;
        c = E;
      }
    }
    if (g == -INF) {
      for (int j = 0; j < E; j++) candI[j] = j;
    }
    if (n + c > cap) return i;
    for (int r = 0; r < c; r++) {
      candV[r] = (double)row[candI[r]] - q[candI[r]];
    }
    floor_[i] = g;
    if (c <= MAX_RANKED) {
      // Each candidate's rank: larger values, and equal values at lower
      // experts, go ahead (no data-dependent branch).
      if (!(c <= 16 ? rank_simd8(candV, candI, c, rankV, rankI)
                    : rank_simd12(candV, candI, c, rankV, rankI))) {
        for (int r = 0; r < c; r++) {
          double v = candV[r];
          int rank = 0;
          for (int x = 0; x < r; x++) rank += candV[x] >= v;
          for (int x = r + 1; x < c; x++) rank += candV[x] > v;
          rankV[rank] = v;
          rankI[rank] = candI[r];
        }
      }
      for (int r = 0; r < k; r++) {
        slots[base + r] = rankI[r];
        vals[base + r] = rankV[r];
      }
      for (int r = k; r < c; r++, n++) {
        list[n] = rankI[r];
        listV[n] = rankV[r];
        listS[n] = row[rankI[r]];
      }
      free_[i] = top > k ? rankV[k] : -INF;
    } else {
      double th = -INF;
      for (int r = 0; r < c; r++) {
        double v = candV[r];
        if (r < top) th = insert(topV, topI, top - 1, r, v, candI[r]);
        else if (v > th) th = insert(topV, topI, top - 1, top - 1, v, candI[r]);
      }
      for (int r = 0; r < k; r++) {
        slots[base + r] = topI[r];
        vals[base + r] = topV[r];
        mark[topI[r]] = 1;
      }
      for (int r = 0; r < c; r++) {
        list[n] = candI[r];
        listV[n] = candV[r];
        listS[n] = row[candI[r]];
        n += 1 - mark[candI[r]];
      }
      for (int r = 0; r < k; r++) mark[topI[r]] = 0;
      free_[i] = top > k ? topV[k] : -INF;
    }
    for (int r = base; r < base + k; r++) held[r] = row[slots[r]];
    start[i + 1] = n;
    track_row_value(stats, free_[i]);
  }
  return tokens;
}

// The scoreScan op (lib/ops/score_scan.ts): finite[i] counts row i's
// entries that are not -Infinity; *amaxBits receives the float32 bits of
// the largest magnitude among the entries that are neither -Infinity nor
// NaN (+Infinity included: 0x7f800000). Integer lanes on the float bits
// (|x| orders as its bits with the sign cleared). Returns the flat index
// of the first NaN or +Infinity in memory order, or -1.
__attribute__((export_name("moelab_scan_scores"))) int
moelab_scan_scores(const float *s, int tokens, int E, int *finite,
                   int *amaxBits) {
  const int NEG_INF = (int)0xff800000u, ABS = 0x7fffffff, INF_BITS = 0x7f800000;
  v128_t negInf = wasm_i32x4_splat(NEG_INF), abs = wasm_i32x4_splat(ABS);
  v128_t infBits = wasm_i32x4_splat(INF_BITS);
  v128_t amax = wasm_i32x4_splat(0);
  int top = 0, badRow = -1;
  for (int i = 0; i < tokens; i++) {
    const int *row = (const int *)(s + (long)i * E);
    v128_t masked = wasm_i32x4_splat(0), special = masked;
    int j = 0, maskedTail = 0, specialTail = 0;
    for (; j + 4 <= E; j += 4) {
      v128_t b = wasm_v128_load(row + j);
      v128_t neg = wasm_i32x4_eq(b, negInf);
      v128_t a = wasm_v128_and(b, abs);
      v128_t nan = wasm_i32x4_gt(a, infBits);
      // NaN or +Infinity: |x| bits at or above infinity's, not -Infinity.
      special = wasm_v128_or(
          special, wasm_v128_andnot(wasm_i32x4_ge(a, infBits), neg));
      masked = wasm_i32x4_sub(masked, neg);
      amax = wasm_i32x4_max(amax,
                            wasm_v128_andnot(wasm_v128_andnot(a, neg), nan));
    }
    for (; j < E; j++) {
      int b = row[j], a = b & ABS, neg = b == NEG_INF;
      maskedTail += neg;
      specialTail |= a >= INF_BITS && !neg;
      if (!neg && a <= INF_BITS && a > top) top = a;
    }
    finite[i] = E - maskedTail -
                (wasm_i32x4_extract_lane(masked, 0) +
                 wasm_i32x4_extract_lane(masked, 1) +
                 wasm_i32x4_extract_lane(masked, 2) +
                 wasm_i32x4_extract_lane(masked, 3));
    if (badRow < 0 && (wasm_v128_any_true(special) || specialTail)) {
      badRow = i;
    }
  }
  for (int l = 0; l < 4; l++) {
    int a = l == 0   ? wasm_i32x4_extract_lane(amax, 0)
            : l == 1 ? wasm_i32x4_extract_lane(amax, 1)
            : l == 2 ? wasm_i32x4_extract_lane(amax, 2)
                     : wasm_i32x4_extract_lane(amax, 3);
    if (a > top) top = a;
  }
  *amaxBits = top;
  if (badRow < 0) return -1;
  const int *row = (const int *)(s + (long)badRow * E);
  for (int j = 0; j < E; j++) {
    int b = row[j];
    if ((b & ABS) >= INF_BITS && b != NEG_INF) return badRow * E + j;
  }
  return -1;
}

// Bits of the entries from..end-1 (at most 64) of a row where
// (double)x - pi > q[j], in float64x2 lanes.
static u64 gap_bits_f64(const float *row, int from, int end, double pi,
                        const double *q) {
  v128_t P = wasm_f64x2_splat(pi);
  u64 bits = 0;
  int j = from;
  for (; j + 4 <= end; j += 4) {
    v128_t v = wasm_v128_load(row + j);
    v128_t d0 = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(v), P);
    v128_t d1 = wasm_f64x2_sub(
        wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)), P);
    u64 m = (u64)(wasm_i64x2_bitmask(wasm_f64x2_gt(d0, wasm_v128_load(q + j))) |
                  wasm_i64x2_bitmask(
                      wasm_f64x2_gt(d1, wasm_v128_load(q + j + 2)))
                      << 2);
    bits |= m << (j - from);
  }
  for (; j < end; j++) bits |= (u64)((double)row[j] - pi > q[j]) << (j - from);
  return bits;
}

// Bits of the entries from..end-1 (at most 64) of a row where
// x - qf[j] >= t in float32: a superset of gap_bits_f64's (see
// moelab_certificate_rows). Sixteen entries a step, their compares narrowed to
// one bitmask.
static u64 gap_bits_f32(const float *row, int from, int end, float t,
                        const float *qf) {
  v128_t T = wasm_f32x4_splat(t);
  u64 bits = 0;
  int j = from;
  for (; j + 16 <= end; j += 16) {
    const float *x = row + j, *b = qf + j;
    v128_t g0 = wasm_f32x4_ge(
        wasm_f32x4_sub(wasm_v128_load(x), wasm_v128_load(b)), T);
    v128_t g1 = wasm_f32x4_ge(
        wasm_f32x4_sub(wasm_v128_load(x + 4), wasm_v128_load(b + 4)), T);
    v128_t g2 = wasm_f32x4_ge(
        wasm_f32x4_sub(wasm_v128_load(x + 8), wasm_v128_load(b + 8)), T);
    v128_t g3 = wasm_f32x4_ge(
        wasm_f32x4_sub(wasm_v128_load(x + 12), wasm_v128_load(b + 12)), T);
    v128_t n = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(g0, g1),
                                       wasm_i16x8_narrow_i32x4(g2, g3));
    bits |= (u64)(unsigned)wasm_i8x16_bitmask(n) << (j - from);
  }
  for (; j < end; j++) bits |= (u64)(row[j] - qf[j] >= t) << (j - from);
  return bits;
}

// The certificateRows op (lib/ops/certificate_rows.ts certificateRowsCpu),
// bit for bit. Per token, its experts in slot order: the loads, the
// objective (one float64 sum over all tokens, into *objective), p[i] =
// the smallest s - q[j], the experts sorted into out by an insertion by
// decreasing score (ties to the lower expert; `score` holds k float64 of
// scratch). Returns the first token holding a -Infinity score (the rest
// unwritten), or -1.
//
// Then its gap term, terms[i] = 0.5 x the sum, over the experts j it does
// not hold in ascending order, of 2x for x = ((double)s[i][j] - p[i]) -
// q[j] > 0. The CPU kernel sums x + |x| over every expert with the held
// ones' prices raised far above any score: its terms are +0 where x <= 0
// (adding +0 changes no sum) and 2x, exactly, where x > 0. A difference
// of two finite doubles is positive exactly when the first is larger,
// rounding included, so x > 0 exactly where d = (double)s - p[i] > q[j];
// -Infinity (a masked pair) and NaN never pass. Only the entries found
// are summed, 64 entries a word of bits, the row in cache from the
// held experts' reads.
//
// The entries are found in float32, u = s - qf[j] >= t_i with qf = f32(q)
// (qf holds E float32 of scratch): where d > q, s - p[i] > q - 2^-52 |q|
// (d rounds s - p to nearest, and every double within half an ulp of q's
// is at most q), qf lies within 2^-24 |q| + 2^-150 of q and u within
// 2^-23 |u| + 2^-150 of s - qf, so u + 2^-23 |u| >= p[i] - 2^-22 Q -
// 2^-148 with Q = max |q|; that bound increases with u, and it holds for
// every u >= p[i] - 2^-20 (|p[i]| + Q) - 2^-126 (a factor 1 - 2^-23 on
// a negative side moves it by less than the margin's 2^-21). t_i is the
// float32 at or below that. Rows or calls with a price of magnitude
// 2^120 or more (float32 would overflow) are found in float64.
__attribute__((export_name("moelab_certificate_rows"))) int
moelab_certificate_rows(const float *s, int tokens, int E, int k,
                        const int *slots, const double *q, double *p,
                        int *out, int *loads, double *terms,
                        double *objective, float *qf, double *score) {
  double Q = 0, sum = 0;
  for (int j = 0; j < E; j++) {
    double a = __builtin_fabs(q[j]);
    Q = a > Q ? a : Q;
    qf[j] = (float)q[j];
  }
  for (int i = 0; i < tokens; i++) {
    const float *row = s + (long)i * E;
    const int *held = slots + (long)i * k;
    int *o = out + (long)i * k;
    double pi = INF;
    for (int r = 0; r < k; r++) {
      int j = held[r];
      float f = row[j];
      if (f == -__builtin_inff()) {
        *objective = sum;
        return i;
      }
      double v = f;
      loads[j]++;
      sum += v;
      double x = v - q[j];
      if (x < pi) pi = x;
      int at = r;
      while (at > 0 && (score[at - 1] < v || (score[at - 1] == v && o[at - 1] > j))) {
        o[at] = o[at - 1];
        score[at] = score[at - 1];
        at--;
      }
      o[at] = j;
      score[at] = v;
    }
    p[i] = pi;
    double twice = 0;
    int f32 = Q < 0x1p120 && __builtin_fabs(pi) < 0x1p120;
    float t = f32 ? round_down_f32(pi - 0x1p-20 * (__builtin_fabs(pi) + Q) -
                                    0x1p-126)
                  : 0;
    for (int from = 0; from < E; from += 64) {
      int end = E - from < 64 ? E : from + 64;
      u64 bits = f32 ? gap_bits_f32(row, from, end, t, qf)
                     : gap_bits_f64(row, from, end, pi, q);
      // The held experts' bits cleared (they pass: d >= q there).
      if (bits) {
        for (int r = 0; r < k; r++) {
          unsigned h = (unsigned)(held[r] - from);
          bits &= h < 64 ? ~(1ull << h) : ~0ull;
        }
      }
      for (; bits; bits &= bits - 1) {
        int e = from + __builtin_ctzll(bits);
        double d = (double)row[e] - pi;
        if (d > q[e]) {
          double x = d - q[e];
          twice += x + x;
        }
      }
    }
    terms[i] = 0.5 * twice;
  }
  *objective = sum;
  return -1;
}

// The rowReselect op (lib/ops/row_select.ts rowReselectCpu), bit for bit:
// the selection under new prices q from `prev`, the selection of the same
// scores under `old`, reading a score only where a price cut could lift
// an expert the row did not list. `byCut` holds the experts by increasing
// q[j] - old[j] (ties by index) and `spread` the largest |q[j]| + |old[j]|
// (at least 1); prev's arrays are its slots and held (tokens x k), floor
// (tokens), start (tokens + 1), list and listS. The outputs and the
// resumption are those of moelab_select_rows (`taken`, E int32 in the
// scratch's rank region, starts at zero when `from` is 0).
__attribute__((export_name("moelab_reselect_rows"))) int
moelab_reselect_rows(const float *s, int tokens, int E, int k,
                     const int *pSlots, const float *pHeld,
                     const double *pFloor, const int *pStart,
                     const int *pList, const float *pListS,
                     const double *old, const double *q, const int *byCut,
                     double spread, int from, int *slots, double *vals,
                     float *held, double *free_, double *floor_, int *start,
                     int *list, double *listV, float *listS, int cap,
                     char *scratch, double *delta, float *candS,
                     float *rankS, double *byV, float *byS, int *taken) {
  Scratch sc;
  layout(&sc, (__UINTPTR_TYPE__)scratch, E);
  int *candI = sc.candI, *rankI = sc.rankI, *topI = sc.topI;
  double *candV = sc.candV, *rankV = sc.rankV, *topV = sc.topV;
  unsigned char *mark = sc.mark;
  int top = k + 1;
  for (int j = 0; j < E; j++) {
    mark[j] = 0;
    delta[j] = q[j] - old[j];
  }
  if (from == 0) {
    for (int j = 0; j < E; j++) taken[j] = 0;
  }
  int n = start[from];
  for (int i = from; i < tokens; i++) {
    const float *row = s + (long)i * E;
    int base = i * k, c = 0;
    double low = INF, high = -INF;
    for (int r = base; r < base + k; r++) {
      int j = pSlots[r];
      double v = (double)pHeld[r] - q[j];
      candI[c] = j;
      candS[c] = pHeld[r];
      candV[c++] = v;
      if (v < low) low = v;
    }
    for (int x = pStart[i]; x < pStart[i + 1]; x++) {
      int j = pList[x];
      double v = (double)pListS[x] - q[j];
      candI[c] = j;
      candS[c] = pListS[x];
      candV[c++] = v;
      if (v > high) high = v;
    }
    // A lower bound of the new (k+1)-th value: the least of k + 1
    // candidates (the held ones and the best listed one).
    double bar = low < high ? low : high;
    double was = pFloor[i], cut = -INF;
    if (was > -INF) {
      for (int r = 0; r < c; r++) mark[candI[r]] = 1;
      double tol = 1e-12 * (__builtin_fabs(was) + spread);
      for (int t = 0; t < E; t++) {
        int j = byCut[t];
        if (mark[j]) continue;
        double bound = was - delta[j] + tol;
        if (bound < bar) {
          cut = bound;
          break;
        }
        mark[j] = 1;
        candI[c] = j;
        candS[c] = row[j];
        candV[c++] = (double)row[j] - q[j];
      }
      for (int r = 0; r < c; r++) mark[candI[r]] = 0;
    }
    if (n + c > cap) return i;
    floor_[i] = cut;
    double best = -INF;
    for (int r = k; r < c; r++) {
      if (candV[r] > best) best = candV[r];
    }
    if (low > best) {
      // Usually the held experts still lead: order them (best first, ties
      // to the lowest expert) and list the others.
      for (int r = 1; r < k; r++) {
        double v = candV[r];
        int j = candI[r];
        float sv = candS[r];
        int at = r;
        while (at > 0 && (candV[at - 1] < v ||
                          (candV[at - 1] == v && candI[at - 1] > j))) {
          candV[at] = candV[at - 1];
          candI[at] = candI[at - 1];
          candS[at] = candS[at - 1];
          at--;
        }
        candV[at] = v;
        candI[at] = j;
        candS[at] = sv;
      }
      for (int r = 0; r < k; r++) {
        slots[base + r] = candI[r];
        vals[base + r] = candV[r];
        held[base + r] = candS[r];
      }
      free_[i] = best;
      for (int r = k; r < c; r++) {
        list[n] = candI[r];
        listV[n] = candV[r];
        listS[n] = candS[r];
        n += candV[r] >= cut;
      }
    } else if (c <= MAX_RANKED) {
      // Ranks: larger values go ahead. Two equal values get the same rank:
      // then, rarely, rank again with equal values at lower experts ahead.
      int tied = 0;
      for (int r = 0; r < c; r++) {
        double v = candV[r];
        int rank = 0;
        for (int x = 0; x < c; x++) rank += candV[x] > v;
        tied |= taken[rank] == i + 1;
        taken[rank] = i + 1;
        rankV[rank] = v;
        rankI[rank] = candI[r];
        rankS[rank] = candS[r];
      }
      for (int r = 0; r < c && tied; r++) {
        double v = candV[r];
        int j = candI[r], rank = 0;
        for (int x = 0; x < c; x++) {
          rank += (candV[x] > v) + (candV[x] == v) * (candI[x] < j);
        }
        rankV[rank] = v;
        rankI[rank] = j;
        rankS[rank] = candS[r];
      }
      for (int r = 0; r < k; r++) {
        slots[base + r] = rankI[r];
        vals[base + r] = rankV[r];
        held[base + r] = rankS[r];
      }
      free_[i] = rankV[k];
      // The list keeps what lies at or above its floor.
      for (int r = k; r < c; r++) {
        list[n] = rankI[r];
        listV[n] = rankV[r];
        listS[n] = rankS[r];
        n += rankV[r] >= cut;
      }
    } else {
      // Many candidates: insert them in expert order (ties to the lowest).
      for (int r = 0; r < c; r++) {
        int j = candI[r];
        mark[j] = 1;
        byV[j] = candV[r];
        byS[j] = candS[r];
      }
      double th = -INF;
      int m = 0;
      for (int j = 0; j < E; j++) {
        if (!mark[j]) continue;
        double v = byV[j];
        if (m < top) th = insert(topV, topI, top - 1, m++, v, j);
        else if (v > th) th = insert(topV, topI, top - 1, top - 1, v, j);
      }
      for (int r = 0; r < k; r++) {
        int j = topI[r];
        slots[base + r] = j;
        vals[base + r] = topV[r];
        held[base + r] = byS[j];
        mark[j] = 0;
      }
      free_[i] = topV[k];
      for (int r = 0; r < c; r++) {
        int j = candI[r];
        list[n] = j;
        listV[n] = byV[j];
        listS[n] = byS[j];
        n += mark[j] & (byV[j] >= cut);
        mark[j] = 0;
      }
    }
    start[i + 1] = n;
  }
  return tokens;
}
