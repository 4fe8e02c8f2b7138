// Exact coordinate minimisation of the balanced-assignment dual
// (docs/algorithms.md section 5): the rounds of BIP-Based Balancing and the
// step of Quantile Balancing, the WebAssembly twin of lib/ops/_dual.ts, and
// Quantile's route that keeps each token's (k+1)-th value. Every price is
// an order statistic of the float64 values `s - price` of the TypeScript
// kernel: float32 SIMD compares against thresholds lowered by a margin
// list a superset of the values that can matter, float64 rechecks them,
// and the order statistic of that superset is the TypeScript kernel's, bit
// for bit (where which element is picked could show, a zero's sign or a
// NaN, the TypeScript kernel's own steps run). The TypeScript side copies
// blocks of rows into the instance's memory and calls moelab_dual_rows on
// each, then moelab_dual_columns once per round.
#include <wasm_simd128.h>

#include "bits.h"
#include "round.h"
#include "top.h"

#define INF __builtin_inf()

// The running guess of a row's rank-th largest (top.h track_row_value):
// mean and mean deviation, mean NaN before the first.
enum { STAT_MEAN = 0, STAT_DEVIATION = 1 };

// lib/select/top.ts insert, values only: `v` enters at `p` or above,
// equal values stay ahead.
static void insert_value(double *top, int p, double v) {
  while (p > 0 && v > top[p - 1]) {
    top[p] = top[p - 1];
    p--;
  }
  top[p] = v;
}

// lib/select/top.ts fullRow: every value of the row, in order (the same
// comparisons, so NaN and infinities end where they do there).
static double full_row(const float *s, int E, const double *shift, int rank,
                       double *top) {
  int n = 0;
  for (int j = 0; j < E; j++) {
    double v = (double)s[j] - shift[j];
    if (n < rank) insert_value(top, n++, v);
    else if (v > top[rank - 1]) insert_value(top, rank - 1, v);
  }
  return top[rank - 1];
}

// For each 4-bit mask m, the byte shuffle that moves the int32 lanes set
// in m to the front, in order (a compress without a branch).
#define LANE(l) (4 * (l)), (4 * (l) + 1), (4 * (l) + 2), (4 * (l) + 3)
static const unsigned char COMPRESS[16][16] = {
    {LANE(0), LANE(0), LANE(0), LANE(0)}, {LANE(0), LANE(0), LANE(0), LANE(0)},
    {LANE(1), LANE(0), LANE(0), LANE(0)}, {LANE(0), LANE(1), LANE(0), LANE(0)},
    {LANE(2), LANE(0), LANE(0), LANE(0)}, {LANE(0), LANE(2), LANE(0), LANE(0)},
    {LANE(1), LANE(2), LANE(0), LANE(0)}, {LANE(0), LANE(1), LANE(2), LANE(0)},
    {LANE(3), LANE(0), LANE(0), LANE(0)}, {LANE(0), LANE(3), LANE(0), LANE(0)},
    {LANE(1), LANE(3), LANE(0), LANE(0)}, {LANE(0), LANE(1), LANE(3), LANE(0)},
    {LANE(2), LANE(3), LANE(0), LANE(0)}, {LANE(0), LANE(2), LANE(3), LANE(0)},
    {LANE(1), LANE(2), LANE(3), LANE(0)}, {LANE(0), LANE(1), LANE(2), LANE(3)},
};
#undef LANE

