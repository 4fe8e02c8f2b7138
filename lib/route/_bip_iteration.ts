// CPU twin of the WebGPU BIP iteration (kernels/bip_iteration.ts): one
// round of exact coordinate minimisation of the balanced-assignment dual,
// BIP-Based Balancing (Yuan Sun, arXiv 2502.15451; docs/algorithms.md section 6):
//
//   p[i] = max(0, (K+1)-th largest of s[i][j] - q[j] over j)
//   q[j] = max(0, (C+1)-th largest of s[i][j] - p[i] over i)
//
// with the rules of lib/route/_dual.ts (p = 0 when K >= E, q = 0 when
// C >= N), but in float32 arithmetic (`fround(s - q)`), as the GPU
// computes: the selected values are then the same bits on both backends.
import type { ScoreMatrix } from "../types.ts";

/** One BIP round from expert prices `q`: new token and expert prices, float32. */
export function bipIterationF32(
  scores: ScoreMatrix,
  q: Float32Array,
  k: number,
  capacity: number,
): { p: Float32Array; q: Float32Array } {
  const { data, tokens: N, experts: E } = scores;
  const p = new Float32Array(N);
  const row = new Float32Array(E);
  if (k < E) {
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < E; j++) row[j] = data[i * E + j] - q[j];
      row.sort();
      p[i] = clip(row[E - 1 - k]);
    }
  }
  const next = new Float32Array(E);
  if (capacity < N) {
    const col = new Float32Array(N);
    for (let j = 0; j < E; j++) {
      for (let i = 0; i < N; i++) col[i] = data[i * E + j] - p[i];
      col.sort();
      next[j] = clip(col[N - 1 - capacity]);
    }
  }
  return { p, q: next };
}

function clip(v: number): number {
  return v > 0 ? v : 0;
}
