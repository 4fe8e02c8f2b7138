// The output layer: logits = outW . y + outB over the vocabulary, softmax
// cross-entropy against the next character, averaged over the batch.
import type { MoeParams, ResolvedModelConfig } from "./model.ts";
import { fdlibmExp, fdlibmLog } from "../numeric/fdlibm.ts";

/**
 * Forward and backward pass of the output layer in one sweep: returns the
 * mean cross-entropy (nats) over the `n` tokens, and, when `g` and `dy` are
 * given, accumulates the gradients of `outW`, `outB` and writes
 * `dy: (N x dim)` (overwritten) for a loss scaled by `scale / n`.
 * `logits` is scratch of length `vocab`.
 */
export function outputLoss(
  p: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  y: Float64Array,
  targets: Int32Array,
  logits: Float64Array,
  g?: MoeParams,
  dy?: Float64Array,
  scale = 1,
): number {
  const V = c.vocab, d = c.dim;
  const { outW, outB } = p;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const yb = i * d;
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let acc = outB[v];
      const rb = v * d;
      for (let m = 0; m < d; m++) acc += outW[rb + m] * y[yb + m];
      logits[v] = acc;
      if (acc > max) max = acc;
    }
    let z = 0;
    for (let v = 0; v < V; v++) z += fdlibmExp(logits[v] - max);
    const lse = max + fdlibmLog(z);
    const t = targets[i];
    total += lse - logits[t];
    if (g === undefined || dy === undefined) continue;
    for (let m = 0; m < d; m++) dy[yb + m] = 0;
    const f = scale / n;
    for (let v = 0; v < V; v++) {
      const gl = (fdlibmExp(logits[v] - lse) - (v === t ? 1 : 0)) * f;
      g.outB[v] += gl;
      const rb = v * d;
      for (let m = 0; m < d; m++) {
        g.outW[rb + m] += gl * y[yb + m];
        dy[yb + m] += gl * outW[rb + m];
      }
    }
  }
  return total / n;
}
