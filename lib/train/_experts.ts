// The experts of the MoE layer: each a feed-forward net d -> h -> d with a
// ReLU, y[i] = x[i] + sum_k gate[i][k] * FFN_{sel[i][k]}(x[i]) + FFN_shared(x[i]).
import type { MoeParams, ResolvedModelConfig } from "./model.ts";

/** Forward buffers of the experts for a batch of `n` tokens. */
export interface ExpertBuffers {
  /** Pre-activations of each selected expert, `(N x K x hidden)`. */
  a: Float64Array;
  /** Outputs of each selected expert, `(N x K x dim)`. */
  o: Float64Array;
  /** Pre-activations of the shared expert, `(N x sharedHidden)`. */
  sa: Float64Array;
  /** Scratch of length `max(hidden, sharedHidden)`. */
  dh: Float64Array;
}

/** Allocates {@linkcode ExpertBuffers} for `n` tokens. */
export function expertBuffers(
  c: ResolvedModelConfig,
  n: number,
): ExpertBuffers {
  return {
    a: new Float64Array(n * c.topK * c.hidden),
    o: new Float64Array(n * c.topK * c.dim),
    sa: new Float64Array(n * c.sharedHidden),
    dh: new Float64Array(Math.max(c.hidden, c.sharedHidden)),
  };
}

// One FFN on one vector: a = W1 x + b1, out = W2 relu(a) + b2.
function ffn(
  w1: Float64Array,
  b1: Float64Array,
  w2: Float64Array,
  b2: Float64Array,
  e: number,
  h: number,
  d: number,
  x: Float64Array,
  xb: number,
  a: Float64Array,
  ab: number,
  out: Float64Array,
  ob: number,
): void {
  for (let u = 0; u < h; u++) {
    let acc = b1[e * h + u];
    const wb = (e * h + u) * d;
    for (let m = 0; m < d; m++) acc += w1[wb + m] * x[xb + m];
    a[ab + u] = acc;
  }
  for (let o = 0; o < d; o++) {
    let acc = b2[e * d + o];
    const wb = (e * d + o) * h;
    for (let u = 0; u < h; u++) {
      const v = a[ab + u];
      if (v > 0) acc += w2[wb + u] * v;
    }
    out[ob + o] = acc;
  }
}

// Backward of one FFN for an output gradient `go` (times `scale`).
function ffnBackward(
  p: [Float64Array, Float64Array, Float64Array],
  g: [Float64Array, Float64Array, Float64Array, Float64Array],
  e: number,
  h: number,
  d: number,
  x: Float64Array,
  xb: number,
  a: Float64Array,
  ab: number,
  go: Float64Array,
  gb: number,
  scale: number,
  dx: Float64Array,
  dh: Float64Array,
): void {
  const [w1, , w2] = p;
  const [gw1, gb1, gw2, gb2] = g;
  for (let u = 0; u < h; u++) dh[u] = 0;
  for (let o = 0; o < d; o++) {
    const v = go[gb + o] * scale;
    if (v === 0) continue;
    gb2[e * d + o] += v;
    const wb = (e * d + o) * h;
    for (let u = 0; u < h; u++) {
      const au = a[ab + u];
      if (au > 0) {
        gw2[wb + u] += v * au;
        dh[u] += v * w2[wb + u];
      }
    }
  }
  for (let u = 0; u < h; u++) {
    const v = dh[u];
    if (v === 0 || a[ab + u] <= 0) continue;
    gb1[e * h + u] += v;
    const wb = (e * h + u) * d;
    for (let m = 0; m < d; m++) {
      gw1[wb + m] += v * x[xb + m];
      dx[xb + m] += v * w1[wb + m];
    }
  }
}

/** Experts forward: writes `y: (N x dim)` and fills the buffers. */
export function expertsForward(
  p: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  x: Float64Array,
  sel: Int32Array,
  gate: Float64Array,
  buf: ExpertBuffers,
  y: Float64Array,
): void {
  const K = c.topK, h = c.hidden, d = c.dim, hs = c.sharedHidden;
  const { a, o, sa } = buf;
  for (let i = 0; i < n; i++) {
    const xb = i * d;
    if (hs > 0) {
      // The shared expert writes y first; the residual and the routed
      // experts are added on top.
      ffn(p.sw1, p.sb1, p.sw2, p.sb2, 0, hs, d, x, xb, sa, i * hs, y, xb);
      for (let m = 0; m < d; m++) y[xb + m] += x[xb + m];
    } else {
      for (let m = 0; m < d; m++) y[xb + m] = x[xb + m];
    }
    for (let k = 0; k < K; k++) {
      const slot = i * K + k;
      if (sel[slot] < 0) continue; // dropped: the residual carries the token
      ffn(
        p.w1,
        p.b1,
        p.w2,
        p.b2,
        sel[slot],
        h,
        d,
        x,
        xb,
        a,
        slot * h,
        o,
        slot * d,
      );
      const gk = gate[slot];
      for (let m = 0; m < d; m++) y[xb + m] += gk * o[slot * d + m];
    }
  }
}

/**
 * Experts backward from `dy: (N x dim)`: writes `dx: (N x dim)`
 * (the residual path plus every expert's input gradient) and
 * `dgate: (N x K)`, and accumulates the experts' parameter gradients.
 */
export function expertsBackward(
  p: MoeParams,
  g: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  x: Float64Array,
  sel: Int32Array,
  gate: Float64Array,
  buf: ExpertBuffers,
  dy: Float64Array,
  dx: Float64Array,
  dgate: Float64Array,
): void {
  const K = c.topK, h = c.hidden, d = c.dim, hs = c.sharedHidden;
  const { a, o, sa, dh } = buf;
  const pr: [Float64Array, Float64Array, Float64Array] = [p.w1, p.b1, p.w2];
  const gr: [Float64Array, Float64Array, Float64Array, Float64Array] = [
    g.w1,
    g.b1,
    g.w2,
    g.b2,
  ];
  const ps: [Float64Array, Float64Array, Float64Array] = [p.sw1, p.sb1, p.sw2];
  const gs: [Float64Array, Float64Array, Float64Array, Float64Array] = [
    g.sw1,
    g.sb1,
    g.sw2,
    g.sb2,
  ];
  for (let i = 0; i < n; i++) {
    const xb = i * d;
    for (let m = 0; m < d; m++) dx[xb + m] = dy[xb + m];
    for (let k = 0; k < K; k++) {
      const slot = i * K + k;
      dgate[slot] = 0;
      if (sel[slot] < 0) continue;
      let dot = 0;
      for (let m = 0; m < d; m++) dot += dy[xb + m] * o[slot * d + m];
      dgate[slot] = dot;
      ffnBackward(
        pr,
        gr,
        sel[slot],
        h,
        d,
        x,
        xb,
        a,
        slot * h,
        dy,
        xb,
        gate[slot],
        dx,
        dh,
      );
    }
    if (hs > 0) {
      ffnBackward(ps, gs, 0, hs, d, x, xb, sa, i * hs, dy, xb, 1, dx, dh);
    }
  }
}
