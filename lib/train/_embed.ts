// The input layer: the last `context` characters' embeddings, concatenated
// and mixed by one linear map, x[i] = mixW . concat(emb[ctx[i][0..C-1]]) + mixB.
import type { MoeParams, ResolvedModelConfig } from "./model.ts";

/**
 * Forward pass of the input layer.
 * `ctx: Int32Array (N x context)`, `h0: (N x context*embed)` (kept for the
 * backward pass), `x: (N x dim)`.
 */
export function embedForward(
  p: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  ctx: Int32Array,
  h0: Float64Array,
  x: Float64Array,
): void {
  const C = c.context, D0 = c.embed, d = c.dim, w = C * D0;
  const { emb, mixW, mixB } = p;
  for (let i = 0; i < n; i++) {
    const hb = i * w;
    for (let q = 0; q < C; q++) {
      const eb = ctx[i * C + q] * D0, ob = hb + q * D0;
      for (let m = 0; m < D0; m++) h0[ob + m] = emb[eb + m];
    }
    for (let o = 0; o < d; o++) {
      let acc = mixB[o];
      const rb = o * w;
      for (let m = 0; m < w; m++) acc += mixW[rb + m] * h0[hb + m];
      x[i * d + o] = acc;
    }
  }
}

/**
 * Backward pass of the input layer: accumulates the gradients of `emb`,
 * `mixW` and `mixB` into `g` from `dx: (N x dim)`. `dh0` is scratch of
 * length `context*embed`.
 */
export function embedBackward(
  p: MoeParams,
  g: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  ctx: Int32Array,
  h0: Float64Array,
  dx: Float64Array,
  dh0: Float64Array,
): void {
  const C = c.context, D0 = c.embed, d = c.dim, w = C * D0;
  const { mixW } = p;
  for (let i = 0; i < n; i++) {
    const hb = i * w;
    dh0.fill(0);
    for (let o = 0; o < d; o++) {
      const go = dx[i * d + o];
      if (go === 0) continue;
      g.mixB[o] += go;
      const rb = o * w;
      for (let m = 0; m < w; m++) {
        g.mixW[rb + m] += go * h0[hb + m];
        dh0[m] += go * mixW[rb + m];
      }
    }
    for (let q = 0; q < C; q++) {
      const eb = ctx[i * C + q] * D0;
      for (let m = 0; m < D0; m++) g.emb[eb + m] += dh0[q * D0 + m];
    }
  }
}
