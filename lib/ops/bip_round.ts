// The BIP dual round op (BIP-Based Balancing, Yuan Sun, arXiv 2502.15451;
// docs/algorithms.md sections 5 and 6) and its production CPU kernel, the
// rounds the `bip` balancer and `bipPrices` run.
import { checkInteger, checkScores, show } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { defineOp, registerKernel } from "./registry.ts";
import {
  type ColumnBounds,
  coordinateRounds,
  type DualScratch,
  dualScratch,
} from "./_dual.ts";

export {
  type ColumnBounds,
  columnBounds,
  type DualScratch,
  dualScratch,
} from "./_dual.ts";

/** Options of `bipPrices` (lib/route/bip.ts). */
export interface BipPricesOptions {
  /** Experts per token (`K`). */
  k: number;
  /** Expert capacity `C`. Default `ceil(tokens * k / experts)`. */
  capacity?: number;
  /** Coordinate rounds. Default `2`. */
  T?: number;
  /** Starting expert prices (experts). Default zeros. Not modified. */
  expertPrices?: ArrayLike<number>;
  /** Clip token prices at 0 (as the `bip` balancer's option). Default `true`. */
  clipTokenPrices?: boolean;
}

/** What the BIP round op's validator takes: the scores and the options. */
export interface BipRoundRequest {
  scores: ScoreMatrix;
  options: BipPricesOptions;
}

/** Checked arguments of every BIP round kernel. */
export interface BipRoundArgs {
  /** Scores, `tokens x experts`, no NaN or `+Infinity`. */
  scores: ScoreMatrix;
  /** Experts per token, `1 <= k <= experts`. */
  k: number;
  /** Expert capacity, `tokens * k <= experts * capacity`. */
  capacity: number;
  /** Expert prices `q` (experts): the start, overwritten by the result. */
  prices: Float64Array;
  /** Rounds, `>= 0`. */
  rounds: number;
  /**
   * `true`: `p, q >= 0` (the dual of "at most K experts per token");
   * `"experts"`: `q >= 0`, `p` free (the dual of "exactly K").
   */
  clip: true | "experts";
  /** CPU kernel scratch (reused between batches); others ignore it. */
  scratch?: DualScratch;
  /** CPU kernel candidate memory per layer (speed only); others ignore it. */
  bounds?: ColumnBounds;
}

/** What a BIP round kernel returns. */
export interface BipRoundResult {
  /** Expert prices `q` after the rounds (`args.prices`). */
  prices: Float64Array;
  /** Token prices `p` of the last round (tokens); meaningful when `rounds >= 1`. */
  tokenPrices: Float64Array;
}

/**
 * `rounds` rounds of exact coordinate minimisation of the
 * balanced-assignment dual, from the expert prices `q`:
 *
 * - `p[i] = (K+1)-th largest of s[i][j] - q[j] over j`, then `max(0, .)`
 *   when `clip` is `true` (`p = 0` when `K >= E`);
 * - `q[j] = max(0, (C+1)-th largest of s[i][j] - p[i] over i)` (`q = 0`
 *   when `C >= N`).
 *
 * Backends: `"cpu"` in float64 (the reference); `"webgpu"` in float32:
 * each price is an order statistic, which moves by at most the largest
 * change of its inputs, so the prices agree within float32 rounding of
 * `|s| + |q|` per round.
 */
export const bipRoundOp = defineOp<
  BipRoundRequest,
  BipRoundArgs,
  BipRoundResult
>(
  {
    name: "bipRound",
    summary: "BIP-Based Balancing's exact dual coordinate rounds on a batch",
    validate: checkBipRound,
  },
);

function checkBipRound(request: BipRoundRequest): BipRoundArgs {
  const scores = checkScores("scores", request.scores);
  const options = request.options;
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const { tokens: N, experts: E } = scores;
  const k = checkInteger("k", options.k, 1, E);
  const C = checkInteger(
    "capacity",
    options.capacity ?? Math.ceil((N * k) / E),
    0,
  );
  if (N * k > E * C) {
    throw new RangeError(
      `capacity is infeasible: tokens x k = ${
        N * k
      } exceeds experts x capacity = ${E * C}`,
    );
  }
  const T = checkInteger("T", options.T ?? 2, 0);
  const q = new Float64Array(E);
  if (options.expertPrices !== undefined) {
    const start = options.expertPrices;
    if (start === null || typeof start !== "object" || start.length !== E) {
      throw new TypeError(
        `expertPrices must have one entry per expert (${E}): current value is ${
          show(start)
        }`,
      );
    }
    for (let j = 0; j < E; j++) q[j] = start[j];
  }
  const clip = options.clipTokenPrices ?? true;
  if (typeof clip !== "boolean") {
    throw new TypeError(
      `clipTokenPrices must be a boolean: current value is ${show(clip)}`,
    );
  }
  return {
    scores,
    k,
    capacity: C,
    prices: q,
    rounds: T,
    clip: clip || "experts",
  };
}

/** The production CPU kernel of {@linkcode bipRoundOp}, in float64. */
export function bipRoundCpu(args: BipRoundArgs): BipRoundResult {
  const { scores, k } = args;
  const scratch = args.scratch ?? dualScratch(scores.tokens, scores.experts, k);
  coordinateRounds(
    scores,
    k,
    args.capacity,
    args.prices,
    args.rounds,
    args.clip,
    scratch,
    args.bounds,
  );
  return { prices: args.prices, tokenPrices: scratch.p };
}

registerKernel({
  op: bipRoundOp,
  backend: "cpu",
  run: bipRoundCpu,
  callers: ['bip balancer route() (host "cpu")'],
});
