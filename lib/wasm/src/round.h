// Float64 thresholds rounded to float32 on the safe side, shared by the
// dual rounds (dual.c) and the exact solver's certificate (select.c).
#ifndef MOELAB_ROUND_H
#define MOELAB_ROUND_H

// The largest float32 at or below `t` (t not NaN).
static inline float round_down_f32(double t) {
  float f = (float)t;
  if ((double)f <= t) return f;
  union {
    float f;
    unsigned u;
  } b = {f};
  if (f > 0) b.u -= 1;
  else if (f == 0) b.u = 0x80000001u; // -(smallest subnormal)
  else b.u += 1;
  return b.f;
}

#endif
