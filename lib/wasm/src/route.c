// The route op's WebAssembly SIMD kernel (lib/ops/route_wasm.ts): biased
// top-k routing of a block of rows, with or without groups, the same
// answers as the TypeScript kernel (lib/ops/_route_rows.ts,
// lib/ops/_route_groups.ts) bit for bit.
//
// Keys are float64: `(double)score + bias` (or `score * bias` with a
// multiplicative bias), compared as the TypeScript kernel compares them.
// A float32 SIMD pass first drops the entries whose key is provably below
// a threshold `g` guessed from the rows before (a running mean of the
// rows' k-th keys less a few mean deviations): each expert has a float32
// bound `t[j]` such that every float32 `x < t[j]` gives `x + bias[j] < g`
// in float64 (checked exactly when the bound is made, see
// `make_bounds`). The few entries left are checked exactly in float64;
// when at least k of them reach `g`, the top k are among them and are
// selected exactly; otherwise the row is scanned in full, as the
// reference does. Two thresholds are tried: a near one (few entries pass)
// and, where fewer than k pass it, a low one, whose bits come from the
// same pass. NaN and +Infinity always pass the float32 pass, so a bad
// score is always seen; the one reported is the row's lowest index.
//
// Group-limited rows (DeepSeek-V3, Megatron-Core) with a group scored by
// its top one or two keys: every group's top keys in float32x4, in the
// same pass as the near threshold's bits (`kept_groups_f32`), with an
// error bound against the float64 scores proven from the top keys alone;
// where the bound separates the kept groups from the dropped ones they
// are the float64 choice, elsewhere the float64 scores are computed
// (`exact_groups`). Then the thresholds' bits, kept groups only, select as
// in the ungrouped rows. Other group scorings (more than two keys) follow
// lib/ops/_route_groups.ts on candidates.
// V8 compiles a select between two floats to a branch, mispredicted on
// keys in random order: the group paths take maxima and minima with
// f64x2.pmax/pmin and rank with integer sums of comparisons.
// A multiplicative bias is routed by the reference's scans.
//
// No global state: the caller passes the running state (`st`, ST_SIZE
// float64) and a scratch region of `moelab_route_scratch_bytes` bytes.
#include <wasm_simd128.h>

#include "bits.h"
#include "top.h"

typedef unsigned int u32;
typedef unsigned long long u64;
typedef __UINTPTR_TYPE__ uptr;
// A half-word of a bit array held as 64-bit words (16 entries' bits, the
// words little-endian): may_alias, so the compiler keeps the order of its
// writes against the words' reads (clang's -O3 assumes strict aliasing,
// under which a u64 read may be moved above an unsigned short write).
typedef unsigned short __attribute__((may_alias)) half;

#define INF __builtin_inf()

// Fields of the running state (float64).
enum {
  ST_MEAN = 0,      // running mean of the value the threshold stays below
  ST_DEV = 1,       // its running mean deviation
  ST_NEAR_MEAN = 2, // the same for the k-th key (grouped rows, more
                    // than two keys a group)
  ST_NEAR_DEV = 3,
  ST_LOW_G = 4,  // the threshold the low bounds stand for (NaN: none)
  ST_NEAR_G = 5, // the same for the near bounds
  ST_SIZE = 8,
};

// Deviations below the running mean of the k-th key where the two
// thresholds of the ungrouped rows sit: the near one first (fewer
// candidates), the low one where fewer than k reach the near one, a full
// scan where fewer than k reach the low one; grouped rows with one or two
// keys a group the same on the kept groups' k-th key. Grouped rows with
// more keys use GROUP_MARGIN on the value the threshold must stay below
// (their k-th key and each kept group's last summed key), the near one
// among the kept candidates.
#define NEAR_MARGIN 1.0
#define LOW_MARGIN 3.0
#define GROUP_MARGIN 2.0
// The near threshold of the grouped rows with one or two keys a group
// (their low threshold's bits cost a second pass over the kept groups).
#define GROUP_NEAR_MARGIN 1.5
// Rows between two refreshes of the float32 bounds within one call (a
// call starts with a refresh): once per block of rows a routing thread
// claims, which measured 6% faster than every 64 rows at 262144 x 256 with
// the same answers (the bounds are conservative for whatever threshold
// they stand for).
#define REFRESH_ROWS 1024
// What a grouped row returns when it needs the reference.
#define FALLBACK (-2)
// Candidates ranked at once by rank16.
#define RANKED 16

// Scratch pointers, laid out by `layout` in the caller's region.
typedef struct {
  float *lowBound;
  float *nearBound;
  float *biasF;
  u64 *lowBits;
  u64 *nearBits;
  u64 *keptBits;
  int *candI;
  double *candV;
  int *candG;
  int *nearI;
  double *nearV;
  int *keptI;
  double *keptV;
  double *rankV;
  int *rankI;
  double *topV;
  int *topI;
  int *count;
  double *top;
  double *score;
  int *exact;
  int *rank;
  int *keep;
  double *row;
} Scratch;

static u32 align16(u32 n) { return (n + 15u) & ~15u; }

// Lays the scratch out from `base`; returns its size in bytes.
static u32 layout(Scratch *s, uptr base, int E, int k, int G, int P) {
  u32 at = 0;
  u32 e = (u32)E + RANKED;
#define TAKE(field, type, n)                                                   \
  s->field = (type *)(base + at);                                              \
  at += align16((u32)(n) * (u32)sizeof(type));
  TAKE(lowBound, float, e);
  TAKE(nearBound, float, e);
  TAKE(biasF, float, e);
  TAKE(lowBits, u64, (u32)E / 64u + 1u);
  TAKE(nearBits, u64, (u32)E / 64u + 1u);
  TAKE(keptBits, u64, (u32)E / 64u + 1u);
  TAKE(candI, int, e);
  TAKE(candV, double, e);
  TAKE(candG, int, e);
  TAKE(nearI, int, e);
  TAKE(nearV, double, e);
  TAKE(keptI, int, e);
  TAKE(keptV, double, e);
  TAKE(rankV, double, e);
  TAKE(rankI, int, e);
  TAKE(topV, double, k);
  TAKE(topI, int, k);
  TAKE(count, int, G);
  TAKE(top, double, G * P);
  TAKE(score, double, G + 4);
  TAKE(exact, int, G);
  TAKE(rank, int, G);
  TAKE(keep, int, G);
  TAKE(row, double, E);
#undef TAKE
  return at;
}

// Bytes of scratch that `moelab_route_rows` needs for this shape.
__attribute__((export_name("moelab_route_scratch_bytes"))) int
moelab_route_scratch_bytes(int E, int k, int groups, int perGroup) {
  Scratch s;
  return (int)layout(&s, 0, E, k, groups, perGroup);
}

// track_row_value (top.h) on the kernel's own state, NaN-filled at a
// batch's start: the deviation starts at 0 with the mean.
static void track(double *st, double v) {
  if (st[0] != st[0] && v - v == 0.0) st[1] = 0;
  track_row_value(st, v);
}

// The mean deviation the ungrouped rows' running state starts from, this
// fraction of the first row's k-th key. Started at zero, the thresholds
// sit at the mean while the deviation grows: on the bench's scores at
// 16384 x 256, 603 rows of a call fell short of k candidates and took the
// full scan, a fifth of the call's time; seeded at an eighth of the key,
// 37 did and the call took 2.7 ms instead of 3.4 (the deviation then
// moves to the rows' own at the usual rate).
#define FIRST_DEV 0.125

// track, where the state is new: the mean from v and the deviation
// FIRST_DEV |v|.
static void track_first(double *st, double v) {
  if (st[0] != st[0] && v - v == 0.0) {
    st[0] = v;
    st[1] = FIRST_DEV * __builtin_fabs(v);
  }
  track(st, v);
}

// The float32 below `t` (`t` > -Infinity).
static float below(float t) {
  union {
    float f;
    u32 u;
  } b = {t};
  if (t == 0.0f) b.u = 0x80000001u; // -(smallest subnormal)
  else if (t > 0.0f) b.u--;
  else b.u++;
  return b.f;
}

