// Descending top lists of float64 keys with their indices, shared by the
// route kernel (route.c) and the exact solver's row selection (select.c):
// the insertion of lib/select/top.ts insert.
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

#endif
