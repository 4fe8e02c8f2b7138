// The top-K inner loop of the fast CPU path: one pass over each row that
// adds the bias and compares with the current k-th largest before any
// insertion (the threshold pre-filter), with no row copy. Same answers as
// routeInto (route.ts) bit for bit: keys are computed in float64 as there,
// the first k entries fill the list whatever their value, later ones enter
// only when strictly larger than the k-th, so ties keep the lowest index.

/** Settings of {@linkcode routeRows}, already validated. */
export interface RowSettings {
  /** Per-expert bias (experts), or `undefined` for none. */
  bias: Float64Array | undefined;
  /** Select on `s * b` instead of `s + b`. */
  multiply: boolean;
  /** Normalise the weights over the selected experts. */
  normalize: boolean;
  /** Factor on the weights. */
  scale: number;
}

/**
 * Routes rows `[from, to)` of `data` (tokens x experts) into `outE` and
 * `outW` (tokens x k) and adds their counts to `loads`. `topV`, `topI`
 * are scratch of length `k`.
 */
export function routeRows(
  data: Float32Array,
  E: number,
  k: number,
  s: RowSettings,
  from: number,
  to: number,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
  topV: Float64Array,
  topI: Int32Array,
): void {
  const bias = s.bias;
  const last = k - 1;
  for (let i = from; i < to; i++) {
    const base = i * E;
    // The first k entries fill the list whatever their value.
    for (let j = 0; j < k; j++) {
      const x = data[base + j];
      insert(
        topV,
        topI,
        j,
        bias === undefined ? x : s.multiply ? x * bias[j] : x + bias[j],
        j,
      );
    }
    // Then only entries above the k-th largest get in; one loop per bias
    // mode keeps the scan free of branches other than the comparison.
    let th = topV[last];
    if (bias === undefined) {
      for (let j = k; j < E; j++) {
        const v = data[base + j];
        if (v > th) th = insert(topV, topI, last, v, j);
      }
    } else if (!s.multiply) {
      for (let j = k; j < E; j++) {
        const v = data[base + j] + bias[j];
        if (v > th) th = insert(topV, topI, last, v, j);
      }
    } else {
      for (let j = k; j < E; j++) {
        const v = data[base + j] * bias[j];
        if (v > th) th = insert(topV, topI, last, v, j);
      }
    }
    const o = i * k;
    let sum = 0;
    for (let r = 0; r < k; r++) {
      const j = topI[r];
      const x = data[base + j];
      const w = x > -Infinity ? x : 0;
      outE[o + r] = j;
      outW[o + r] = w;
      sum += w;
      loads[j]++;
    }
    if (s.normalize && sum > 0) {
      const f = s.scale / sum;
      for (let r = 0; r < k; r++) outW[o + r] *= f;
    } else if (s.scale !== 1) {
      for (let r = 0; r < k; r++) outW[o + r] *= s.scale;
    }
  }
}

/**
 * Inserts `v` (expert `j`) at position `p` or above in the descending list,
 * dropping the entry at `p`; equal values stay ahead. Returns the last
 * entry of the list afterwards.
 */
function insert(
  topV: Float64Array,
  topI: Int32Array,
  p: number,
  v: number,
  j: number,
): number {
  const last = topV.length - 1;
  while (p > 0 && v > topV[p - 1]) {
    topV[p] = topV[p - 1];
    topI[p] = topI[p - 1];
    p--;
  }
  topV[p] = v;
  topI[p] = j;
  return topV[last];
}
