// The per-token problem of the Lagrangian bound under a group limit:
// the best k distinct experts from at most M groups of s - q, by dynamic
// programming over the groups (docs/algorithms.md section 5).

/** The per-token problem of the Lagrangian bound, with its scratch. */
export interface GroupDp {
  /** Experts per group. */
  readonly size: number;
  /**
   * The largest sum of `s[row + j] - q[j]` over `k` distinct unmasked
   * experts from at most `M` groups (`-Infinity` if none); `allowed[g]` is
   * set to 1 for the groups of an optimal set, completed to `M` groups by
   * their best entry, 0 for the others.
   */
  solve(
    s: Float32Array,
    row: number,
    q: ArrayLike<number>,
    allowed: Uint8Array,
  ): number;
}

/**
 * Builds the dynamic programme over groups: `best[m][t]` is the largest
 * sum of `t` entries taken from `m` of the groups seen so far, each group
 * giving its top entries (`prefix[g][c]`: the sum of its top `c`).
 */
export function groupDp(E: number, G: number, M: number, k: number): GroupDp {
  const size = E / G;
  const top = Math.min(k, size);
  // prefix[g * (top + 1) + c]: the sum of group g's top c entries.
  const prefix = new Float64Array(G * (top + 1));
  const count = new Int32Array(G);
  const head = new Float64Array(G);
  const vals = new Float64Array(top);
  const stride = k + 1;
  const best = new Float64Array((M + 1) * stride);
  // take[(g * (M + 1) + m) * stride + t]: entries from group g in best[m][t].
  const take = new Int32Array(G * (M + 1) * stride);
  return {
    size,
    solve(s, row, q, allowed) {
      for (let g = 0; g < G; g++) {
        let n = 0;
        for (let j = g * size; j < (g + 1) * size; j++) {
          const v = s[row + j] - q[j];
          if (v === -Infinity) continue;
          if (n < top) n++;
          else if (v <= vals[top - 1]) continue;
          let at = n - 1;
          while (at > 0 && vals[at - 1] < v) {
            vals[at] = vals[at - 1];
            at--;
          }
          vals[at] = v;
        }
        count[g] = n;
        head[g] = n > 0 ? vals[0] : -Infinity;
        const base = g * (top + 1);
        prefix[base] = 0;
        for (let c = 0; c < n; c++) {
          prefix[base + c + 1] = prefix[base + c] + vals[c];
        }
      }
      best.fill(-Infinity);
      best[0] = 0;
      for (let g = 0; g < G; g++) {
        const base = g * (top + 1);
        for (let m = M; m >= 1; m--) {
          const here = m * stride, before = (m - 1) * stride;
          const chosen = (g * (M + 1) + m) * stride;
          for (let t = k; t >= 1; t--) {
            let v = best[here + t], c0 = 0;
            const most = Math.min(t, count[g]);
            for (let c = 1; c <= most; c++) {
              const w = best[before + t - c] + prefix[base + c];
              if (w > v) {
                v = w;
                c0 = c;
              }
            }
            best[here + t] = v;
            take[chosen + t] = c0;
          }
        }
      }
      let m = 0, value = -Infinity;
      for (let x = 0; x <= M; x++) {
        if (best[x * stride + k] > value) {
          value = best[x * stride + k];
          m = x;
        }
      }
      allowed.fill(0);
      if (value === -Infinity) return value;
      let used = 0;
      for (let g = G - 1, t = k; g >= 0 && t > 0; g--) {
        const c = take[(g * (M + 1) + m) * stride + t];
        if (c > 0) {
          allowed[g] = 1;
          used++;
          m--;
          t -= c;
        }
      }
      // Complete to M groups: more room can only help the restricted solve.
      while (used < M) {
        let at = -1;
        for (let g = 0; g < G; g++) {
          if (!allowed[g] && count[g] > 0 && (at < 0 || head[g] > head[at])) {
            at = g;
          }
        }
        if (at < 0) break;
        allowed[at] = 1;
        used++;
      }
      return value;
    },
  };
}
