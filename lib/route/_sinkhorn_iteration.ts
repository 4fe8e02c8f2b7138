// CPU twin of the WebGPU Sinkhorn iteration (kernels/sinkhorn_iteration.ts).
// Sinkhorn / S-BASE (Clark et al. 2022), as Megatron-LM's `sinkhorn` router
// computes it (docs/algorithms.md section 8): alternately normalise the rows and
// the columns of `exp(s)`, through scaling vectors `d0` (tokens) and `d1`
// (experts). One iteration, with `eps = 1e-8`:
//
//   d0[i] = (1/N) / (sum_j d1[j] * exp(s[i][j]) + eps)
//   d1[j] = (1/E) / (sum_i d0[i] * exp(s[i][j]) + eps)
//   error = mean_j |d1_new[j] - d1_old[j]|
//
// The balanced matrix is `d1[j] * exp(s[i][j]) * d0[i]`. Sums in float64
// here; the GPU sums in float32 (results agree to about 1e-6 relative).
import type { ScoreMatrix } from "../types.ts";

/** Sinkhorn's `eps` (Megatron-LM). */
export const SINKHORN_EPS = 1e-8;

/** One Sinkhorn iteration from the expert scaling `d1` (float32). */
export function sinkhornIteration(
  scores: ScoreMatrix,
  d1: Float32Array,
): { d0: Float32Array; d1: Float32Array; error: number } {
  const { data, tokens: N, experts: E } = scores;
  const d0 = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < E; j++) s += d1[j] * Math.exp(data[i * E + j]);
    d0[i] = 1 / N / (s + SINKHORN_EPS);
  }
  const col = new Float64Array(E);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < E; j++) col[j] += d0[i] * Math.exp(data[i * E + j]);
  }
  const next = new Float32Array(E);
  let error = 0;
  for (let j = 0; j < E; j++) {
    next[j] = 1 / E / (col[j] + SINKHORN_EPS);
    error += Math.abs(next[j] - d1[j]);
  }
  return { d0, d1: next, error: error / E };
}
