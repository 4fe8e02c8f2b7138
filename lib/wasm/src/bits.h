// Bit masks of a row's entries unpacked into index lists, shared by the
// route kernel (route.c) and the dual rounds (dual.c).
#ifndef MOELAB_BITS_H
#define MOELAB_BITS_H

// Appends the indices `j + b` of the set bits b of `w`, ascending, to
// cand[c...], four at a time, without a branch per set bit: the first
// four always (the usual case of a few set bits takes no branch on their
// count), four more while any are left. Up to four entries past the count
// are written too (garbage, overwritten by the next ones or left past the
// list's end), so `cand` must hold 4 more than the entries. Returns c plus
// the count.
static inline int unpack4(unsigned long long w, int j, int *cand, int c) {
  int m = __builtin_popcountll(w);
  int r = 0;
  do {
    // w | 1 << 63: a defined ctz once w is spent.
    cand[c + r] = j + __builtin_ctzll(w | 1ull << 63);
    w &= w - 1;
    cand[c + r + 1] = j + __builtin_ctzll(w | 1ull << 63);
    w &= w - 1;
    cand[c + r + 2] = j + __builtin_ctzll(w | 1ull << 63);
    w &= w - 1;
    cand[c + r + 3] = j + __builtin_ctzll(w | 1ull << 63);
    w &= w - 1;
    r += 4;
  } while (r < m);
  return c + m;
}

#endif
