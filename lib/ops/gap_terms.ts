// The gap terms op: the pass over a score matrix with which the exact
// solver's certificate (lib/solve/_certificate.ts) sums the duality gap of
// an assignment, token by token. Its production CPU kernel is below.
import { checkObject, checkScoreShape, show } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** What the gap terms op's validator takes. */
export interface GapTermsRequest {
  /** Scores, `tokens x experts` (`-Infinity`: a masked pair). */
  scores: ScoreMatrix;
  /** Experts each token holds. */
  k: number;
  /** The experts each token holds (`tokens x k`, any order). */
  slots: Int32Array;
  /** Token prices `p` (tokens), of magnitude below `1e280`. */
  tokenPrices: Float64Array;
  /** Expert prices `q` (experts), of magnitude below `1e280`. */
  expertPrices: Float64Array;
}

/** Checked arguments of every gap terms kernel (the request, checked). */
export type GapTermsArgs = GapTermsRequest;

/**
 * A held expert's price in the CPU kernel's sum: float32 scores and the
 * prices the op takes (of magnitude below `HIGH * 1e-20`) are far below
 * it, so `x = s - p - HIGH` is negative and `x + |x|` is exactly 0.
 */
const HIGH = 1e300;

/**
 * The duality gap's terms of an assignment, token by token: for token `i`,
 * the sum over the experts it does not hold of `max(0, s[i][j] - p[i] -
 * q[j])` (a masked pair adds nothing), each difference in float64 from
 * left to right, the positive ones summed doubled in expert order and
 * halved. With `p[i]` the smallest `s - q` of the token's own experts,
 * the terms are 0 exactly when no unheld expert beats them.
 *
 * Backends: `"cpu"` (the reference) and `"wasm"` (a float64x2 pass that
 * finds the positive differences, the same sums bit for bit).
 */
export const gapTermsOp = defineOp<GapTermsRequest, GapTermsArgs, Float64Array>(
  {
    name: "gapTerms",
    summary: "the duality gap's terms of an assignment, token by token",
    validate: checkGapTerms,
  },
);

function checkGapTerms(request: GapTermsRequest): GapTermsArgs {
  checkObject("request", request);
  const scores = checkScoreShape("scores", request.scores);
  const { tokens: N, experts: E } = scores;
  const { k, slots, tokenPrices, expertPrices } = request;
  if (!Number.isInteger(k) || k < 1 || k > E) {
    throw new RangeError(
      `k must be an integer from 1 to the number of experts (${E}): current value is ${
        show(k)
      }`,
    );
  }
  if (!(slots instanceof Int32Array) || slots.length !== N * k) {
    throw new TypeError(
      `slots must be an Int32Array of tokens x k = ${
        N * k
      } entries: current value is ${show(slots)}`,
    );
  }
  for (let x = 0; x < slots.length; x++) {
    if (!(slots[x] >= 0 && slots[x] < E)) {
      throw new RangeError(
        `slots must name experts from 0 to ${E - 1}: entry ${x} is ${slots[x]}`,
      );
    }
  }
  checkPrices("tokenPrices", tokenPrices, N);
  checkPrices("expertPrices", expertPrices, E);
  return { scores, k, slots, tokenPrices, expertPrices };
}

function checkPrices(name: string, v: Float64Array, n: number): void {
  if (!(v instanceof Float64Array) || v.length !== n) {
    throw new TypeError(
      `${name} must be a Float64Array of ${n} entries: current value is ${
        show(v)
      }`,
    );
  }
  for (let x = 0; x < n; x++) {
    if (!(Math.abs(v[x]) < HIGH * 1e-20)) {
      throw new RangeError(
        `${name} must be of magnitude below 1e280: entry ${x} is ${v[x]}`,
      );
    }
  }
}

/**
 * The production CPU kernel of {@linkcode gapTermsOp} (the reference):
 * each row summed as `x + |x|` over every expert, the held ones' prices
 * raised to `1e300` (their terms exactly 0) without a branch; a row with a
 * masked pair (a NaN sum) summed again, the masked pairs skipped.
 */
export function gapTermsCpu(args: GapTermsArgs): Float64Array {
  const { scores: { data, tokens, experts }, k, slots } = args;
  const p = args.tokenPrices, q = args.expertPrices;
  const out = new Float64Array(tokens);
  // The prices, and at the token's experts a price so high that their
  // terms below are exactly 0: leaves them out without a multiply.
  const off = Float64Array.from(q);
  for (let i = 0; i < tokens; i++) {
    const row = i * experts, base = i * k, pi = p[i];
    for (let r = base; r < base + k; r++) off[slots[r]] = HIGH;
    // Twice max(0, x) as x + |x|, without a branch (a held expert's x is
    // near -HIGH: exactly 0); a masked pair makes it NaN, and the row is
    // summed again with the mask skipped.
    let twice = 0;
    for (let j = 0; j < experts; j++) {
      const x = data[row + j] - pi - off[j];
      twice += x + Math.abs(x);
    }
    if (twice !== twice) {
      twice = 0;
      for (let j = 0; j < experts; j++) {
        const x = data[row + j] - pi - off[j];
        if (x > 0) twice += 2 * x;
      }
    }
    out[i] = 0.5 * twice;
    for (let r = base; r < base + k; r++) off[slots[r]] = q[slots[r]];
  }
  return out;
}

registerKernel({
  op: gapTermsOp,
  backend: "cpu",
  run: gapTermsCpu,
  callers: ["solveBalancedAssignmentSync()", "solveBalancedAssignment()"],
});