// The experts j of a row with `s[j] - shift >= bound[j]` (float64), listed
// in ascending order into `idx` (room for `E + 4`: each group of four
// stores four lanes); returns how many. `shift` is one number (a token
// price) when `shiftv` is null, else per expert; `bound` likewise.
static int list_at_least(const float *s, int E, const double *shiftv,
                         double shift, const double *boundv, double bound,
                         int *idx) {
  int c = 0, j = 0;
  v128_t sh = wasm_f64x2_splat(shift), bd = wasm_f64x2_splat(bound);
  v128_t lanes = wasm_i32x4_make(0, 1, 2, 3);
  for (; j + 4 <= E; j += 4) {
    v128_t x = wasm_v128_load(s + j);
    v128_t lo = wasm_f64x2_promote_low_f32x4(x);
    v128_t hi = wasm_f64x2_promote_low_f32x4(
        wasm_i32x4_shuffle(x, x, 2, 3, 0, 1));
    v128_t sl = sh, shh = sh, bl = bd, bh = bd;
    if (shiftv) {
      sl = wasm_v128_load(shiftv + j);
      shh = wasm_v128_load(shiftv + j + 2);
    }
    if (boundv) {
      bl = wasm_v128_load(boundv + j);
      bh = wasm_v128_load(boundv + j + 2);
    }
    unsigned m = (unsigned)wasm_i64x2_bitmask(
                     wasm_f64x2_ge(wasm_f64x2_sub(lo, sl), bl)) |
                 ((unsigned)wasm_i64x2_bitmask(
                      wasm_f64x2_ge(wasm_f64x2_sub(hi, shh), bh))
                  << 2);
    v128_t at = wasm_i32x4_add(lanes, wasm_i32x4_splat(j));
    wasm_v128_store(idx + c,
                    wasm_i8x16_swizzle(at, wasm_v128_load(COMPRESS[m])));
    c += __builtin_popcount(m);
  }
  for (; j < E; j++) {
    double v = (double)s[j] - (shiftv ? shiftv[j] : shift);
    idx[c] = j;
    c += v >= (boundv ? boundv[j] : bound);
  }
  return c;
}

// lib/select/top.ts rowTop with its filter: the rank-th largest of
// `s[j] - q[j]`. The candidates at or above the guess are the same set as
// there (float64 compares), and an order statistic of that set does not
// depend on how it is found; below `rank` candidates, the full row in the
// same order.
static double row_top(const float *s, int E, const double *q, int rank,
                      double *top, int *idx, double *stats) {
  double guess = stats[STAT_MEAN] - 2 * stats[STAT_DEVIATION];
  int c = 0;
  if (guess > -INF) c = list_at_least(s, E, q, 0, 0, guess, idx);
  double v;
  if (c >= rank) {
    for (int r = 0; r < c; r++) {
      int j = idx[r];
      double x = (double)s[j] - q[j];
      if (r < rank) insert_value(top, r, x);
      else if (x > top[rank - 1]) insert_value(top, rank - 1, x);
    }
    v = top[rank - 1];
  } else {
    v = full_row(s, E, q, rank, top);
  }
  track_row_value(stats, v);
  return v;
}

// The experts j of a row with `s[j] >= thr[j] + add` in float32, listed
// in ascending order into `idx` (room for `E + 4`); returns how many.
// Sixteen compares make a bit mask, unpacked by unpack4 (bits.h).
static int list_f32(const float *s, int E, const float *thr, float add,
                    int *idx) {
  int c = 0, j = 0;
  v128_t a = wasm_f32x4_splat(add);
  for (; j + 16 <= E; j += 16) {
#define GE4(o)                                                                 \
  wasm_f32x4_ge(wasm_v128_load(s + j + (o)),                                   \
                wasm_f32x4_add(wasm_v128_load(thr + j + (o)), a))
    unsigned m = (unsigned)wasm_i8x16_bitmask(
        wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(GE4(0), GE4(4)),
                                wasm_i16x8_narrow_i32x4(GE4(8), GE4(12))));
#undef GE4
    c = unpack4(m, j, idx, c);
  }
  for (; j < E; j++) {
    idx[c] = j;
    c += s[j] >= thr[j] + add;
  }
  return c;
}

// The longest list lane_top keeps (rank).
#define MAX_LANE_RANK 32
#define NAN_RESULT __builtin_nan("")

