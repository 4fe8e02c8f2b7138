// The compute kernels the transformer runs, resolved once per model build
// from the op registry for one backend. A WebGPU kernel answers with a
// promise; the step awaits every call, so one code path serves all backends.
// TEMPORARY local CPU twins until lib/ops/matmul.ts and attention.ts land.

/** Arguments of a matrix product `out (m x n) = [out +] op(a) op(b)`. */
export interface MatmulArgs {
  a: Float32Array;
  b: Float32Array;
  out: Float32Array;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
}

/** Arguments of causal multi-head attention over `(batch, heads, seq, headDim)`. */
export interface AttentionArgs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  out: Float32Array;
  probs: Float32Array;
  batch: number;
  heads: number;
  seq: number;
  headDim: number;
}

/** Arguments of the attention core's backward pass. */
export interface AttentionBackwardArgs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  probs: Float32Array;
  dOut: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  batch: number;
  heads: number;
  seq: number;
  headDim: number;
}

import type { LmBackend } from "./model.ts";

/** The kernels of one backend. */
export interface LmKernels {
  readonly backend: LmBackend;
  matmul(args: MatmulArgs): unknown;
  attention(args: AttentionArgs): unknown;
  attentionBackward(args: AttentionBackwardArgs): unknown;
}

function matmul(x: MatmulArgs): Float32Array {
  const { a, b, out, m, n, k, transA, transB } = x;
  if (!x.accumulate) out.fill(0, 0, m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * m + i] : a[i * k + p];
      if (av === 0) continue;
      if (transB) { for (let j = 0; j < n; j++) row[j] += av * b[j * k + p]; }
      else {
        const bb = p * n;
        for (let j = 0; j < n; j++) row[j] += av * b[bb + j];
      }
    }
    const ob = i * n;
    for (let j = 0; j < n; j++) out[ob + j] += row[j];
  }
  return out;
}

function attention(x: AttentionArgs): Float32Array {
  const { q, k, v, out, probs, batch, heads, seq: T, headDim: D } = x;
  const scale = 1 / Math.sqrt(D);
  for (let bh = 0; bh < batch * heads; bh++) {
    const base = bh * T * D, pb = bh * T * T;
    for (let i = 0; i < T; i++) {
      let max = -Infinity;
      const row = pb + i * T;
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let e = 0; e < D; e++) {
          s += q[base + i * D + e] * k[base + j * D + e];
        }
        s *= scale;
        probs[row + j] = s;
        if (s > max) max = s;
      }
      let z = 0;
      for (let j = 0; j <= i; j++) {
        const e = Math.exp(probs[row + j] - max);
        probs[row + j] = e;
        z += e;
      }
      for (let j = 0; j <= i; j++) probs[row + j] /= z;
      for (let j = i + 1; j < T; j++) probs[row + j] = 0;
      for (let e = 0; e < D; e++) {
        let s = 0;
        for (let j = 0; j <= i; j++) s += probs[row + j] * v[base + j * D + e];
        out[base + i * D + e] = s;
      }
    }
  }
  return out;
}

function attentionBackward(x: AttentionBackwardArgs): void {
  const { q, k, v, probs, dOut, dq, dk, dv, batch, heads, seq: T, headDim: D } =
    x;
  const scale = 1 / Math.sqrt(D);
  dq.fill(0);
  dk.fill(0);
  dv.fill(0);
  const dp = new Float64Array(T);
  for (let bh = 0; bh < batch * heads; bh++) {
    const base = bh * T * D, pb = bh * T * T;
    for (let i = 0; i < T; i++) {
      const row = pb + i * T;
      let dot = 0;
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let e = 0; e < D; e++) {
          s += dOut[base + i * D + e] * v[base + j * D + e];
          dv[base + j * D + e] += probs[row + j] * dOut[base + i * D + e];
        }
        dp[j] = s;
        dot += s * probs[row + j];
      }
      for (let j = 0; j <= i; j++) {
        const ds = probs[row + j] * (dp[j] - dot) * scale;
        for (let e = 0; e < D; e++) {
          dq[base + i * D + e] += ds * k[base + j * D + e];
          dk[base + j * D + e] += ds * q[base + i * D + e];
        }
      }
    }
  }
}

/** The kernels of `backend`. */
export function lmKernels(
  backend: LmBackend = "cpu",
  _env: { threads?: number; gpu?: unknown } = {},
): LmKernels {
  return { backend, matmul, attention, attentionBackward };
}
