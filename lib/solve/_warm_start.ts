// Starting expert prices for the exact solver. The optimal prices of a
// balanced assignment are quantiles of the score distribution, so those of
// a stride sample of the tokens (with the same capacity per token) are
// close to those of the whole batch; solving the sample exactly, itself
// warm-started the same way, leaves little excess for the full repair,
// whose phases cost O(E^2) each. Any prices give a correct start.
import { successiveShortestPaths } from "./_ssp.ts";

/** The sample keeps one token in STRIDE. */
const STRIDE = 4;
/**
 * No sample below this many tokens: from zero prices the price steps and
 * the repair cost less there than a smaller sample would save.
 */
const MIN_SAMPLE = 512;

/**
 * Prices from the sample's exact optimum, or zeros for small batches;
 * `scale` bounds the magnitude of the unmasked scores (scanned if absent).
 */
export function warmStartPrices(
  s: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  capacity: number,
  scale?: number,
): Float64Array {
  const n = Math.ceil(tokens / STRIDE);
  if (n < MIN_SAMPLE || n < experts) return new Float64Array(experts);
  const sample = new Float32Array(n * experts);
  for (let i = 0; i < n; i++) {
    const from = i * STRIDE * experts;
    sample.set(s.subarray(from, from + experts), i * experts);
  }
  // The same capacity per token, rounded up, stays feasible.
  const c = Math.ceil((n * capacity) / tokens);
  const q = warmStartPrices(sample, n, experts, k, c, scale);
  const solved = successiveShortestPaths(sample, n, experts, k, c, q, {
    scale,
  });
  return solved === null ? new Float64Array(experts) : solved.prices;
}