// The rank-th largest of the values `s[j] - q[j]` at or above `g` over
// the `c` experts `idx` (float64, no NaN), or NaN when fewer than `rank`
// are: the list of the largest is updated without a branch on the data,
// `t[p] = max(t[p], min(x, t[p - 1]))`, two entries per float64x2. The
// list has `pairs` float64x2, a constant where lane_top calls it, so that
// the loops unroll and the list stays in registers (no store and reload
// per value).
static inline __attribute__((always_inline)) double
lane_top_pairs(const float *row, const double *q, const int *idx, int c,
               int rank, double g, const int pairs) {
  v128_t t[MAX_LANE_RANK / 2];
  for (int m = 0; m < pairs; m++) t[m] = wasm_f64x2_splat(-INF);
  const v128_t high = wasm_f64x2_splat(INF);
  int n = 0;
  for (int r = 0; r < c; r++) {
    int j = idx[r];
    double x = (double)row[j] - q[j];
    int in = x >= g;
    n += in;
    v128_t xv = wasm_f64x2_splat(in ? x : -INF);
    // Pairs from the last down, the entry before a pair taken from the
    // pair below it (t[-1] is +infinity).
    for (int m = pairs - 1; m >= 0; m--) {
      v128_t before = wasm_i64x2_shuffle(m > 0 ? t[m - 1] : high, t[m], 1, 2);
      t[m] = wasm_f64x2_pmax(t[m], wasm_f64x2_pmin(xv, before));
    }
  }
  if (n < rank) return NAN_RESULT;
  v128_t last = t[(rank - 1) >> 1];
  return (rank - 1) & 1 ? wasm_f64x2_extract_lane(last, 1)
                        : wasm_f64x2_extract_lane(last, 0);
}

static double lane_top(const float *row, const double *q, const int *idx,
                       int c, int rank, double g) {
  switch ((rank + 1) >> 1) {
#define PAIRS(P)                                                              \
  case P:                                                                     \
    return lane_top_pairs(row, q, idx, c, rank, g, P);
    PAIRS(1) PAIRS(2) PAIRS(3) PAIRS(4) PAIRS(5) PAIRS(6) PAIRS(7) PAIRS(8)
    PAIRS(9) PAIRS(10) PAIRS(11) PAIRS(12) PAIRS(13) PAIRS(14) PAIRS(15)
    PAIRS(16)
#undef PAIRS
  }
  return NAN_RESULT;
}

// The rank-th largest of the values `s[j] - q[j]` at or above `g` over
// the `c` experts `list` (ascending, no NaN), or NaN when fewer than
// `rank` are: lane_top, and where it answers a zero (+0 or -0 by which
// tie came first) or the rank is beyond its lanes, the float64 kernel's
// insertion over the list.
static double list_rank(const float *row, const double *q, const int *list,
                        int c, int rank, double g, double *top) {
  double v = rank <= MAX_LANE_RANK ? lane_top(row, q, list, c, rank, g)
                                   : NAN_RESULT;
  if (v == 0 || (v != v && rank > MAX_LANE_RANK)) {
    int n = 0;
    for (int r = 0; r < c; r++) {
      int j = list[r];
      double x = (double)row[j] - q[j];
      if (!(x >= g)) continue;
      if (n < rank) insert_value(top, n++, x);
      else if (x > top[rank - 1]) insert_value(top, rank - 1, x);
    }
    v = n >= rank ? top[rank - 1] : NAN_RESULT;
  }
  return v;
}

// Where fewer than rank values of a row reach the token prices' guess,
// the float64 listing this many deviations below it comes before the
// whole row.
#define LOW_DEVIATIONS 8

// Prices beyond this magnitude (and NaN) take the float64 listing alone,
// so that the float32 thresholds below neither overflow nor lose the
// margin that makes them conservative.
#define FAST_LIMIT 1e30
// Relative margins of the float32 thresholds: far above float32's
// rounding (2^-24) and float64's (2^-53), so every value that passes the
// float64 test passes the float32 one; the few extra fail the float64
// recheck.
#define MARGIN_P 0x1p-30
#define MARGIN_COLUMN 0x1p-18
// The float32 thresholds' state, carried from block to block of a round:
// the guess the token thresholds were made for (NaN: none), and whether
// the column thresholds are made (0: not yet, 1: made, -1: not usable).
enum { STATE_GUESS = 0, STATE_COLUMNS = 1 };