// Float32 bounds for threshold `g` (finite): every float32 x < bound[j]
// has (double)x + bias[j] < g. x < t means x <= below(t), and float64
// addition is monotone, so it is enough that below(t) + bias[j] < g,
// which the loop checks exactly. The first guess is g - bias[j] in
// float32; it steps down one float32 at a time twice, then by a gap that
// doubles each time (near g - bias[j] = 0 one float32 is far smaller than
// a float64 step of g).
static void make_bounds(float *bound, const double *bias, int E, double g) {
  for (int j = 0; j < E; j++) {
    double b = bias[j];
    float t = (float)(g - b);
    double gap = (__builtin_fabs(g) + __builtin_fabs(b)) * 0x1p-40;
    for (int step = 0;
         t > -__builtin_inff() && (double)below(t) + b >= g; step++) {
      if (step < 2) t = below(t);
      else {
        t = (float)((double)t - gap);
        gap *= 2;
      }
    }
    bound[j] = t;
  }
}

// Refreshes the bounds for `g` when due (or when none stand); returns the
// threshold they stand for (NaN: none, scan in full).
static double bounds_for(double *have, double g, int row, float *bound,
                         const double *bias, int E) {
  if (g > -INF && g < INF && (*have != *have || row % REFRESH_ROWS == 0)) {
    if (g != *have) make_bounds(bound, bias, E, g);
    *have = g;
  }
  return *have;
}

// Bits of 16 entries of a row where !(x < bound) (NaN passes).
static u32 pass16(const float *x, const float *bound) {
  v128_t l0 = wasm_f32x4_lt(wasm_v128_load(x), wasm_v128_load(bound));
  v128_t l1 = wasm_f32x4_lt(wasm_v128_load(x + 4), wasm_v128_load(bound + 4));
  v128_t l2 = wasm_f32x4_lt(wasm_v128_load(x + 8), wasm_v128_load(bound + 8));
  v128_t l3 =
      wasm_f32x4_lt(wasm_v128_load(x + 12), wasm_v128_load(bound + 12));
  v128_t n = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(l0, l1),
                                     wasm_i16x8_narrow_i32x4(l2, l3));
  return ~(u32)wasm_i8x16_bitmask(n) & 0xffffu;
}

// Bits of the 64 entries from `x` (or the E - j left, fewer) that pass.
static u64 pass64(const float *x, const float *bound, int left) {
  if (left >= 64) {
    return (u64)pass16(x, bound) | (u64)pass16(x + 16, bound + 16) << 16 |
           (u64)pass16(x + 32, bound + 32) << 32 |
           (u64)pass16(x + 48, bound + 48) << 48;
  }
  u64 w = 0;
  int j = 0;
  for (; j + 16 <= left; j += 16) w |= (u64)pass16(x + j, bound + j) << j;
  for (; j < left; j++) w |= (u64)!(x[j] < bound[j]) << j;
  return w;
}

// Appends the set bits of `w` (entries from `j`) to cand; returns the count.
static int unpack(u64 w, int j, int *cand, int c) {
  while (w) {
    cand[c++] = j + __builtin_ctzll(w);
    w &= w - 1;
  }
  return c;
}

// Candidates of a row against one bound: the indices, ascending, where
// !(x < bound[j]) (NaN passes), gathered 64 at a time without a branch
// before they are unpacked.
static int filter(const float *row, const float *bound, int E, int *cand) {
  int c = 0;
  for (int j = 0; j < E; j += 64) {
    c = unpack(pass64(row + j, bound + j, E - j), j, cand, c);
  }
  return c;
}

// The lowest index of a NaN or +Infinity in the row, or -1.
static int first_bad(const float *row, int E) {
  for (int j = 0; j < E; j++) {
    float x = row[j];
    if (x != x || x == __builtin_inff()) return j;
  }
  return -1;
}

// Above this many entries rank_top inserts: ranking costs their square.
#define MAX_RANKED 24

// The top k of n >= k keys (indices ascending) into topV/topI, ties to
// the lowest index: each entry's rank counted up to MAX_RANKED entries,
// insertion above.
static void rank_top(const double *V, const int *I, int n, int k, Scratch *s) {
  double *topV = s->topV;
  int *topI = s->topI;
  if (n > MAX_RANKED) {
    double th = -INF;
    for (int r = 0; r < k; r++) th = insert(topV, topI, k - 1, r, V[r], I[r]);
    for (int r = k; r < n; r++) {
      if (V[r] > th) th = insert(topV, topI, k - 1, k - 1, V[r], I[r]);
    }
    return;
  }
  for (int r = 0; r < n; r++) {
    double v = V[r];
    int rank = 0;
    // Ahead of entry r: larger keys, and equal keys at lower indices.
    for (int q = 0; q < r; q++) rank += V[q] >= v;
    for (int q = r + 1; q < n; q++) rank += V[q] > v;
    s->rankV[rank] = v;
    s->rankI[rank] = I[r];
  }
  for (int r = 0; r < k; r++) {
    topV[r] = s->rankV[r];
    topI[r] = s->rankI[r];
  }
}

// The rank of a key from the lanes of `t` (each -1 per larger key),
// the key and its index stored at that rank; returns the rank.
static inline int place_ranked(v128_t t, double v, int i, Scratch *s) {
  int rank = -(int)(wasm_i64x2_extract_lane(t, 0) +
                    wasm_i64x2_extract_lane(t, 1));
  s->rankV[rank] = v;
  s->rankI[rank] = i;
  return rank;
}

// The top k of the ranked keys into topV/topI where the ranks summed to
// n(n - 1) / 2 (no ties: 1), else 0 without a selection.
static int take_ranked(int n, int k, int sum, Scratch *s) {
  if (sum != n * (n - 1) / 2) return 0;
  for (int r = 0; r < k; r++) {
    s->topV[r] = s->rankV[r];
    s->topI[r] = s->rankI[r];
  }
  return 1;
}

// rank_top for n <= RANKED finite keys without a branch that depends on
// them: the keys padded to RANKED with -Infinity sit in eight float64x2
// vectors, each key's rank is the number of larger keys. Equal keys get
// the same rank, so the ranks sum to n(n - 1) / 2 only without ties; a
// row with ties goes to rank_top (returns 0 without a selection).
static int rank16(double *V, const int *I, int n, int k, Scratch *s) {
  for (int r = n; r < RANKED; r++) V[r] = -INF;
  v128_t v0 = wasm_v128_load(V), v1 = wasm_v128_load(V + 2);
  v128_t v2 = wasm_v128_load(V + 4), v3 = wasm_v128_load(V + 6);
  v128_t v4 = wasm_v128_load(V + 8), v5 = wasm_v128_load(V + 10);
  v128_t v6 = wasm_v128_load(V + 12), v7 = wasm_v128_load(V + 14);
  int sum = 0;
  for (int r = 0; r < n; r++) {
    v128_t x = wasm_f64x2_splat(V[r]);
    // Each lane: -1 per larger key.
    v128_t a = wasm_i64x2_add(wasm_f64x2_gt(v0, x), wasm_f64x2_gt(v1, x));
    v128_t b = wasm_i64x2_add(wasm_f64x2_gt(v2, x), wasm_f64x2_gt(v3, x));
    v128_t c = wasm_i64x2_add(wasm_f64x2_gt(v4, x), wasm_f64x2_gt(v5, x));
    v128_t d = wasm_i64x2_add(wasm_f64x2_gt(v6, x), wasm_f64x2_gt(v7, x));
    v128_t t = wasm_i64x2_add(wasm_i64x2_add(a, b), wasm_i64x2_add(c, d));
    sum += place_ranked(t, V[r], I[r], s);
  }
  return take_ranked(n, k, sum, s);
}

// The reference's full scan of one ungrouped row (lib/ops/_route_rows.ts
// scanRow). Returns -1, or the row's lowest bad index.
static int scan_row(const float *row, int E, int k, const double *bias,
                    int multiply, double *topV, int *topI) {
  int last = k - 1;
  for (int j = 0; j < k; j++) {
    float x = row[j];
    if (x != x || x == __builtin_inff()) return j;
    insert(topV, topI, last, j, multiply ? x * bias[j] : x + bias[j], j);
  }
  double th = topV[last];
  if (!multiply) {
    for (int j = k; j < E; j++) {
      double v = (double)row[j] + bias[j];
      if (v > th) th = insert(topV, topI, last, last, v, j);
      else if (v != v) return first_bad(row, E);
    }
  } else {
    for (int j = k; j < E; j++) {
      float x = row[j];
      double v = (double)x * bias[j];
      if (v > th) th = insert(topV, topI, last, last, v, j);
      else if (x != x || x == __builtin_inff()) return first_bad(row, E);
    }
  }
  for (int r = 0; r < k; r++) {
    if (row[topI[r]] == __builtin_inff()) return first_bad(row, E);
  }
  return -1;
}

