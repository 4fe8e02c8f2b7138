// CPU twin of the WebGPU top-K routing kernel (kernels/route_topk.ts), the
// oracle of the conformance suite. The GPU has no float64, so the kernel
// selects on float32 keys: `fround(s + fround(b))` (or `fround(s * fround(b))`
// with a multiplicative bias). route() selects on float64 keys: the two
// agree whenever the bias is zero, and otherwise differ only where two keys
// round to the same float32 (a tie here, broken to the lower index).
import type { Routing, ScoreMatrix } from "../types.ts";
import { createRouting } from "./route.ts";
import { routeRows } from "../ops/_route_rows.ts";

/** Settings of {@linkcode routeF32}. */
export interface F32RouteSettings {
  bias?: ArrayLike<number>;
  multiply?: boolean;
  normalize?: boolean;
  scale?: number;
}

/**
 * Top-`k` of float32 keys per token (ties to the lowest expert index),
 * weights from the unbiased scores (`-Infinity` weighs 0), loads counted.
 */
export function routeF32(
  scores: ScoreMatrix,
  k: number,
  settings: F32RouteSettings = {},
): Routing {
  const { data, tokens: N, experts: E } = scores;
  const b = settings.bias ? Float32Array.from(settings.bias) : undefined;
  const keys = new Float32Array(data.length);
  for (let i = 0; i < N; i++) {
    for (let j = 0, o = i * E; j < E; j++, o++) {
      keys[o] = b === undefined
        ? data[o]
        : settings.multiply
        ? data[o] * b[j]
        : data[o] + b[j];
    }
  }
  const out = createRouting(N, k, E);
  const rows = { bias: undefined, multiply: false, normalize: false, scale: 1 };
  routeRows(
    keys,
    E,
    k,
    rows,
    0,
    N,
    out.experts,
    out.weights,
    out.loads,
    new Float64Array(k),
    new Int32Array(k),
  );
  const scale = settings.scale ?? 1;
  for (let i = 0; i < N; i++) {
    let sum = 0;
    for (let r = 0; r < k; r++) {
      const x = data[i * E + out.experts[i * k + r]];
      out.weights[i * k + r] = x > -Infinity ? x : 0;
      sum += out.weights[i * k + r];
    }
    const f = settings.normalize && sum > 0 ? scale / sum : scale;
    for (let r = 0; r < k; r++) out.weights[i * k + r] *= f;
  }
  return out;
}