// One block of `rows` rows of a round (lib/ops/_dual.ts coordinateRounds,
// its loop over the rows): with `need_p`, the token prices
// `p[i] = rank-th largest of s[i][j] - q[j]` (0 where `clip_p` and not
// above 0); then, with `columns`, each row's values `s[i][j] - p[i]` at or
// above `lower[j]` appended to column j of `col` (stride `stride`,
// `count[j]` so far). `top` holds `rank` values, `idx` `2 E + 8` indices,
// `thr` `3 E` floats and `state` two numbers (the thresholds, made once
// and kept from block to block), `stats` the row filter's two numbers
// (carried from block to block and updated as lib/select/top.ts does row
// by row).
//
// The float32 pre-filters: a token price is the rank-th largest of the
// values at or above a guess `g` (fixed for the block) once at least
// `rank` are, else of the whole row; the experts with `s >= g + q[j]`,
// less a margin, in float32, are a superset of those with
// `s - q[j] >= g` in float64, which are then rechecked in float64. The
// same for the column candidates, `s >= lower[j] + p[i]` less a margin.
// An order statistic of the values does not depend on which superset was
// looked at, so the prices are those of the float64 kernel; where the
// values may hold NaN (a price of -infinity or NaN), the rows take the
// float64 kernel's own steps instead.
__attribute__((export_name("moelab_dual_rows"))) void
moelab_dual_rows(const float *s, int rows, int E, int rank, const double *q,
                 int need_p, int clip_p, double *p, double *stats,
                 int columns, const double *lower, double *col, int stride,
                 int *count, double *top, int *idx, float *thr,
                 double *state) {
  float *thr_q = thr, *thr_col = thr + E;
  // The token prices' float32 thresholds, for a guess `g` a quarter
  // deviation below the running guess, kept while the running guess stays
  // within half a deviation above it; NaN in
  // `state[STATE_GUESS]` (a new round: new `q`) makes them anew.
  double g = state[STATE_GUESS];
  int fast_p = need_p;
  if (need_p) {
    // The running guess, as lib/select/top.ts's: mean less two deviations.
    double now = stats[STAT_MEAN] - 2 * stats[STAT_DEVIATION];
    double d = 0.25 * stats[STAT_DEVIATION];
    if (!(g <= now && now <= g + 2 * d)) {
      g = now - d;
      for (int j = 0; j < E && fast_p; j++) {
        fast_p = q[j] == q[j] && q[j] > -INF;
      }
      if (!(__builtin_fabs(g) < FAST_LIMIT)) fast_p = 0;
      if (fast_p) {
        for (int j = 0; j < E; j++) {
          double t = g + q[j];
          thr_q[j] = q[j] < INF ? round_down_f32(
                                      t - MARGIN_P * (__builtin_fabs(g) +
                                                      __builtin_fabs(q[j])))
                                : (float)t;
        }
      }
      state[STATE_GUESS] = fast_p ? g : NAN_RESULT;
    }
  }
  // The column thresholds, once a round (`state[STATE_COLUMNS]` 0 asks).
  int fast_col = columns && state[STATE_COLUMNS] > 0;
  if (columns && state[STATE_COLUMNS] == 0) {
    fast_col = 1;
    for (int j = 0; j < E && fast_col; j++) {
      double l = lower[j];
      if (l == -INF || l == INF) {
        thr_col[j] = (float)l;
      } else if (__builtin_fabs(l) < FAST_LIMIT) {
        thr_col[j] = round_down_f32(l - MARGIN_COLUMN * __builtin_fabs(l));
      } else {
        fast_col = 0;
      }
    }
    state[STATE_COLUMNS] = fast_col ? 1 : -1;
  }
  // One listing for both steps: where the token thresholds and the column
  // thresholds are both made, the experts with `s >= thr_both[j]`, the
  // lower of `thr_q[j]` and `thr_col[j] + add_g` (`add_g` the column
  // shift of a token price at the guess `g`), are a superset of the token
  // list and, for a row whose price reaches the guess (its column shift
  // `add >= add_g`), of the column list: both are picked out of it by
  // the same float32 tests as list_f32's, in the same order.
  int fused = need_p && fast_p && fast_col;
  float *thr_both = thr + 2 * E;
  int *tok = idx + E + 4;
  float add_g = 0;
  if (fused) {
    add_g = round_down_f32(g - MARGIN_COLUMN * __builtin_fabs(g));
    for (int j = 0; j < E; j++) {
      float t = thr_col[j] + add_g;
      thr_both[j] = t < thr_q[j] ? t : thr_q[j];
    }
  }
  for (int i = 0; i < rows; i++) {
    const float *row = s + (long)i * E;
    int both = 0;
    if (need_p) {
      double v;
      if (fast_p) {
        const int *list = idx;
        int c;
        if (fused) {
          both = list_f32(row, E, thr_both, 0, idx);
          c = 0;
          for (int r = 0; r < both; r++) {
            int j = idx[r];
            tok[c] = j;
            c += row[j] >= thr_q[j];
          }
          list = tok;
        } else {
          c = list_f32(row, E, thr_q, 0, idx);
        }
        v = list_rank(row, q, list, c, rank, g, top);
        if (v != v) {
          // Fewer than rank values reach the guess: the float64 listing
          // LOW_DEVIATIONS deviations lower, else the whole row.
          double low = g - LOW_DEVIATIONS * stats[STAT_DEVIATION];
          int n = low > -INF ? list_at_least(row, E, q, 0, 0, low, tok) : 0;
          v = n >= rank ? list_rank(row, q, tok, n, rank, low, top)
                        : NAN_RESULT;
          if (v != v) v = full_row(row, E, q, rank, top);
        }
        track_row_value(stats, v);
      } else {
        v = row_top(row, E, q, rank, top, idx, stats);
      }
      p[i] = clip_p && !(v > 0) ? 0 : v;
    }
    if (!columns) continue;
    double pi = p[i];
    if (fast_col && __builtin_fabs(pi) < FAST_LIMIT) {
      float add = round_down_f32(pi - MARGIN_COLUMN * __builtin_fabs(pi));
      int c = 0;
      if (fused && add >= add_g) {
        for (int r = 0; r < both; r++) {
          int j = idx[r];
          idx[c] = j;
          c += row[j] >= thr_col[j] + add;
        }
      } else {
        c = list_f32(row, E, thr_col, add, idx);
      }
      for (int r = 0; r < c; r++) {
        int j = idx[r];
        double x = (double)row[j] - pi;
        double *at = col + (long)j * stride;
        // Written either way (the slot is free), kept when it passes.
        at[count[j]] = x;
        count[j] += x >= lower[j];
      }
    } else {
      int n = list_at_least(row, E, 0, pi, lower, 0, idx);
      for (int r = 0; r < n; r++) {
        int j = idx[r];
        col[(long)j * stride + count[j]++] = (double)row[j] - pi;
      }
    }
  }
}