// Writes one token's selection: experts, gate weights from the unbiased
// scores (-Infinity weighs 0; normalised to sum `scale`, else times
// `scale`), loads. The same arithmetic as _route_rows.ts writeSelection.
static void write_selection(const float *row, const int *topI, int k,
                            int *outE, float *outW, int *loads, int normalize,
                            double scale) {
  double sum = 0;
  for (int r = 0; r < k; r++) {
    int j = topI[r];
    float x = row[j];
    float w = x > -__builtin_inff() ? x : 0.0f;
    outE[r] = j;
    outW[r] = w;
    sum += (double)w;
    loads[j]++;
  }
  if (normalize && sum > 0) {
    double f = scale / sum;
    for (int r = 0; r < k; r++) outW[r] = (float)((double)outW[r] * f);
  } else if (scale != 1.0) {
    for (int r = 0; r < k; r++) outW[r] = (float)((double)outW[r] * scale);
  }
}

// The keys of the n candidates `cand` (indices ascending), those that
// reach g kept in candI/candV. Returns their number, or -3 - j for a bad
// score at the row's lowest bad index j (every bad score is a candidate).
static int exact(const float *row, const double *bias, const int *cand,
                 int n, double g, Scratch *s) {
  int *candI = s->candI;
  double *candV = s->candV;
  int m = 0;
  for (int r = 0; r < n; r++) {
    int j = cand[r];
    float x = row[j];
    if (!(x < __builtin_inff())) return -3 - j;
    double v = (double)x + bias[j];
    candI[m] = j;
    candV[m] = v;
    m += v >= g;
  }
  return m;
}

// `filter` unpacked by unpack4 (cand holds E + RANKED entries).
static int filter4(const float *row, const float *bound, int E, int *cand) {
  int c = 0;
  for (int j = 0; j < E; j += 64) {
    c = unpack4(pass64(row + j, bound + j, E - j), j, cand, c);
  }
  return c;
}

// rank16 for RANKED < n <= 2 * RANKED finite keys: sixteen float64x2
// vectors, the keys padded with -Infinity (V and the rank arrays hold
// E + RANKED >= 2 * RANKED entries where n > RANKED). Returns 0 on ties.
static int rank32(double *V, const int *I, int n, int k, Scratch *s) {
  for (int r = n; r < 2 * RANKED; r++) V[r] = -INF;
  v128_t v[RANKED];
  for (int q = 0; q < RANKED; q++) v[q] = wasm_v128_load(V + 2 * q);
  int sum = 0;
  for (int r = 0; r < n; r++) {
    v128_t x = wasm_f64x2_splat(V[r]);
    // Each lane: -1 per larger key.
    v128_t t = wasm_f64x2_gt(v[0], x);
    for (int q = 1; q < RANKED; q++) {
      t = wasm_i64x2_add(t, wasm_f64x2_gt(v[q], x));
    }
    sum += place_ranked(t, V[r], I[r], s);
  }
  return take_ranked(n, k, sum, s);
}

// The top k of n >= k finite keys (indices ascending) into topV/topI:
// ranked by rank16 or rank32 where no tie sits among them, else by
// rank_top (V holds E + RANKED entries).
static void select_top(double *V, const int *I, int n, int k, Scratch *s) {
  int done = n <= RANKED       ? rank16(V, I, n, k, s)
             : n <= 2 * RANKED ? rank32(V, I, n, k, s)
                               : 0;
  if (!done) rank_top(V, I, n, k, s);
}

// The ungrouped rows: the top k by key, written with their weights. With
// `next` (an additive bias), the top k + 1 are selected (the scratch laid
// out for k + 1): the first k written as without it, the (k + 1)-th key
// into next[i] and tracked in `stats` (lib/select/top.ts trackRowValue).
static int ungrouped_rows(const float *scores, int rows, int E, int k,
                          const double *bias, int multiply, int normalize,
                          double scale, int *outE, float *outW, int *loads,
                          double *st, Scratch *s, double *next,
                          double *stats) {
  double *topV = s->topV;
  int *topI = s->topI;
  // Keys selected a row: k + 1 with `next`.
  int take = next ? k + 1 : k;
  for (int i = 0; i < rows; i++) {
    const float *row = scores + (long)i * E;
    int n = -1;
    if (!multiply) {
      double low = bounds_for(st + ST_LOW_G, st[ST_MEAN] - LOW_MARGIN * st[ST_DEV],
                              i, s->lowBound, bias, E);
      double near = bounds_for(st + ST_NEAR_G,
                               st[ST_MEAN] - NEAR_MARGIN * st[ST_DEV], i,
                               s->nearBound, bias, E);
      if (low > -INF && near > -INF) {
        // The near candidates; the low ones, in a second pass over the
        // row (in cache), where fewer than `take` are near.
        n = filter4(row, s->nearBound, E, s->nearI);
        n = exact(row, bias, s->nearI, n, near, s);
        if (n <= -3) return i * E + (-3 - n);
        if (n < take) {
          n = filter4(row, s->lowBound, E, s->nearI);
          n = exact(row, bias, s->nearI, n, low, s);
          if (n <= -3) return i * E + (-3 - n);
        }
      }
    }
    if (n >= take) select_top(s->candV, s->candI, n, take, s);
    else {
      int bad = scan_row(row, E, take, bias, multiply, topV, topI);
      if (bad >= 0) return i * E + bad;
    }
    if (!multiply) track_first(st, topV[take - 1]);
    if (next) {
      next[i] = topV[k];
      track_row_value(stats, topV[k]);
    }
    write_selection(row, topI, k, outE + (long)i * k, outW + (long)i * k,
                    loads, normalize, scale);
  }
  return -1;
}

// Group q's P largest keys of the whole row into top (insertion, as the
// reference) and its exact score.
static void scan_group(const float *row, const double *bias, int q, int size,
                       int P, Scratch *s) {
  double *top = s->top + q * P;
  int n = 0;
  for (int j = q * size; j < (q + 1) * size; j++) {
    double v = (double)row[j] + bias[j];
    if (n == P) {
      if (!(v > top[P - 1])) continue;
      n--;
    }
    int p = n;
    while (p > 0 && v > top[p - 1]) {
      top[p] = top[p - 1];
      p--;
    }
    top[p] = v;
    n++;
  }
  double sum = 0;
  for (int r = 0; r < P; r++) sum += top[r];
  s->score[q] = sum != sum ? -INF : sum;
  s->exact[q] = 1;
}

// Ranks the exact groups (score descending, group ascending); a bounded
// group gets rank G. Returns the score of rank topGroups - 1, or -Infinity.
static double rank_groups(Scratch *s, int G, int topGroups) {
  double cut = -INF;
  const double *score = s->score;
  const int *exact = s->exact;
  for (int q = 0; q < G; q++) {
    double v = score[q];
    int r = 0;
    for (int p = 0; p < q; p++) r += exact[p] & (score[p] >= v);
    for (int p = q + 1; p < G; p++) r += exact[p] & (score[p] > v);
    r = exact[q] ? r : G;
    s->rank[q] = r;
    if (r == topGroups - 1) cut = v;
  }
  return cut;
}

