// Order statistics of a column (an expert over tokens): quickselect, and
// the threshold that keeps exactly `keep` values with the earliest ties.

/**
 * Of `vals[0, n)`, the `keep`-th largest `t` and how many of the values
 * equal to `t` are kept so that exactly `keep` are (the callers keep the
 * earliest ties). Reorders `vals`.
 */
export function keepThreshold(
  vals: Float64Array,
  n: number,
  keep: number,
): [number, number] {
  const t = selectAscending(vals, 0, n, n - keep);
  let above = 0;
  for (let r = 0; r < n; r++) if (vals[r] > t) above++;
  return [t, keep - above];
}

/**
 * The element of ascending rank `m` (0-based) of `buf[lo, hi)`, by
 * quickselect (Hoare partition, median-of-three pivot): expected
 * `O(hi - lo)`. Reorders the range in place.
 */
export function selectAscending(
  buf: Float64Array,
  lo: number,
  hi: number,
  m: number,
): number {
  let l = lo, r = hi - 1;
  const target = lo + m;
  while (r > l) {
    if (r - l < 16) {
      // Insertion sort on short ranges.
      for (let a = l + 1; a <= r; a++) {
        const v = buf[a];
        let b = a - 1;
        while (b >= l && buf[b] > v) {
          buf[b + 1] = buf[b];
          b--;
        }
        buf[b + 1] = v;
      }
      return buf[target];
    }
    const mid = (l + r) >>> 1;
    // Median of three without temporaries.
    const a = buf[l], b = buf[mid], c = buf[r];
    const pivot = a < b
      ? (b < c ? b : a < c ? c : a)
      : (a < c ? a : b < c ? c : b);
    let i = l, j = r;
    while (i <= j) {
      while (buf[i] < pivot) i++;
      while (buf[j] > pivot) j--;
      if (i <= j) {
        const t = buf[i];
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
