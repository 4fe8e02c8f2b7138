// The attention kernels' loops over (sequence, head) pairs `[from, to)`,
// shared by the "cpu" kernels (every pair) and the "cpu-threads" kernels
// (pairs claimed by each thread). A pair's numbers do not depend on which
// thread computes it. Sums in float64, each stored value rounded once.
import { fdlibmExp } from "../numeric/fdlibm.ts";

let row = new Float64Array(0);
let acc = new Float64Array(0);
let dkAcc = new Float64Array(0);
let dvAcc = new Float64Array(0);

function scratch(seq: number, width: number): void {
  if (row.length < seq) row = new Float64Array(seq);
  if (acc.length < width) acc = new Float64Array(width);
}

/** Causal attention of pairs `[from, to)`: writes their `out` and `probs`. */
export function attentionHeads(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  out: Float32Array,
  probs: Float32Array,
  S: number,
  D: number,
  from: number,
  to: number,
): void {
  const scale = 1 / Math.sqrt(D);
  scratch(S, D);
  const r = row, o = acc;
  for (let bh = from; bh < to; bh++) {
    const base = bh * S * D, pBase = bh * S * S;
    for (let i = 0; i < S; i++) {
      const qi = base + i * D;
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        const kj = base + j * D;
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qi + d] * k[kj + d];
        s *= scale;
        r[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) sum += r[j] = fdlibmExp(r[j] - max);
      const pi = pBase + i * S;
      o.fill(0, 0, D);
      for (let j = 0; j <= i; j++) {
        const p = r[j] / sum;
        probs[pi + j] = p;
        const vj = base + j * D;
        for (let d = 0; d < D; d++) o[d] += p * v[vj + d];
      }
      probs.fill(0, pi + i + 1, pi + S);
      for (let d = 0; d < D; d++) out[qi + d] = o[d];
    }
  }
}

/** The attention backward of pairs `[from, to)`: writes their `dq`, `dk`, `dv`. */
export function attentionBackwardHeads(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  probs: Float32Array,
  dOut: Float32Array,
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  S: number,
  D: number,
  from: number,
  to: number,
): void {
  const scale = 1 / Math.sqrt(D);
  scratch(S, D);
  if (dkAcc.length < S * D) {
    dkAcc = new Float64Array(S * D);
    dvAcc = new Float64Array(S * D);
  }
  const r = row, o = acc, gk = dkAcc, gv = dvAcc;
  for (let bh = from; bh < to; bh++) {
    const base = bh * S * D, pBase = bh * S * S;
    gk.fill(0, 0, S * D);
    gv.fill(0, 0, S * D);
    for (let i = 0; i < S; i++) {
      const gi = base + i * D, pi = pBase + i * S;
      let dot = 0;
      for (let j = 0; j <= i; j++) {
        const p = probs[pi + j], vj = base + j * D, at = j * D;
        let dp = 0;
        for (let d = 0; d < D; d++) {
          const g = dOut[gi + d];
          dp += g * v[vj + d];
          gv[at + d] += p * g;
        }
        r[j] = dp;
        dot += p * dp;
      }
      o.fill(0, 0, D);
      for (let j = 0; j <= i; j++) {
        const ds = probs[pi + j] * (r[j] - dot) * scale;
        const kj = base + j * D, at = j * D;
        for (let d = 0; d < D; d++) {
          o[d] += ds * k[kj + d];
          gk[at + d] += ds * q[gi + d];
        }
      }
      for (let d = 0; d < D; d++) dq[gi + d] = o[d];
    }
    for (let x = 0; x < S * D; x++) {
      dk[base + x] = gk[x];
      dv[base + x] = gv[x];
    }
  }
}