// One grouped row from its n candidates (keys >= g, ascending in candI,
// candV), as lib/ops/_route_groups.ts groupedRow. Returns -1 (selection
// in topV/topI) or FALLBACK.
static int grouped_row(const float *row, int E, int k, const double *bias,
                       int G, int topGroups, int P, double g, int n,
                       double *st, Scratch *s) {
  int size = E / G;
  double *top = s->top, *score = s->score;
  int *exact = s->exact, *count = s->count, *candG = s->candG;
  const int *candI = s->candI;
  const double *candV = s->candV;
  for (int q = 0; q < G; q++) count[q] = 0;
  for (int q = 0; q < G * P; q++) top[q] = -INF;
  // Each group's P largest candidates, descending (the values of the
  // reference's insertion: candidates are finite). Up to two without a
  // branch: the comparisons pick the new pair.
  double inv = 1.0 / size;
  for (int r = 0; r < n; r++) {
    // floor(j / size), exact: (j + 0.5) / size is at least 0.5 / size
    // from an integer.
    int q = (int)(((double)candI[r] + 0.5) * inv);
    candG[r] = q;
    count[q]++;
  }
  if (P == 1) {
    for (int r = 0; r < n; r++) {
      double v = candV[r], *t = top + candG[r];
      *t = v > *t ? v : *t;
    }
  } else if (P == 2) {
    for (int r = 0; r < n; r++) {
      double v = candV[r], *t = top + 2 * candG[r];
      double a = t[0], b = t[1];
      int above = v > a, second = v > b;
      t[1] = above ? a : second ? v : b;
      t[0] = above ? v : a;
    }
  } else {
    for (int r = 0; r < n; r++) {
      double v = candV[r], *t = top + P * candG[r];
      if (!(v > t[P - 1])) continue;
      int p = P - 1;
      while (p > 0 && v > t[p - 1]) {
        t[p] = t[p - 1];
        p--;
      }
      t[p] = v;
    }
  }
  // Exact scores (summed as the reference sums them) of the groups with
  // P candidates; an upper bound of the others, each missing key being
  // below g.
  int bounded = 0;
  for (int q = 0; q < G; q++) {
    int have = count[q];
    double sum = 0;
    for (int r = 0; r < P; r++) sum += r < have ? top[q * P + r] : g;
    exact[q] = have >= P;
    bounded += have < P;
    score[q] = sum != sum ? -INF : sum;
  }
  // Rank the exact groups; scan a bounded group exactly while its bound
  // reaches the topGroups-th best exact score, then rank again.
  for (;;) {
    double cut = rank_groups(s, G, topGroups);
    if (bounded == 0) break;
    int worst = -1;
    for (int q = 0; q < G; q++) {
      if (!exact[q] && (worst < 0 || score[q] > score[worst])) worst = q;
    }
    if (score[worst] < cut) break;
    scan_group(row, bias, worst, size, P, s);
    bounded--;
  }
  // The top k among the kept groups' candidates; among those at or above
  // a second, tighter guess (of the k-th key) when at least k are.
  double nearG = st[ST_NEAR_MEAN] - NEAR_MARGIN * st[ST_NEAR_DEV];
  const int *rank = s->rank;
  int m = 0, c = 0;
  for (int r = 0; r < n; r++) {
    double v = candV[r];
    int kept = rank[candG[r]] < topGroups;
    s->keptI[m] = s->nearI[c] = candI[r];
    s->keptV[m] = s->nearV[c] = v;
    m += kept;
    c += kept & (v >= nearG);
  }
  if (m < k) return FALLBACK;
  if (c >= k) select_top(s->nearV, s->nearI, c, k, s);
  else select_top(s->keptV, s->keptI, m, k, s);
  // The value the threshold had to stay at or below: the k-th key, and
  // the P-th key of every kept group.
  double need = s->topV[k - 1];
  track(st + ST_NEAR_MEAN, need);
  for (int q = 0; q < G; q++) {
    if (rank[q] < topGroups && top[q * P + P - 1] < need) {
      need = top[q * P + P - 1];
    }
  }
  track(st + ST_MEAN, need);
  return -1;
}

// The reference for one grouped row (lib/ops/_route_groups.ts
// referenceRow). Returns -1 or the row's lowest bad index.
static int reference_row(const float *row, int E, int k, const double *bias,
                         int multiply, int G, int topGroups, int P, double *st,
                         Scratch *s, int trackNeed) {
  int bad = first_bad(row, E);
  if (bad >= 0) return bad;
  double *r = s->row, *top = s->top, *score = s->score;
  int *keep = s->keep;
  if (multiply) {
    for (int j = 0; j < E; j++) r[j] = (double)row[j] * bias[j];
  } else {
    for (int j = 0; j < E; j++) r[j] = (double)row[j] + bias[j];
  }
  int size = E / G;
  for (int q = 0; q < G; q++) {
    double *t = top + q * P;
    int n = 0;
    for (int j = q * size; j < (q + 1) * size; j++) {
      double v = r[j];
      if (n == P) {
        if (!(v > t[P - 1])) continue;
        n--;
      }
      int p = n;
      while (p > 0 && v > t[p - 1]) {
        t[p] = t[p - 1];
        p--;
      }
      t[p] = v;
      n++;
    }
    double sum = 0;
    for (int i = 0; i < P; i++) sum += t[i];
    score[q] = sum != sum ? -INF : sum;
  }
  for (int q = 0; q < G; q++) keep[q] = 0;
  for (int t = 0; t < topGroups; t++) {
    int best = -1;
    for (int q = 0; q < G; q++) {
      if (!keep[q] && (best < 0 || score[q] > score[best])) best = q;
    }
    keep[best] = 1;
  }
  for (int q = 0; q < G; q++) {
    if (!keep[q]) {
      for (int j = q * size; j < (q + 1) * size; j++) r[j] = -INF;
    }
  }
  double *topV = s->topV;
  int *topI = s->topI;
  for (int j = 0; j < k; j++) insert(topV, topI, k - 1, j, r[j], j);
  double th = topV[k - 1];
  for (int j = k; j < E; j++) {
    if (r[j] > th) th = insert(topV, topI, k - 1, k - 1, r[j], j);
  }
  double need = th;
  for (int q = 0; q < G; q++) {
    if (keep[q] && top[q * P + P - 1] < need) need = top[q * P + P - 1];
  }
  if (!multiply && trackNeed) {
    track(st + ST_NEAR_MEAN, th);
    track(st + ST_MEAN, need);
  }
  return -1;
}

// Float64 max and min without a branch (V8 compiles a select of floats to
// a branch, mispredicted on keys in random order): f64x2.pmax and pmin on
// lane 0, the comparisons `a < b ? b : a` and `b < a ? b : a`.
static double max_(double a, double b) {
  return wasm_f64x2_extract_lane(
      wasm_f64x2_pmax(wasm_f64x2_splat(a), wasm_f64x2_splat(b)), 0);
}
static double min_(double a, double b) {
  return wasm_f64x2_extract_lane(
      wasm_f64x2_pmin(wasm_f64x2_splat(a), wasm_f64x2_splat(b)), 0);
}

// Group q's top P <= 2 keys of the whole row into top (a >= b, the values
// of the reference's insertion: the row holds no NaN or +Infinity, checked
// before) and its exact score, summed as the reference sums: per lane of
// two float64x2 chains a running largest and second largest, merged,
// without a branch on the keys.
static void scan_group2(const float *row, const double *bias, int q,
                        int size, int P, Scratch *s) {
  const float *x = row + q * size;
  const double *b = bias + q * size;
  v128_t m1 = wasm_f64x2_splat(-INF), m2 = m1, n1 = m1, n2 = m1;
  int j = 0;
  for (; j + 4 <= size; j += 4) {
    v128_t xf = wasm_v128_load(x + j);
    v128_t k0 = wasm_f64x2_add(wasm_f64x2_promote_low_f32x4(xf),
                               wasm_v128_load(b + j));
    v128_t k1 = wasm_f64x2_add(
        wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(xf, xf, 2, 3, 2, 3)),
        wasm_v128_load(b + j + 2));
    m2 = wasm_f64x2_pmax(m2, wasm_f64x2_pmin(m1, k0));
    m1 = wasm_f64x2_pmax(m1, k0);
    n2 = wasm_f64x2_pmax(n2, wasm_f64x2_pmin(n1, k1));
    n1 = wasm_f64x2_pmax(n1, k1);
  }
  // The two chains merged, then lane 1 into lane 0.
  m2 = wasm_f64x2_pmax(wasm_f64x2_pmax(m2, n2), wasm_f64x2_pmin(m1, n1));
  m1 = wasm_f64x2_pmax(m1, n1);
  double a0 = wasm_f64x2_extract_lane(m1, 0);
  double a1 = wasm_f64x2_extract_lane(m1, 1);
  double hi = max_(a0, a1);
  double second = max_(max_(wasm_f64x2_extract_lane(m2, 0),
                            wasm_f64x2_extract_lane(m2, 1)),
                       min_(a0, a1));
  for (; j < size; j++) {
    double v = (double)x[j] + b[j];
    second = max_(second, min_(hi, v));
    hi = max_(hi, v);
  }
  double *top = s->top + q * P;
  double sum = 0;
  sum += hi;
  top[0] = hi;
  if (P == 2) {
    sum += second;
    top[1] = second;
  }
  s->score[q] = sum != sum ? -INF : sum;
  s->exact[q] = 1;
}

