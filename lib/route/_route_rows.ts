// The top-K inner loop of the fast CPU path. Same answers as routeInto
// (route.ts) bit for bit: keys in float64 as there, top k by (key
// descending, index ascending). Two pre-filters keep most entries out of
// the insertion: a guessed threshold from the previous row (entries below
// it are skipped when at least k pass), and the current k-th largest
// during a full scan. No row copy, no allocation per token.

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
 * are scratch of length `k`. Returns the flat index of the first NaN or
 * `+Infinity` score met (routing stops there), or -1: the scores need no
 * separate validating pass.
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
): number {
  const bias = s.bias;
  const last = k - 1;
  // Candidates of one row: entries at or above a guessed threshold `g`,
  // a running mean of the rows' k-th largest values less four running
  // mean deviations. When at least k entries pass, the top k are among
  // them and the exact selection runs on the candidates only; otherwise
  // the row is scanned in full. Either way the answer is exact.
  const candV = new Float64Array(E);
  const candI = new Int32Array(E);
  let mean = NaN, dev = 0;
  for (let i = from; i < to; i++) {
    const base = i * E;
    let c = 0;
    const g = mean - 4 * dev;
    if (g > -Infinity && !s.multiply) {
      // NaN fails every comparison: the else branch finds it; +Infinity
      // passes the filter and is found among the candidates.
      if (bias === undefined) {
        for (let j = 0; j < E; j++) {
          const v = data[base + j];
          if (v >= g) {
            candV[c] = v;
            candI[c++] = j;
          } else if (v !== v) return base + j;
        }
      } else {
        for (let j = 0; j < E; j++) {
          const v = data[base + j] + bias[j];
          if (v >= g) {
            candV[c] = v;
            candI[c++] = j;
          } else if (v !== v) return base + j;
        }
      }
      for (let r = 0; r < c; r++) {
        if (candV[r] === Infinity) return base + candI[r];
      }
    }
    if (c >= k) {
      for (let r = 0; r < k; r++) insert(topV, topI, r, candV[r], candI[r]);
      let th = topV[last];
      for (let r = k; r < c; r++) {
        const v = candV[r];
        if (v > th) th = insert(topV, topI, last, v, candI[r]);
      }
    } else {
      const bad = scanRow(data, base, E, k, s, topV, topI);
      if (bad >= 0) return bad;
    }
    const kth = topV[last];
    if (Number.isFinite(kth)) {
      if (mean !== mean) mean = kth;
      const d = kth - mean;
      mean += d / 16;
      dev += (Math.abs(d) - dev) / 16;
    }
    writeSelection(
      data,
      base,
      topI,
      k,
      i * k,
      outE,
      outW,
      loads,
      s.normalize,
      s.scale,
    );
  }
  return -1;
}

/**
 * Writes one token's `k` selected experts (`topI`) at `o` in `outE`, their
 * gate weights from the unbiased scores (`-Infinity` as 0; normalised to
 * sum `scale` when `normalize`, else times `scale`) in `outW`, and counts
 * them in `loads`.
 */
export function writeSelection(
  data: Float32Array,
  base: number,
  topI: Int32Array,
  k: number,
  o: number,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
  normalize: boolean,
  scale: number,
): void {
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
  if (normalize && sum > 0) {
    const f = scale / sum;
    for (let r = 0; r < k; r++) outW[o + r] *= f;
  } else if (scale !== 1) {
    for (let r = 0; r < k; r++) outW[o + r] *= scale;
  }
}

/** Rows per block that a thread claims at a time in {@linkcode routeBlocks}. */
export const BLOCK_ROWS = 1024;

/**
 * Routes blocks of rows `[0, tokens)` claimed one at a time from the shared
 * counter `counter[cell]` (Atomics.add) until none are left. Threads that
 * get less of a core (cores shared with other work) simply claim fewer
 * blocks, so no thread waits for a slow one. Returns the flat index of a
 * NaN or `+Infinity` score met, or -1.
 */
export function routeBlocks(
  counter: Int32Array,
  cell: number,
  data: Float32Array,
  E: number,
  k: number,
  s: RowSettings,
  tokens: number,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
): number {
  const topV = new Float64Array(k), topI = new Int32Array(k);
  for (;;) {
    const lo = Atomics.add(counter, cell, 1) * BLOCK_ROWS;
    if (lo >= tokens) return -1;
    const hi = Math.min(tokens, lo + BLOCK_ROWS);
    const bad = routeRows(data, E, k, s, lo, hi, outE, outW, loads, topV, topI);
    if (bad >= 0) return bad;
  }
}

/**
 * Inserts `v` (expert `j`) at position `p` or above in the descending list,
 * dropping the entry at `p`; equal values stay ahead. Returns the last
 * entry of the list afterwards.
 */
export function insert(
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

/**
 * The full scan of one row (the first k fill the list, then a threshold).
 * Returns the flat index of a NaN or `+Infinity` score, or -1.
 */
function scanRow(
  data: Float32Array,
  base: number,
  E: number,
  k: number,
  s: RowSettings,
  topV: Float64Array,
  topI: Int32Array,
): number {
  const bias = s.bias;
  const last = k - 1;
  for (let j = 0; j < k; j++) {
    const x = data[base + j];
    if (x !== x || x === Infinity) return base + j;
    insert(
      topV,
      topI,
      j,
      bias === undefined ? x : s.multiply ? x * bias[j] : x + bias[j],
      j,
    );
  }
  // One loop per bias mode keeps the scan free of other branches. A NaN
  // key fails `v > th` and is caught by the else branch; a key of
  // +Infinity enters the list and is checked there.
  let th = topV[last];
  if (bias === undefined) {
    for (let j = k; j < E; j++) {
      const v = data[base + j];
      if (v > th) th = insert(topV, topI, last, v, j);
      else if (v !== v) return base + j;
    }
  } else if (!s.multiply) {
    for (let j = k; j < E; j++) {
      const v = data[base + j] + bias[j];
      if (v > th) th = insert(topV, topI, last, v, j);
      else if (v !== v) return base + j;
    }
  } else {
    for (let j = k; j < E; j++) {
      const x = data[base + j];
      const v = x * bias[j];
      if (v > th) th = insert(topV, topI, last, v, j);
      else if (x !== x || x === Infinity) return base + j;
    }
  }
  for (let r = 0; r < k; r++) {
    const x = data[base + topI[r]];
    if (x === Infinity) return base + topI[r];
  }
  return -1;
}
