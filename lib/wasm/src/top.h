// Descending top lists of float64 keys with their indices, and the row
// filter's running guess, shared by the route kernel (route.c), the dual
// rounds (dual.c) and the exact solver's row selection (select.c): the
// insertion of lib/select/top.ts insert and its trackRowValue.
#ifndef MOELAB_TOP_H
#define MOELAB_TOP_H

// Inserts v (index j) at position p or above of the descending list V, I,
// equal values staying ahead; returns the list's last value (at `last`).
static inline double insert(double *V, int *I, int last, int p, double v,
                            int j) {
  while (p > 0 && v > V[p - 1]) {
    V[p] = V[p - 1];
    I[p] = I[p - 1];
    p--;
  }
  V[p] = v;
  I[p] = j;
  return V[last];
}

// Adds a row's value to a running mean (st[0], NaN before the first) and
// mean deviation (st[1]); values that are not finite are left out.
// lib/select/top.ts trackRowValue.
static inline void track_row_value(double *st, double v) {
  if (!(v - v == 0.0)) return;
  if (st[0] != st[0]) st[0] = v;
  double d = v - st[0];
  st[0] += d / 16.0;
  st[1] += (__builtin_fabs(d) - st[1]) / 16.0;
}

#endif