// Merges a pair of top-two lanes (a >= c lane by lane; a single value v:
// a = v, c = -Infinity) into (m1 >= m2), float32x4, values only
// (duplicates counted).
#define TOP2F(m1, m2, a, c)                                                    \
  do {                                                                         \
    v128_t a_ = (a), c_ = (c);                                                 \
    m2 = wasm_f32x4_pmax(wasm_f32x4_pmax(m2, c_), wasm_f32x4_pmin(m1, a_));    \
    m1 = wasm_f32x4_pmax(m1, a_);                                              \
  } while (0)

// Bits of 16 float32 keys where !(a < t) (NaN passes).
static unsigned short pass16_keys(v128_t a0, v128_t a1, v128_t a2, v128_t a3,
                                  v128_t t) {
  v128_t n = wasm_i8x16_narrow_i16x8(
      wasm_i16x8_narrow_i32x4(wasm_f32x4_lt(a0, t), wasm_f32x4_lt(a1, t)),
      wasm_i16x8_narrow_i32x4(wasm_f32x4_lt(a2, t), wasm_f32x4_lt(a3, t)));
  return (unsigned short)~wasm_i8x16_bitmask(n);
}

// A float32 threshold t for the float32 keys a = x + (float)b such that
// a < t gives a float64 key k below g (g finite, above -2^120): a lies
// within 2^-23 |k| + 2 errB + 2^-140 of k (kept_groups_f32) and
// k - 2^-23 |k| increases with k, so k >= g gives
// a >= g - 2^-23 |g| - 2 errB - 2^-140; t is a float32 at or below that,
// the float64 rounding of each step (at most 2^-53 of |g| + 2 errB +
// 2^-140 plus the margin itself) covered by a margin of 2^-48 of it.
static float key_threshold(double g, double errB) {
  double t = g - 0x1p-23 * __builtin_fabs(g) - 2 * errB - 0x1p-140;
  t -= 0x1p-48 * (__builtin_fabs(g) + 2 * errB + 0x1p-140);
  float f = (float)t;
  return (double)f > t ? below(f) : f;
}

// The transpose of four float32x4 rows a, b, c, d into r0..r3 (r0: their
// lanes 0, and so on).
#define TRANSPOSE4(r0, r1, r2, r3, a, b, c, d)                                 \
  do {                                                                         \
    v128_t a_ = (a), b_ = (b), c_ = (c), d_ = (d);                             \
    v128_t lo_ = wasm_i32x4_shuffle(a_, b_, 0, 4, 1, 5);                       \
    v128_t lo2_ = wasm_i32x4_shuffle(c_, d_, 0, 4, 1, 5);                      \
    v128_t hi_ = wasm_i32x4_shuffle(a_, b_, 2, 6, 3, 7);                       \
    v128_t hi2_ = wasm_i32x4_shuffle(c_, d_, 2, 6, 3, 7);                      \
    r0 = wasm_i32x4_shuffle(lo_, lo2_, 0, 1, 4, 5);                            \
    r1 = wasm_i32x4_shuffle(lo_, lo2_, 2, 3, 6, 7);                            \
    r2 = wasm_i32x4_shuffle(hi_, hi2_, 0, 1, 4, 5);                            \
    r3 = wasm_i32x4_shuffle(hi_, hi2_, 2, 3, 6, 7);                            \
  } while (0)

// Most groups the float32 group choice takes (kept_groups_f32): its keep
// mask is one 64-bit word.
#define F32_GROUPS 64

// A group's float32 keys a0..a3 (16 entries) merged into their largest
// and second largest lane by lane (h >= l), a tournament: two pairs, then
// the pairs' winners and runners-up.
#define TOP2_OF4(h, l, a0, a1, a2, a3)                                        \
  do {                                                                         \
    v128_t h01_ = wasm_f32x4_pmax(a0, a1), l01_ = wasm_f32x4_pmin(a1, a0);    \
    v128_t h23_ = wasm_f32x4_pmax(a2, a3), l23_ = wasm_f32x4_pmin(a3, a2);    \
    h = wasm_f32x4_pmax(h01_, h23_);                                           \
    l = wasm_f32x4_pmax(wasm_f32x4_pmin(h23_, h01_),                           \
                        wasm_f32x4_pmax(l01_, l23_));                          \
  } while (0)

// One group's float32 keys a = x + (float)b: the largest and second
// largest lane by lane into m1 >= m2, the keys' sum into sum (NaN or
// +Infinity there unless the group holds neither), and with `fused` the
// near threshold's bits (16 a half-word, little-endian: the 64-bit words
// of pass64) against nearT into nearBits from the group's first entry.
static inline __attribute__((always_inline)) void
group_tops_f32(const float *x, const float *b, int size, int fused,
               v128_t nearT, half *nearBits, v128_t *m1,
               v128_t *m2, v128_t *sum) {
  v128_t none = wasm_f32x4_splat(-__builtin_inff());
  v128_t t1 = none, t2 = none, acc = *sum;
  int j = 0;
  for (; j + 16 <= size; j += 16) {
    v128_t a0 = wasm_f32x4_add(wasm_v128_load(x + j), wasm_v128_load(b + j));
    v128_t a1 =
        wasm_f32x4_add(wasm_v128_load(x + j + 4), wasm_v128_load(b + j + 4));
    v128_t a2 =
        wasm_f32x4_add(wasm_v128_load(x + j + 8), wasm_v128_load(b + j + 8));
    v128_t a3 = wasm_f32x4_add(wasm_v128_load(x + j + 12),
                               wasm_v128_load(b + j + 12));
    if (fused) nearBits[j >> 4] = pass16_keys(a0, a1, a2, a3, nearT);
    acc = wasm_f32x4_add(acc, wasm_f32x4_add(wasm_f32x4_add(a0, a1),
                                             wasm_f32x4_add(a2, a3)));
    v128_t h, l;
    TOP2_OF4(h, l, a0, a1, a2, a3);
    if (j == 0) {
      t1 = h;
      t2 = l;
    } else TOP2F(t1, t2, h, l);
  }
  for (; j + 4 <= size; j += 4) {
    v128_t a0 = wasm_f32x4_add(wasm_v128_load(x + j), wasm_v128_load(b + j));
    acc = wasm_f32x4_add(acc, a0);
    TOP2F(t1, t2, a0, none);
  }
  for (; j < size; j++) {
    // One key in lane 0, -Infinity elsewhere (the sum takes it alone).
    float a = x[j] + b[j];
    acc = wasm_f32x4_add(acc, wasm_f32x4_make(a, 0, 0, 0));
    TOP2F(t1, t2, wasm_f32x4_replace_lane(none, 0, a), none);
  }
  *m1 = t1;
  *m2 = t2;
  *sum = acc;
}

