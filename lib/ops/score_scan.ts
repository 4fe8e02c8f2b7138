// The score scan op: the one pass over a score matrix with which the exact
// solver checks its input (lib/solve/_problem.ts): each token's count of
// unmasked experts, the largest magnitude of an unmasked score, and the
// first NaN or +Infinity. Its production CPU kernel is below.
import { checkObject, checkScoreShape } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** What the score scan op's validator takes. */
export interface ScoreScanRequest {
  /** Scores, `tokens x experts` (NaN and `+Infinity` are what it finds). */
  scores: ScoreMatrix;
}

/** Checked arguments of every score scan kernel. */
export interface ScoreScanArgs {
  scores: ScoreMatrix;
}

/** What a score scan kernel returns. */
export interface ScoreScan {
  /** Each token's count of entries that are not `-Infinity` (tokens). */
  finite: Int32Array;
  /**
   * The largest magnitude of an entry that is neither `-Infinity` nor
   * NaN (`0` where there is none, `Infinity` where a `+Infinity` is
   * there).
   */
  scale: number;
  /** The flat index of the first NaN or `+Infinity` in memory order, or -1. */
  bad: number;
}

/**
 * The score scan: for each token the entries that are not `-Infinity`
 * (a mask), the largest magnitude of the entries that are not masked, and
 * the first NaN or `+Infinity`.
 *
 * Backends: `"cpu"` (the reference) and `"wasm"` (WebAssembly SIMD on the
 * float bits, the same answers).
 */
export const scoreScanOp = defineOp<ScoreScanRequest, ScoreScanArgs, ScoreScan>(
  {
    name: "scoreScan",
    summary: "unmasked experts per token, the scores' scale, the first NaN",
    validate: (request) => {
      checkObject("request", request);
      return { scores: checkScoreShape("scores", request.scores) };
    },
  },
);

/** The production CPU kernel of {@linkcode scoreScanOp} (the reference). */
export function scoreScanCpu(args: ScoreScanArgs): ScoreScan {
  const { data, tokens, experts } = args.scores;
  const finite = new Int32Array(tokens);
  let bad = 0, hi = 0, lo = 0;
  for (let i = 0; i < tokens; i++) {
    let n = 0;
    for (let x = i * experts; x < (i + 1) * experts; x++) {
      const v = data[x];
      // NaN and +Infinity fail `v < Infinity`; -Infinity masks the pair.
      bad |= Number(!(v < Infinity));
      n += Number(v !== -Infinity);
      if (v > hi || v < lo) {
        if (v > hi) hi = v;
        else if (v !== -Infinity) lo = v;
      }
    }
    finite[i] = n;
  }
  let first = -1;
  if (bad) {
    first = 0;
    while (data[first] < Infinity) first++;
  }
  return { finite, scale: Math.max(hi, -lo), bad: first };
}

registerKernel({
  op: scoreScanOp,
  backend: "cpu",
  run: scoreScanCpu,
  callers: ["solveBalancedAssignmentSync()", "solveBalancedAssignment()"],
});
