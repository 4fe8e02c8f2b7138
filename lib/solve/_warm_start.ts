// Starting expert prices for the exact solver. The optimal prices of a
// balanced assignment are quantiles of the score distribution, so those of
// a stride sample of the tokens (with the same capacity per token) are
// close to those of the whole batch. The sample's own prices need not be
// exact: they differ from the batch's by the sampling noise anyway, which
// leaves an excess that the repair's first price step cuts. So a sample
// with many units per expert, itself started the same way (recursively),
// takes only price steps (no repair, no final selection): at 4096 x 64
// this costs about a quarter of an exact solve of the sample, and the
// batch starts with as little excess. A sample with few units per expert
// (16 at 512 x 256, k = 8) is solved exactly, as steps from a poor start
// leave it far off there (at 32768 x 256 the whole solve took five times
// longer). Any prices give a correct start.
import type { HostBackend } from "../ops/host.ts";
import { stepPrices } from "./_price_steps.ts";
import { successiveShortestPaths } from "./_ssp.ts";

/** The sample keeps one token in STRIDE. */
const STRIDE = 4;
/**
 * No sample below this many tokens: from zero prices the price steps and
 * the repair cost less there than a smaller sample would save.
 */
const MIN_SAMPLE = 512;
/** A sample with at least this many units (token slots) per expert takes steps. */
const STEP_UNITS = 64;
/** Price steps on such a sample's start (see _price_steps.ts). */
const SAMPLE_STEPS = 2;

/**
 * Prices from price steps on a sample of the tokens (or its exact optimum,
 * for few units per expert), or zeros for small batches; `scale` bounds
 * the magnitude of the unmasked scores (scanned if absent); `host` runs
 * the row selections (see {@linkcode selectRows}).
 */
export function warmStartPrices(
  s: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  capacity: number,
  scale?: number,
  host: HostBackend = "wasm",
): Float64Array {
  const n = Math.ceil(tokens / STRIDE);
  if (n < MIN_SAMPLE || n < experts) return new Float64Array(experts);
  const sample = new Float32Array(n * experts);
  for (let i = 0; i < n; i++) {
    const from = i * STRIDE * experts;
    sample.set(s.subarray(from, from + experts), i * experts);
  }
  // The same capacity per token, rounded up.
  const c = Math.ceil((n * capacity) / tokens);
  const q = warmStartPrices(sample, n, experts, k, c, scale, host);
  if (n * k >= STEP_UNITS * experts) {
    stepPrices(sample, n, experts, k, c, q, SAMPLE_STEPS, host);
    return q;
  }
  const solved = successiveShortestPaths(sample, n, experts, k, c, q, {
    scale,
    host,
  });
  return solved === null ? new Float64Array(experts) : solved.prices;
}