// The kept groups for P <= 2 and G <= F32_GROUPS from float32 keys
// a = x + (float)b against the float64 keys k = x + b. With errB the
// largest |b - (float)b| (the bias below 2^100 in magnitude), every a lies
// within eps(k) = 2^-23 |k| + 2 errB + 2^-140 of its k (float32 and
// float64 rounding; -Infinity on both sides), and v - eps(v), v + eps(v)
// are increasing, so they commute with order statistics: a group's i-th
// largest float32 key t is within eps of its i-th largest float64 key T,
// hence |t - T| <= 2^-22 |t| + 3 errB + 2^-139 (a float32 overflow to
// -Infinity only hides keys below -2^126, under a t checked to be above
// -2^120).
//
// The group scores in float32, four groups a vector: s = fl32(t1 + t2)
// (t2 = 0 for one key) lies within 2^-24 |t1 + t2| of t1 + t2, which lies
// within e1 + e2 (the bounds above) of T1 + T2, which lies within
// 2^-53 |T1 + T2| of the reference's float64 score fl64(T1 + T2): in all,
// within 2^-22 (|t1| + |t2|) + 2^-23 |s| + P (3 errB + 2^-139) + 2^-150
// of it (|t| < 2^120). The slack L = 2^-21 (|t1| + |t2|) + 2^-22 |s| +
// eB, with eB >= 2 P (3 errB + 2^-139) + 2^-137 (errTerm), is twice that,
// term by term; it is computed in float32 in four operations and the
// interval ends s - L, s + L in one more, each rounding within 2^-24 of
// its result (2^-150 absolute below 2^-126): five such roundings take
// less than the spare half of L's terms (those terms are at least
// 2^-22 |s| and 2^-137, and |s| < 2^121 keeps them finite). So the
// computed interval [s - L, s + L] holds the reference's score.
//
// A group's rank: the groups with a larger float32 score. Kept: rank
// below topGroups (exactly topGroups of them where no tie sits at the
// cut, else no decision here). When every kept group's interval lies
// strictly above every dropped one's, the float64 scores keep the same
// groups (strictly above: no tie to break). Returns 1 then, with the kept
// groups' bits in *keep (bit q: group q) and the smallest of the kept
// groups' P-th float32 top keys in *keptLow; 0 when they must be computed
// (exact_groups); -1 when the row may hold a NaN or +Infinity (then
// checked). With `fused`, the same pass writes the near threshold's bits
// (nearBits) from the float32 keys against nearF (key_threshold). Without
// a branch on the keys.
static inline __attribute__((always_inline)) int
kept_groups_f32(const float *row, const float *biasF, float eB, int G,
                int size, int P, int topGroups, Scratch *s, int fused,
                float nearF, u64 *keep, float *keptLow) {
  v128_t nearT = wasm_f32x4_splat(nearF);
  half *nearBits = (half *)s->nearBits;
  v128_t none = wasm_f32x4_splat(-__builtin_inff());
  // Sums of the keys, lane by lane: below +Infinity in every lane only
  // where the row holds no NaN and no +Infinity (either makes its sum NaN
  // or +Infinity; an overflow does too, then the row is checked).
  v128_t sum = wasm_f32x4_splat(0);
  // Each four groups' top keys t1 >= t2, a group a lane (-Infinity past
  // G): the four groups' lanes transposed and merged.
  v128_t T1[F32_GROUPS / 4], T2[F32_GROUPS / 4];
  int quads = (G + 3) >> 2;
  for (int c = 0; c < quads; c++) {
    v128_t m1[4], m2[4];
    for (int d = 0; d < 4; d++) {
      int q = 4 * c + d;
      if (q < G) {
        group_tops_f32(row + q * size, biasF + q * size, size, fused, nearT,
                       nearBits + ((q * size) >> 4), &m1[d], &m2[d], &sum);
      } else m1[d] = m2[d] = none;
    }
    v128_t r0, r1, r2, r3, s0, s1, s2, s3;
    TRANSPOSE4(r0, r1, r2, r3, m1[0], m1[1], m1[2], m1[3]);
    TRANSPOSE4(s0, s1, s2, s3, m2[0], m2[1], m2[2], m2[3]);
    TOP2F(r0, s0, r1, s1);
    TOP2F(r2, s2, r3, s3);
    TOP2F(r0, s0, r2, s2);
    T1[c] = r0;
    T2[c] = P == 2 ? s0 : wasm_f32x4_splat(0);
  }
  if (!wasm_i32x4_all_true(
          wasm_f32x4_lt(sum, wasm_f32x4_splat(__builtin_inff())))) {
    return -1;
  }
  // Scores and slack; every real group's tops far from overflow (and no
  // -Infinity among them), else no bound. Padding groups score -Infinity.
  v128_t S[F32_GROUPS / 4], L[F32_GROUPS / 4], real[F32_GROUPS / 4];
  v128_t far = wasm_i32x4_splat(-1), lim = wasm_f32x4_splat(0x1p120f);
  v128_t lane = wasm_i32x4_make(0, 1, 2, 3);
  for (int c = 0; c < quads; c++) {
    real[c] = wasm_i32x4_lt(lane, wasm_i32x4_splat(G - 4 * c));
    v128_t a1 = wasm_f32x4_abs(T1[c]), a2 = wasm_f32x4_abs(T2[c]);
    far = wasm_v128_and(
        far, wasm_v128_or(wasm_v128_not(real[c]),
                          wasm_v128_and(wasm_f32x4_lt(a1, lim),
                                        wasm_f32x4_lt(a2, lim))));
    v128_t sc = wasm_f32x4_add(T1[c], T2[c]);
    S[c] = wasm_v128_bitselect(sc, none, real[c]);
    L[c] = wasm_f32x4_add(
        wasm_f32x4_add(
            wasm_f32x4_mul(wasm_f32x4_splat(0x1p-21f), wasm_f32x4_add(a1, a2)),
            wasm_f32x4_mul(wasm_f32x4_splat(0x1p-22f), wasm_f32x4_abs(sc))),
        wasm_f32x4_splat(eB));
  }
  if (!wasm_i32x4_all_true(far)) return 0;
  // Ranks (minus the count of larger scores, lane by lane), the kept
  // lanes, the kept groups' lowest interval end against the dropped
  // groups' highest.
  v128_t lo = wasm_f32x4_splat(__builtin_inff()), hi = none;
  v128_t low = lo;
  int count = 0;
  u64 bits = 0;
  // Each quad's scores turned by one, two and three lanes: lane l of
  // S[c] meets every lane of S[e] in S[e] and its three turns, so its rank
  // counts the larger scores with 4 compares a quad (3 for its own quad: a
  // score is not larger than itself) instead of a broadcast and a compare
  // a score; 70 fewer instructions a row at V3's shape.
  v128_t R1[F32_GROUPS / 4], R2[F32_GROUPS / 4], R3[F32_GROUPS / 4];
  for (int e = 0; e < quads; e++) {
    v128_t v = S[e];
    R1[e] = wasm_i32x4_shuffle(v, v, 1, 2, 3, 0);
    R2[e] = wasm_i32x4_shuffle(v, v, 2, 3, 0, 1);
    R3[e] = wasm_i32x4_shuffle(v, v, 3, 0, 1, 2);
  }
  for (int c = 0; c < quads; c++) {
    v128_t x = S[c];
    v128_t rank = wasm_i32x4_add(
        wasm_f32x4_gt(R1[c], x),
        wasm_i32x4_add(wasm_f32x4_gt(R2[c], x), wasm_f32x4_gt(R3[c], x)));
    for (int e = 0; e < quads; e++) {
      if (e == c) continue;
      v128_t a =
          wasm_i32x4_add(wasm_f32x4_gt(S[e], x), wasm_f32x4_gt(R1[e], x));
      v128_t b =
          wasm_i32x4_add(wasm_f32x4_gt(R2[e], x), wasm_f32x4_gt(R3[e], x));
      rank = wasm_i32x4_add(rank, wasm_i32x4_add(a, b));
    }
    v128_t K = wasm_v128_and(
        real[c], wasm_i32x4_gt(rank, wasm_i32x4_splat(-topGroups)));
    u32 m = (u32)wasm_i32x4_bitmask(K);
    count += __builtin_popcount(m);
    bits |= (u64)m << (4 * c);
    lo = wasm_f32x4_pmin(lo, wasm_v128_bitselect(
                                 wasm_f32x4_sub(S[c], L[c]),
                                 wasm_f32x4_splat(__builtin_inff()), K));
    low = wasm_f32x4_pmin(
        low, wasm_v128_bitselect(P == 2 ? T2[c] : T1[c],
                                 wasm_f32x4_splat(__builtin_inff()), K));
    hi = wasm_f32x4_pmax(
        hi, wasm_v128_bitselect(none, wasm_f32x4_add(S[c], L[c]),
                                wasm_v128_or(K, wasm_v128_not(real[c]))));
  }
  lo = wasm_f32x4_pmin(lo, wasm_i32x4_shuffle(lo, lo, 2, 3, 0, 1));
  lo = wasm_f32x4_pmin(lo, wasm_i32x4_shuffle(lo, lo, 1, 0, 3, 2));
  hi = wasm_f32x4_pmax(hi, wasm_i32x4_shuffle(hi, hi, 2, 3, 0, 1));
  hi = wasm_f32x4_pmax(hi, wasm_i32x4_shuffle(hi, hi, 1, 0, 3, 2));
  low = wasm_f32x4_pmin(low, wasm_i32x4_shuffle(low, low, 2, 3, 0, 1));
  low = wasm_f32x4_pmin(low, wasm_i32x4_shuffle(low, low, 1, 0, 3, 2));
  *keep = bits;
  *keptLow = wasm_f32x4_extract_lane(low, 0);
  return count == topGroups &&
         wasm_f32x4_extract_lane(lo, 0) > wasm_f32x4_extract_lane(hi, 0);
}

