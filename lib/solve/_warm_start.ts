// Starting expert prices for the exact solver. The optimal prices of a
// balanced assignment are quantiles of the score distribution, so those of
// a stride sample of the tokens (with the same capacity per token) are
// close to those of the whole batch. The sample's own prices need not be
// exact: they differ from the batch's by the sampling noise anyway, which
// leaves an excess that the repair's first price step cuts. So the sample,
// itself started the same way (recursively), takes only price steps (no
// repair, no final selection): at 4096 x 64 this costs about a quarter of
// an exact solve of the sample, and the batch starts with as little excess.
// Any prices give a correct start.
import { stepPrices } from "./_price_steps.ts";

/** The sample keeps one token in STRIDE. */
const STRIDE = 4;
/**
 * No sample below this many tokens: from zero prices the price steps and
 * the repair cost less there than a smaller sample would save.
 */
const MIN_SAMPLE = 512;
/** Price steps on the sample's start (see _price_steps.ts). */
const SAMPLE_STEPS = 2;

/** Prices from price steps on a sample of the tokens, or zeros for small batches. */
export function warmStartPrices(
  s: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  capacity: number,
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
  const q = warmStartPrices(sample, n, experts, k, c);
  stepPrices(sample, n, experts, k, c, q, SAMPLE_STEPS);
  return q;
}