// Full columns for the experts `redo` (`n` of them) over a block of rows
// starting at row `first`: `col[j][first + i] = s[i][j] - p[i]`.
__attribute__((export_name("moelab_dual_redo"))) void
moelab_dual_redo(const float *s, int rows, int E, const double *p,
                 const int *redo, int n, double *col, int stride, int first) {
  for (int i = 0; i < rows; i++) {
    const float *row = s + (long)i * E;
    double pi = p[i];
    for (int r = 0; r < n; r++) {
      int j = redo[r];
      col[(long)j * stride + first + i] = (double)row[j] - pi;
    }
  }
}

// lib/select/order.ts selectAscending, the same steps: the value of
// ascending rank `m` in `buf[lo, hi)`, the smaller ones left before it.
static double select_ascending(double *buf, int lo, int hi, int m) {
  int l = lo, r = hi - 1;
  int target = lo + m;
  while (r > l) {
    if (r - l < 16) {
      for (int a = l + 1; a <= r; a++) {
        double v = buf[a];
        int b = a - 1;
        while (b >= l && buf[b] > v) {
          buf[b + 1] = buf[b];
          b--;
        }
        buf[b + 1] = v;
      }
      return buf[target];
    }
    int mid = (int)(((unsigned)l + (unsigned)r) >> 1);
    double a = buf[l], b = buf[mid], c = buf[r];
    double pivot = a < b ? (b < c ? b : a < c ? c : a)
                         : (a < c ? a : b < c ? c : b);
    int i = l, j = r;
    while (i <= j) {
      while (buf[i] < pivot) i++;
      while (buf[j] > pivot) j--;
      if (i <= j) {
        double t = buf[i];
        buf[i] = buf[j];
        buf[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) r = j;
    else if (target >= i) l = i;
    else return buf[target];
  }
  return buf[target];
}

// The value of ascending rank `m` among the `n` values at `buf` (no NaN),
// found by three-way partitions without a branch on the data: the values
// below the pivot move down in place, those above go to `tmp` (room for
// `n`), and the search goes on in the side that holds rank `m`. The same
// order statistic as select_ascending; the order left behind differs.
static double select_rank(double *buf, double *tmp, int n, int m) {
  double *cur = buf, *other = tmp;
  while (n > 16) {
    double a = cur[0], b = cur[n >> 1], c = cur[n - 1];
    double pivot = a < b ? (b < c ? b : a < c ? c : a)
                         : (a < c ? a : b < c ? c : b);
    int below = 0, above = 0;
    for (int i = 0; i < n; i++) {
      double x = cur[i];
      cur[below] = x;
      other[above] = x;
      below += x < pivot;
      above += x > pivot;
    }
    if (m < below) {
      n = below;
    } else if (m < n - above) {
      return pivot;
    } else {
      m -= n - above;
      n = above;
      double *t = cur;
      cur = other;
      other = t;
    }
  }
  for (int a = 1; a < n; a++) {
    double v = cur[a];
    int b = a - 1;
    while (b >= 0 && cur[b] > v) {
      cur[b + 1] = cur[b];
      b--;
    }
    cur[b + 1] = v;
  }
  return cur[m];
}

// Whether any of the `n` values at `x` is NaN or -0: where select_rank
// could answer another element than select_ascending (NaN), or the other
// zero (-0 beside +0).
static int has_nan_or_minus_zero(const double *x, int n) {
  v128_t any = wasm_i64x2_splat(0);
  v128_t minus_zero = wasm_i64x2_splat((long long)0x8000000000000000ull);
  int i = 0;
  for (; i + 2 <= n; i += 2) {
    v128_t v = wasm_v128_load(x + i);
    any = wasm_v128_or(any, wasm_f64x2_ne(v, v));
    any = wasm_v128_or(any, wasm_i64x2_eq(v, minus_zero));
  }
  int odd = wasm_v128_any_true(any);
  for (; i < n; i++) odd |= x[i] != x[i] || (x[i] == 0 && __builtin_signbit(x[i]));
  return odd;
}

// Candidates a column keeps beyond its C+1 largest when its slack is
// measured, C / SPARE_DIVISOR (at least one): lib/ops/_dual.ts
// spareCandidates.
#define SPARE_DIVISOR 4
static int spare_candidates(int capacity) {
  int spare = capacity / SPARE_DIVISOR;
  return spare < 1 ? 1 : spare;
}

// The column step of a round: `q[j] = (capacity+1)-th largest of column
// j's `count[j]` values (0 where `clip_q` and not above 0); with
// `bounds`, each column's value in `last[j]` and, for full columns
// (`count[j] == N`), the distance down to the (C+1+spare)-th largest in
// `slack[j]` (infinity when there is none; spare_candidates). A column holds the values
// the TypeScript kernel's does, in the same order: one that holds NaN
// (`-inf - -inf`) or -0 takes select_ascending's steps, as there; the
// others take select_rank, whose order statistics are the same values
// (`tmp` has room for `2 N`).
__attribute__((export_name("moelab_dual_columns"))) void
moelab_dual_columns(double *col, int stride, int E, int N, int capacity,
                    const int *count, int bounds, double *last, double *slack,
                    double *q, int clip_q, double *tmp) {
  int rank = capacity + 1;
  for (int j = 0; j < E; j++) {
    int lo = j * stride;
    double v;
    if (has_nan_or_minus_zero(col + lo, count[j])) {
      v = select_ascending(col, lo, lo + count[j], count[j] - rank);
      if (bounds && count[j] == N) {
        int below = N - rank;
        int r2 = below - spare_candidates(capacity);
        slack[j] = r2 >= 0 ? v - select_ascending(col, lo, lo + below, r2)
                           : INF;
      }
    } else if (count[j] == N) {
      // Without NaN both are order statistics of the column: the (C+1)-th
      // largest, and the (C+1+spare)-th (the smaller values' r2-th is the
      // column's r2-th, r2 being below them all).
      double *copy = tmp + N;
      for (int i = 0; i < N; i++) copy[i] = col[lo + i];
      v = select_rank(copy, tmp, N, N - rank);
      if (bounds) {
        int r2 = N - rank - spare_candidates(capacity);
        slack[j] = r2 >= 0 ? v - select_rank(col + lo, tmp, N, r2) : INF;
      }
    } else {
      v = select_rank(col + lo, tmp, count[j], count[j] - rank);
    }
    if (bounds) last[j] = v;
    q[j] = clip_q && !(v > 0) ? 0 : v;
  }
}

// lib/select/top.ts insert with the experts: `v` (expert `j`) enters at
// `p` or above, equal values stay ahead.
static void insert_entry(double *top, int *top_i, int p, double v, int j) {
  while (p > 0 && v > top[p - 1]) {
    top[p] = top[p - 1];
    top_i[p] = top_i[p - 1];
    p--;
  }
  top[p] = v;
  top_i[p] = j;
}

// The largest that rankTop (lib/select/top.ts) ranks; above, insertion.
#define MAX_RANKED 24

// The route of Quantile Balancing that keeps each token's `(k+1)`-th
// value (lib/ops/quantile_step.ts routeKeepingNext), on a block of rows:
// top-k of `s - q` (ties to the lower expert), gate weights from the
// unbiased scores (normalised when asked: float64 sum, float32 weights),
// loads counted, and `p[i]` the `(k+1)`-th largest of the row. The
// candidates are those of moelab_dual_rows's token prices (a float32
// pre-filter against a guess, rechecked in float64), ranked as rankTop
// does (by value, ties to the lower expert) or, below `k + 1` of them,
// the whole row by insertion: the same experts in the same order, the
// same values. `top` and `top_i` hold `k + 1`, `cand` and `cand_i` `E`.
// Returns the flat index in the block of a NaN or +infinity score, or -1.
// Where every price is finite, lib/ops/_dual_wasm.ts routes with the route
// op's kernel instead (route.c moelab_route_rows_next, the same answers,
// faster); this one takes prices of any value.
__attribute__((export_name("moelab_dual_route_rows"))) int
moelab_dual_route_rows(const float *s, int rows, int E, int k, const double *q,
                       double *p, double *stats, int *out_e, float *out_w,
                       int *loads, int normalize, double *top, int *top_i,
                       double *cand, int *cand_i, int *idx, float *thr,
                       double *state) {
  int rank = k + 1;
  // The float32 thresholds, for the block, made anew when the running
  // guess has moved (as in moelab_dual_rows).
  double g = state[STATE_GUESS];
  double now = stats[STAT_MEAN] - 2 * stats[STAT_DEVIATION];
  double d = 0.25 * stats[STAT_DEVIATION];
  if (!(g <= now && now <= g + 2 * d)) {
    g = now - d;
    if (!(__builtin_fabs(g) < FAST_LIMIT)) g = NAN_RESULT;
    for (int j = 0; j < E && g == g; j++) {
      double t = g + q[j];
      thr[j] = round_down_f32(
          t - MARGIN_P * (__builtin_fabs(g) + __builtin_fabs(q[j])));
    }
    state[STATE_GUESS] = g;
  }
  for (int i = 0; i < rows; i++) {
    const float *row = s + (long)i * E;
    // NaN and +infinity: an error, as in the route op.
    v128_t bad = wasm_i32x4_splat(0), inf = wasm_f32x4_splat(INF);
    int j = 0;
    for (; j + 4 <= E; j += 4) {
      bad = wasm_v128_or(bad, wasm_f32x4_ge(wasm_v128_load(row + j), inf));
      v128_t x = wasm_v128_load(row + j);
      bad = wasm_v128_or(bad, wasm_f32x4_ne(x, x));
    }
    int wrong = wasm_v128_any_true(bad);
    for (; j < E; j++) wrong |= !(row[j] < INF);
    if (wrong) {
      for (j = 0; row[j] < INF; j++) {
      }
      return i * E + j;
    }
    int n = 0;
    double v = NAN_RESULT;
    if (g == g) {
      int c = list_f32(row, E, thr, 0, idx);
      for (int r = 0; r < c; r++) {
        int jj = idx[r];
        double x = (double)row[jj] - q[jj];
        cand[n] = x;
        cand_i[n] = jj;
        n += x >= g;
      }
      if (n >= rank && rank <= MAX_LANE_RANK) {
        v = lane_top(row, q, idx, c, rank, g);
      }
    }
    if (n >= rank && v == v && v != 0) {
      // The (k+1)-th value v known: the values above it, ranked (by value,
      // ties to the lower expert), then those equal to it, lower experts
      // first, up to k + 1 (a zero takes rankTop's steps: which zero).
      int m = 0;
      for (int r = 0; r < n; r++) {
        idx[m] = r;
        m += cand[r] > v;
      }
      for (int a = 0; a < m; a++) {
        double x = cand[idx[a]];
        int at = 0;
        for (int b = 0; b < a; b++) at += cand[idx[b]] >= x;
        for (int b = a + 1; b < m; b++) at += cand[idx[b]] > x;
        top[at] = x;
        top_i[at] = cand_i[idx[a]];
      }
      for (int r = 0; r < n && m < rank; r++) {
        if (cand[r] == v) {
          top[m] = v;
          top_i[m++] = cand_i[r];
        }
      }
    } else if (n >= rank && n <= MAX_RANKED) {
      // rankTop: each candidate's rank is the number ahead of it.
      for (int r = 0; r < n; r++) {
        double v = cand[r];
        int at = 0;
        for (int o = 0; o < r; o++) at += cand[o] >= v;
        for (int o = r + 1; o < n; o++) at += cand[o] > v;
        if (at < rank) {
          top[at] = v;
          top_i[at] = cand_i[r];
        }
      }
    } else if (n >= rank) {
      double th = -INF;
      for (int r = 0; r < n; r++) {
        double v = cand[r];
        if (r < rank) {
          insert_entry(top, top_i, r, v, cand_i[r]);
          th = top[rank - 1];
        } else if (v > th) {
          insert_entry(top, top_i, rank - 1, v, cand_i[r]);
          th = top[rank - 1];
        }
      }
    } else {
      int m = 0;
      for (j = 0; j < E; j++) {
        double v = (double)row[j] - q[j];
        if (m < rank) insert_entry(top, top_i, m++, v, j);
        else if (v > top[rank - 1]) insert_entry(top, top_i, rank - 1, v, j);
      }
    }
    track_row_value(stats, top[rank - 1]);
    p[i] = top[k];
    // lib/ops/_route_rows.ts writeSelection.
    double sum = 0;
    int o = i * k;
    for (int r = 0; r < k; r++) {
      int e = top_i[r];
      float x = row[e];
      float w = x > -INF ? x : 0;
      out_e[o + r] = e;
      out_w[o + r] = w;
      sum += (double)w;
      loads[e]++;
    }
    if (normalize && sum > 0) {
      double f = 1 / sum;
      for (int r = 0; r < k; r++) out_w[o + r] = (float)((double)out_w[o + r] * f);
    }
  }
  return -1;
}