// eB of kept_groups_f32: a float32 at or above 2 P (3 errB + 2^-139) +
// 2^-137 (errB below 2^100).
static float errTerm(double errB, int P) {
  double e = 2.0 * P * (3 * errB + 0x1p-139) + 0x1p-137;
  float f = (float)e;
  return (double)f < e ? -below(-f) : f;
}

// The kept groups from every group's exact score (scan_group2), ranked as
// the reference ranks them (ties to the lower group). The row holds no
// NaN or +Infinity.
static void exact_groups(const float *row, const double *bias, int G,
                         int size, int P, int topGroups, Scratch *s) {
  for (int q = 0; q < G; q++) scan_group2(row, bias, q, size, P, s);
  rank_groups(s, G, topGroups);
  for (int q = 0; q < G; q++) s->keep[q] = s->rank[q] < topGroups;
}

// The kept groups' entries as bits (64 a word), without a branch on which
// groups are kept.
static void kept_mask(const Scratch *s, int E, int G, int size, u64 *mask) {
  for (int w = 0; w <= (E - 1) >> 6; w++) mask[w] = 0;
  for (int q = 0; q < G; q++) {
    int lo = q * size, hi = lo + size;
    u64 all = -(u64)(s->keep[q] != 0);
    for (int w = lo >> 6; w <= (hi - 1) >> 6; w++) {
      int base = w << 6;
      u64 m = all;
      if (lo > base) m &= ~0ull << (lo - base);
      if (hi - base < 64) m &= (1ull << (hi - base)) - 1;
      mask[w] |= m;
    }
  }
}

// The entries of `bits` within `mask`, ascending, into cand; their number.
static int unpack_masked(const u64 *bits, const u64 *mask, int E, int *cand) {
  int c = 0;
  for (int j = 0, w = 0; j < E; j += 64, w++) {
    c = unpack(bits[w] & mask[w], j, cand, c);
  }
  return c;
}

// The kept groups' entries where !(a < t) for the float32 keys
// a = x + (float)b (t from key_threshold), 16 a half-word, zeros for the
// dropped groups (size a multiple of 16).
static void kept_bits_f32(const float *row, const float *biasF, float t,
                          int G, int size, u64 keep, half *bits) {
  v128_t T = wasm_f32x4_splat(t);
  for (int q = 0; q < G; q++) {
    int from = q * size, to = from + size;
    if (!(keep >> q & 1)) {
      for (int j = from; j < to; j += 16) bits[j >> 4] = 0;
      continue;
    }
    for (int j = from; j < to; j += 16) {
      const float *x = row + j, *b = biasF + j;
      bits[j >> 4] = pass16_keys(
          wasm_f32x4_add(wasm_v128_load(x), wasm_v128_load(b)),
          wasm_f32x4_add(wasm_v128_load(x + 4), wasm_v128_load(b + 4)),
          wasm_f32x4_add(wasm_v128_load(x + 8), wasm_v128_load(b + 8)),
          wasm_f32x4_add(wasm_v128_load(x + 12), wasm_v128_load(b + 12)), T);
    }
  }
}

// The keys of the entries of `bits` (64 a word; the row holds no NaN or
// +Infinity), indices ascending, those that reach g kept in candI/candV;
// their number.
static int keys_at(const float *row, const double *bias, const u64 *bits,
                   int E, double g, Scratch *s) {
  int c = 0;
  for (int w = 0; w << 6 < E; w++) c = unpack4(bits[w], w << 6, s->nearI, c);
  return exact(row, bias, s->nearI, c, g, s);
}

// keys_at over the kept groups' entries of `bits` only (bit q of keep:
// group q; 16 entries a half-word, size a multiple of 16), the groups in
// ascending order, each group's half-words joined 64 entries a word and
// unpacked: as many steps as kept groups, whichever they are. Unpacking
// the four words of the whole row with the dropped groups zeroed took 7%
// longer at 262144 x 256: how many steps a word takes (none for a word of
// dropped groups) is what the branch predictor could not learn.
static int kept_keys_at(const float *row, const double *bias,
                        const half *bits, u64 keep, int size, double g,
                        Scratch *s) {
  int c = 0;
  for (u64 m = keep; m; m &= m - 1) {
    int q = __builtin_ctzll(m), end = (q + 1) * size;
    for (int j = q * size; j < end; j += 64) {
      u64 w = 0;
      for (int h = 0; h < 4 && j + 16 * h < end; h++) {
        w |= (u64)bits[(j >> 4) + h] << (16 * h);
      }
      c = unpack4(w, j, s->nearI, c);
    }
  }
  return exact(row, bias, s->nearI, c, g, s);
}

