// The router of the MoE layer: logits r = router . x, scores s = gate(r),
// and the gate weights of the selected experts.
import type { MoeParams, ResolvedModelConfig } from "./model.ts";
import { fdlibmExp } from "../numeric/fdlibm.ts";

/**
 * Router forward: `r: (N x E)` logits, `s: (N x E)` scores (sigmoid, or
 * softmax over the experts).
 */
export function routerForward(
  p: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  x: Float64Array,
  r: Float64Array,
  s: Float64Array,
): void {
  const E = c.experts, d = c.dim;
  const W = p.router;
  const softmax = c.gate === "softmax";
  for (let i = 0; i < n; i++) {
    const xb = i * d, rb = i * E;
    let max = -Infinity;
    for (let j = 0; j < E; j++) {
      let acc = 0;
      const wb = j * d;
      for (let m = 0; m < d; m++) acc += W[wb + m] * x[xb + m];
      r[rb + j] = acc;
      if (acc > max) max = acc;
    }
    if (softmax) {
      let z = 0;
      for (let j = 0; j < E; j++) z += s[rb + j] = fdlibmExp(r[rb + j] - max);
      for (let j = 0; j < E; j++) s[rb + j] /= z;
    } else {
      for (let j = 0; j < E; j++) s[rb + j] = 1 / (1 + fdlibmExp(-r[rb + j]));
    }
  }
}

/**
 * Router backward: turns `ds: (N x E)` into logit gradients, adds `dr`
 * (gradients that enter at the logits, as z-loss's) when given, then
 * accumulates `g.router` and adds `router^T . dr` to `dx: (N x dim)`.
 * `ds` is overwritten with the logit gradient.
 */
export function routerBackward(
  p: MoeParams,
  g: MoeParams,
  c: ResolvedModelConfig,
  n: number,
  x: Float64Array,
  s: Float64Array,
  ds: Float64Array,
  dr: Float64Array | undefined,
  dx: Float64Array,
): void {
  const E = c.experts, d = c.dim;
  const W = p.router;
  const softmax = c.gate === "softmax";
  for (let i = 0; i < n; i++) {
    const rb = i * E, xb = i * d;
    if (softmax) {
      let dot = 0;
      for (let j = 0; j < E; j++) dot += s[rb + j] * ds[rb + j];
      for (let j = 0; j < E; j++) ds[rb + j] = s[rb + j] * (ds[rb + j] - dot);
    } else {
      for (let j = 0; j < E; j++) {
        const v = s[rb + j];
        ds[rb + j] *= v * (1 - v);
      }
    }
    if (dr !== undefined) {
      for (let j = 0; j < E; j++) ds[rb + j] += dr[rb + j];
    }
    for (let j = 0; j < E; j++) {
      const gj = ds[rb + j];
      if (gj === 0) continue;
      const wb = j * d;
      for (let m = 0; m < d; m++) {
        g.router[wb + m] += gj * x[xb + m];
        dx[xb + m] += gj * W[wb + m];
      }
    }
  }
}

/**
 * Gate weights of the selected experts, `gate[i][k] = s[i][sel[i][k]]`,
 * divided by their sum when `normalize` is set (DeepSeek-V3's sigmoid
 * gate). `sel, gate: (N x K)`; an empty slot (`-1`, a token a capacity
 * limit dropped) gets weight 0.
 */
export function gateForward(
  c: ResolvedModelConfig,
  n: number,
  s: Float64Array,
  sel: Int32Array,
  gate: Float64Array,
): void {
  const E = c.experts, K = c.topK;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const j = sel[i * K + k];
      sum += gate[i * K + k] = j < 0 ? 0 : s[i * E + j];
    }
    if (c.normalize && sum > 0) {
      for (let k = 0; k < K; k++) gate[i * K + k] /= sum;
    }
  }
}

/**
 * Gate backward: adds the score gradients of the selected experts to
 * `ds: (N x E)` from `dgate: (N x K)`. Only selected experts receive a
 * gradient through the gate; that is how a bias that changes the selection
 * changes what the router learns.
 */
export function gateBackward(
  c: ResolvedModelConfig,
  n: number,
  s: Float64Array,
  sel: Int32Array,
  gate: Float64Array,
  dgate: Float64Array,
  ds: Float64Array,
): void {
  const E = c.experts, K = c.topK;
  for (let i = 0; i < n; i++) {
    const kb = i * K;
    if (c.normalize) {
      // g_k = s_k / S: dL/ds_k = (dg_k - sum_m dg_m g_m) / S.
      let sum = 0, dot = 0;
      for (let k = 0; k < K; k++) {
        const j = sel[kb + k];
        if (j < 0) continue;
        sum += s[i * E + j];
        dot += dgate[kb + k] * gate[kb + k];
      }
      for (let k = 0; k < K; k++) {
        const j = sel[kb + k];
        if (j >= 0) ds[i * E + j] += (dgate[kb + k] - dot) / sum;
      }
    } else {
      for (let k = 0; k < K; k++) {
        const j = sel[kb + k];
        if (j >= 0) ds[i * E + j] += dgate[kb + k];
      }
    }
  }
}
