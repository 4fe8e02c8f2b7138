// The certificate rows op: the pass over a score matrix with which the
// exact solver's certificate (lib/solve/_certificate.ts) reads an
// assignment back, token by token: its token prices, its experts sorted,
// the loads, the objective and the duality gap's terms. Its production
// CPU kernel is below.
import { checkObject, checkScoreShape, show } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** What the certificate rows op's validator takes. */
export interface CertificateRowsRequest {
  /** Scores, `tokens x experts` (`-Infinity`: a masked pair). */
  scores: ScoreMatrix;
  /** Experts each token holds. */
  k: number;
  /** The experts each token holds (`tokens x k`, distinct, any order). */
  slots: Int32Array;
  /** Expert prices `q` (experts), of magnitude below `1e280`. */
  expertPrices: Float64Array;
}

/** Checked arguments of every certificate rows kernel (the request, checked). */
export type CertificateRowsArgs = CertificateRowsRequest;

/** What a certificate rows kernel returns. */
export interface CertificateRows {
  /**
   * The first token that holds a masked pair (a `-Infinity` score), or -1;
   * the other fields are not read where there is one.
   */
  masked: number;
  /** `p[i]`: the smallest `s[i][j] - q[j]` over the token's experts (tokens). */
  tokenPrices: Float64Array;
  /** Each token's experts by decreasing score, ties to the lower expert (tokens x k). */
  experts: Int32Array;
  /** Tokens per expert. */
  loads: Int32Array;
  /** The held scores summed in float64, token by token in slot order. */
  objective: number;
  /**
   * The duality gap's terms, token by token: the sum over the experts the
   * token does not hold of `max(0, s[i][j] - p[i] - q[j])` (a masked pair
   * adds nothing), each difference in float64 from left to right, the
   * positive ones summed doubled in expert order and halved (tokens).
   */
  terms: Float64Array;
}

/** Expert prices are taken below this magnitude. */
export const PRICE_LIMIT = 1e280;

/**
 * A held expert's price in the CPU kernel's sum: float32 scores and the
 * prices the op takes (of magnitude below `PRICE_LIMIT`) are far below it,
 * so `x = s - p - HIGH` is negative and `x + |x|` is exactly 0.
 */
const HIGH = 1e300;

/**
 * An assignment read back against expert prices `q`, token by token, as
 * the exact solver's certificate needs it: `p[i]`, the smallest `s - q`
 * of the token's own experts (the best token price for these `q` and this
 * assignment), the experts sorted, the loads, the objective, and the
 * duality gap's terms `sum over unheld j of max(0, s[i][j] - p[i] -
 * q[j])`, which are 0 exactly when no unheld expert beats the held ones.
 *
 * Backends: `"cpu"` (the reference) and `"wasm"` (a float32x4 pass that
 * finds a superset of the positive differences, float64 deciding; the
 * same numbers bit for bit).
 */
export const certificateRowsOp = defineOp<
  CertificateRowsRequest,
  CertificateRowsArgs,
  CertificateRows
>({
  name: "certificateRows",
  summary: "an assignment's token prices, loads, objective and gap terms",
  validate: checkCertificateRows,
});

function checkCertificateRows(
  request: CertificateRowsRequest,
): CertificateRowsArgs {
  checkObject("request", request);
  const scores = checkScoreShape("scores", request.scores);
  const { tokens: N, experts: E } = scores;
  const { k, slots, expertPrices: q } = request;
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
  const bad = invalidSlot(slots, N, E, k);
  if (bad >= 0) {
    throw new RangeError(
      `slots must name k distinct experts from 0 to ${
        E - 1
      } for each token: entry ${bad} is ${slots[bad]}`,
    );
  }
  if (!(q instanceof Float64Array) || q.length !== E) {
    throw new TypeError(
      `expertPrices must be a Float64Array of ${E} entries: current value is ${
        show(q)
      }`,
    );
  }
  for (let j = 0; j < E; j++) {
    if (!(Math.abs(q[j]) < PRICE_LIMIT)) {
      throw new RangeError(
        `expertPrices must be of magnitude below 1e280: entry ${j} is ${q[j]}`,
      );
    }
  }
  return { scores, k, slots, expertPrices: q };
}

/**
 * The first entry of `slots` (tokens x k) that names no expert or one its
 * token already holds, or -1. No score is read.
 */
export function invalidSlot(
  slots: Int32Array,
  tokens: number,
  experts: number,
  k: number,
): number {
  const held = new Int32Array(experts).fill(-1);
  for (let i = 0; i < tokens; i++) {
    for (let x = i * k; x < (i + 1) * k; x++) {
      const j = slots[x];
      if (!(j >= 0 && j < experts) || held[j] === i) return x;
      held[j] = i;
    }
  }
  return -1;
}

/**
 * The production CPU kernel of {@linkcode certificateRowsOp} (the
 * reference): per token, the held experts in slot order (loads, objective,
 * `p`, an insertion by decreasing score), then the row summed as
 * `x + |x|` over every expert with the held ones' prices raised to `1e300`
 * (their terms exactly 0) without a branch; a row with a masked pair (a
 * NaN sum) summed again, the masked pairs skipped.
 */
export function certificateRowsCpu(args: CertificateRowsArgs): CertificateRows {
  const { scores: { data, tokens, experts }, k, slots } = args;
  const q = args.expertPrices;
  const loads = new Int32Array(experts);
  const p = new Float64Array(tokens);
  const out = new Int32Array(tokens * k);
  const terms = new Float64Array(tokens);
  const score = new Float64Array(k);
  // The prices, and at the token's experts a price so high that their
  // terms below are exactly 0: leaves them out without a multiply.
  const off = Float64Array.from(q);
  let objective = 0;
  for (let i = 0; i < tokens; i++) {
    const row = i * experts, base = i * k;
    let pi = Infinity;
    for (let r = 0; r < k; r++) {
      const j = slots[base + r];
      const v = data[row + j];
      if (v === -Infinity) {
        return {
          masked: i,
          tokenPrices: p,
          experts: out,
          loads,
          objective,
          terms,
        };
      }
      loads[j]++;
      objective += v;
      const x = v - q[j];
      if (x < pi) pi = x;
      // Insertion by decreasing score, ties to the lower index.
      let at = r;
      while (
        at > 0 &&
        (score[at - 1] < v || (score[at - 1] === v && out[base + at - 1] > j))
      ) {
        out[base + at] = out[base + at - 1];
        score[at] = score[at - 1];
        at--;
      }
      out[base + at] = j;
      score[at] = v;
    }
    p[i] = pi;
    for (let r = base; r < base + k; r++) off[out[r]] = HIGH;
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
    terms[i] = 0.5 * twice;
    for (let r = base; r < base + k; r++) off[out[r]] = q[out[r]];
  }
  return { masked: -1, tokenPrices: p, experts: out, loads, objective, terms };
}

registerKernel({
  op: certificateRowsOp,
  backend: "cpu",
  run: certificateRowsCpu,
  callers: ["solveBalancedAssignmentSync()", "solveBalancedAssignment()"],
});