// Group-limited rows for perGroup <= 2 (Megatron-Core's and DeepSeek-V3's
// settings), two thresholds on the kept groups' k-th key as in the
// ungrouped rows. Groups of a multiple of 16 entries: one pass over the
// row for the float32 group tops and the near threshold's bits from the
// float32 keys (kept_groups_f32, key_threshold); where fewer than k of the
// kept groups' candidates reach near, a second pass over the kept groups
// only, against the row's own threshold (below its k-th kept key) where
// the kept groups' tops number k or more, else the low one. Other sizes:
// the per-expert bounds' pass (pass64) first. The kept groups from the
// float32 group scores with an error bound, from the float64 scores where
// the bound leaves the choice open (exact_groups); the top k among the
// kept groups' candidates, the reference where fewer than k reach the
// second threshold. Inlined twice by grouped_rows2.
static inline __attribute__((always_inline)) int
grouped_rows2_of(const float *scores, int rows, int E, int k,
                 const double *bias, int normalize, double scale, int G,
                 int topGroups, int P, int *outE, float *outW, int *loads,
                 double *st, Scratch *s) {
  int size = E / G;
  // The bias in float32 and how far it is from the float64 bias; no
  // float32 keys for a bias of 2^100 or more.
  double errB = 0;
  int useF32 = 1;
  for (int j = 0; j < E; j++) {
    float f = (float)bias[j];
    s->biasF[j] = f;
    double d = __builtin_fabs(bias[j] - (double)f);
    errB = d > errB ? d : errB;
    useF32 &= __builtin_fabs(bias[j]) < 0x1p100;
  }
  useF32 &= G <= F32_GROUPS;
  float eB = errTerm(errB, P);
  // Half-words past the row's last (up to a whole word) stay zero.
  for (int j = E; j < ((E + 63) & ~63); j += 16) {
    ((half *)s->nearBits)[j >> 4] = 0;
    ((half *)s->lowBits)[j >> 4] = 0;
  }
  // The thresholds, refreshed from the running state once per
  // REFRESH_ROWS rows (at the call's first row) while they allow the fused
  // pass, else at every row: a row's pass does not wait for the rows
  // before it (any threshold gives the same answers).
  double fusedLow = 0, fusedNear = 0;
  float lowF = 0, nearF = 0;
  int fused = 0;
  for (int i = 0; i < rows; i++) {
    const float *row = scores + (long)i * E;
    if (!fused || i % REFRESH_ROWS == 0) {
      fusedLow = st[ST_MEAN] - LOW_MARGIN * st[ST_DEV];
      fusedNear = st[ST_MEAN] - GROUP_NEAR_MARGIN * st[ST_DEV];
      // One pass for the group tops and both thresholds' bits (float32
      // keys against one threshold each), else a pass of per-expert
      // bounds first.
      fused = useF32 && size % 16 == 0 && fusedLow > -0x1p120 &&
              fusedNear < INF;
      if (fused) {
        lowF = key_threshold(fusedLow, errB);
        nearF = key_threshold(fusedNear, errB);
      }
    }
    double low = fusedLow, near = fusedNear;
    if (!fused) {
      low = bounds_for(st + ST_LOW_G, low, i, s->lowBound, bias, E);
      near = bounds_for(st + ST_NEAR_G, near, i, s->nearBound, bias, E);
    }
    int n = -1;
    if (low > -INF && near > -INF) {
      if (!fused) {
        for (int j = 0, w = 0; j < E; j += 64, w++) {
          s->lowBits[w] = pass64(row + j, s->lowBound + j, E - j);
          s->nearBits[w] = pass64(row + j, s->nearBound + j, E - j);
        }
      }
      u64 keep = 0;
      float keptLow = 0;
      // kept_groups_f32 inlined twice, `fused` a constant in each: a
      // branch on it in the pass over each group cost V8 3-5% of the
      // grouped rows' time at 262144 x 256.
      int kept = !useF32 ? 0
                 : fused   ? kept_groups_f32(row, s->biasF, eB, G, size, P,
                                             topGroups, s, 1, nearF, &keep,
                                             &keptLow)
                           : kept_groups_f32(row, s->biasF, eB, G, size, P,
                                             topGroups, s, 0, nearF, &keep,
                                             &keptLow);
      if (kept <= 0) {
        int bad = first_bad(row, E);
        if (bad >= 0) return i * E + bad;
        exact_groups(row, bias, G, size, P, topGroups, s);
        if (fused) {
          keep = 0;
          for (int q = 0; q < G; q++) keep |= (u64)(s->keep[q] != 0) << q;
        }
      } else if (!fused) {
        for (int q = 0; q < G; q++) s->keep[q] = (int)(keep >> q & 1);
      }
      if (fused) {
        // The near bits of the kept groups; the low ones where fewer than
        // k of those reach near.
        n = kept_keys_at(row, bias, (half *)s->nearBits, keep, size, near,
                         s);
        if (n < k) {
          // The low threshold; where the kept groups' top keys number k
          // or more, the row's own: the smallest of those tops less its
          // error bound (kept_groups_f32) is a float64 key at or below
          // the k-th kept key, so k or more keys reach it (no reference).
          double g = low;
          float t = lowF;
          if (kept > 0 && P * topGroups >= k) {
            double m = (double)keptLow;
            double gr = m - (0x1p-21 * __builtin_fabs(m) + 4 * errB + 0x1p-138);
            if (gr > -0x1p120) {
              g = gr;
              t = key_threshold(gr, errB);
            }
          }
          kept_bits_f32(row, s->biasF, t, G, size, keep,
                        (half *)s->lowBits);
          n = keys_at(row, bias, s->lowBits, E, g, s);
        }
      } else {
        kept_mask(s, E, G, size, s->keptBits);
        n = unpack_masked(s->nearBits, s->keptBits, E, s->nearI);
        n = exact(row, bias, s->nearI, n, near, s);
        if (n < k) {
          n = unpack_masked(s->lowBits, s->keptBits, E, s->nearI);
          n = exact(row, bias, s->nearI, n, low, s);
        }
      }
    }
    if (n >= k) select_top(s->candV, s->candI, n, k, s);
    else {
      int bad = reference_row(row, E, k, bias, 0, G, topGroups, P, st, s, 0);
      if (bad >= 0) return i * E + bad;
    }
    track(st, s->topV[k - 1]);
    write_selection(row, s->topI, k, outE + (long)i * k, outW + (long)i * k,
                    loads, normalize, scale);
  }
  return -1;
}

// grouped_rows2_of compiled for DeepSeek-V3's shape (256 experts, 8
// groups of 32, 4 kept, a group scored by its top two keys, k = 8) with
// those numbers as constants, the loops over groups, over a group's keys
// and over the k selected unrolled: about a tenth less CPU time a row in
// V8 at 262144 x 256 (the ungrouped rows gain little from the same); any
// other shape as given, the same answers.
static int grouped_rows2(const float *scores, int rows, int E, int k,
                         const double *bias, int normalize, double scale,
                         int G, int topGroups, int P, int *outE, float *outW,
                         int *loads, double *st, Scratch *s) {
  if (E == 256 && k == 8 && G == 8 && topGroups == 4 && P == 2) {
    return grouped_rows2_of(scores, rows, 256, 8, bias, normalize, scale, 8,
                            4, 2, outE, outW, loads, st, s);
  }
  return grouped_rows2_of(scores, rows, E, k, bias, normalize, scale, G,
                          topGroups, P, outE, outW, loads, st, s);
}

static int grouped_rows(const float *scores, int rows, int E, int k,
                        const double *bias, int multiply, int normalize,
                        double scale, int G, int topGroups, int P, int *outE,
                        float *outW, int *loads, double *st, Scratch *s) {
  for (int i = 0; i < rows; i++) {
    const float *row = scores + (long)i * E;
    int done = FALLBACK;
    if (!multiply) {
      double g = bounds_for(st + ST_LOW_G,
                            st[ST_MEAN] - GROUP_MARGIN * st[ST_DEV], i,
                            s->lowBound, bias, E);
      if (g > -INF) {
        int n = filter(row, s->lowBound, E, s->nearI);
        n = exact(row, bias, s->nearI, n, g, s);
        if (n <= -3) return i * E + (-3 - n);
        if (n >= k) {
          done = grouped_row(row, E, k, bias, G, topGroups, P, g, n, st, s);
        }
      }
    }
    if (done == FALLBACK) {
      int bad = reference_row(row, E, k, bias, multiply, G, topGroups, P, st,
                              s, 1);
      if (bad >= 0) return i * E + bad;
    }
    write_selection(row, s->topI, k, outE + (long)i * k, outW + (long)i * k,
                    loads, normalize, scale);
  }
  return -1;
}

// Routes `rows` rows of `scores` (rows x E float32, 16-byte aligned):
// experts into outE and weights into outW (rows x k), counts added to
// loads (E). `bias` holds E float64 (zeros for none; `multiply` only with
// a bias); groups > 1 with topGroups < groups routes group-limited, a
// group scored by the sum of its perGroup largest keys. `st` (ST_SIZE
// float64, NaN-filled at the start of a batch) carries the running
// threshold from one block of rows to the next; `scratch` holds
// moelab_route_scratch_bytes bytes. Returns -1, or the flat index (from
// `scores`) of the first NaN or +Infinity score met: the lowest index of
// the first row holding one (routing stops there).
__attribute__((export_name("moelab_route_rows"))) int
moelab_route_rows(const float *scores, int rows, int E, int k,
                  const double *bias, int multiply, int normalize,
                  double scale, int groups, int topGroups, int perGroup,
                  int *outE, float *outW, int *loads, double *st,
                  char *scratch) {
  Scratch s;
  layout(&s, (uptr)scratch, E, k, groups, perGroup);
  if (groups > 1 && topGroups < groups && perGroup <= 2 && !multiply) {
    return grouped_rows2(scores, rows, E, k, bias, normalize, scale, groups,
                         topGroups, perGroup, outE, outW, loads, st, &s);
  }
  if (groups > 1 && topGroups < groups) {
    return grouped_rows(scores, rows, E, k, bias, multiply, normalize, scale,
                        groups, topGroups, perGroup, outE, outW, loads, st,
                        &s);
  }
  return ungrouped_rows(scores, rows, E, k, bias, multiply, normalize, scale,
                        outE, outW, loads, st, &s, 0, 0);
}

// moelab_route_rows for ungrouped rows with an additive bias that also
// keeps each row's (k + 1)-th key (Quantile Balancing's a[i], lib/ops/
// quantile_step.ts routeKeepingNext): into next[i], tracked in `stats`
// (two float64, lib/select/top.ts trackRowValue, carried from call to
// call). Needs k < E; `scratch` holds moelab_route_scratch_bytes(E, k + 1,
// 1, 1) bytes. The experts, weights and loads are those of
// moelab_route_rows with the same arguments.
__attribute__((export_name("moelab_route_rows_next"))) int
moelab_route_rows_next(const float *scores, int rows, int E, int k,
                       const double *bias, int normalize, double *next,
                       double *stats, int *outE, float *outW, int *loads,
                       double *st, char *scratch) {
  Scratch s;
  layout(&s, (uptr)scratch, E, k + 1, 1, 1);
  return ungrouped_rows(scores, rows, E, k, bias, 0, normalize, 1.0, outE,
                        outW, loads, st, &s, next, stats);
}
