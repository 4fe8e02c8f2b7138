// The Expert Choice selection op (Zhou et al. 2022; docs/algorithms.md
// section 9) and its production CPU kernel, the routing the
// `expertChoice` balancer runs.
import { checkInteger, checkObject, checkScores, show } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { createRouting } from "../select/routing.ts";
import { keepThreshold } from "../select/order.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** What the Expert Choice op's validator takes. */
export interface ExpertChoiceRequest {
  /** Scores, `tokens x experts`. */
  scores: ScoreMatrix;
  /** Tokens per expert, `0 <= capacity <= tokens`. */
  capacity: number;
  /** Normalise each token's weights over its experts. Default `false`. */
  normalize?: boolean;
  /** Output with `k = experts` slots per token. Default: a new one. */
  out?: Routing;
}

/** Checked arguments of every Expert Choice kernel. */
export interface ExpertChoiceArgs {
  scores: ScoreMatrix;
  capacity: number;
  normalize: boolean;
  out: Routing;
  /** CPU kernel scratch (reused between batches); others ignore it. */
  scratch?: ExpertChoiceScratch;
}

/** Scratch of the CPU kernel for one batch shape. */
export interface ExpertChoiceScratch {
  /** One column (tokens). */
  col: Float64Array;
  /** Chosen pairs (tokens x experts). */
  chosen: Uint8Array;
  /** One token's chosen scores (experts). */
  slotV: Float64Array;
}

/** An {@linkcode ExpertChoiceScratch} for the shape (or `reuse` when it fits). */
export function expertChoiceScratch(
  tokens: number,
  experts: number,
  reuse?: ExpertChoiceScratch,
): ExpertChoiceScratch {
  if (
    reuse && reuse.chosen.length === tokens * experts &&
    reuse.slotV.length === experts
  ) {
    return reuse;
  }
  return {
    col: new Float64Array(tokens),
    chosen: new Uint8Array(tokens * experts),
    slotV: new Float64Array(experts),
  };
}

/**
 * Expert Choice: each expert takes the `capacity` tokens of largest score
 * (column-wise top-C, ties to the lowest token index), so every load is
 * `capacity`. The routing has `k = experts` slots per token: a token's
 * experts first, best score first (ties to the lowest expert index), the
 * other slots `-1` with weight 0; weights are the scores (`-Infinity`
 * weighs 0), normalised over the token's experts when asked.
 *
 * Backends: `"cpu"` (the reference); any other kernel must choose the same
 * pairs (the scores are compared as float32 values, exactly), weights
 * within float32 rounding.
 */
export const expertChoiceOp = defineOp<
  ExpertChoiceRequest,
  ExpertChoiceArgs,
  Routing
>({
  name: "expertChoice",
  summary: "Expert Choice: each expert takes its top-C tokens",
  validate: checkExpertChoice,
});

function checkExpertChoice(request: ExpertChoiceRequest): ExpertChoiceArgs {
  checkObject("request", request);
  const scores = checkScores("scores", request.scores);
  const { tokens: N, experts: E } = scores;
  const capacity = checkInteger("capacity", request.capacity, 0, N);
  const normalize = request.normalize ?? false;
  if (typeof normalize !== "boolean") {
    throw new TypeError(
      `normalize must be a boolean: current value is ${show(normalize)}`,
    );
  }
  const out = request.out ?? createRouting(N, E, E);
  if (
    out === null || typeof out !== "object" || out.k !== E ||
    out.experts?.length !== N * E || out.weights?.length !== N * E ||
    out.loads?.length !== E
  ) {
    throw new TypeError(
      `out must be a Routing for ${N} tokens, k = ${E} and ${E} experts`,
    );
  }
  return { scores, capacity, normalize, out };
}

/** The production CPU kernel of {@linkcode expertChoiceOp}. */
export function expertChoiceCpu(args: ExpertChoiceArgs): Routing {
  const { scores, capacity: C, out } = args;
  const { data, tokens: N, experts: E } = scores;
  const { col, chosen, slotV } = expertChoiceScratch(N, E, args.scratch);
  chosen.fill(0);
  for (let j = 0; j < E; j++) {
    if (C === 0) break;
    for (let i = 0, o = j; i < N; i++, o += E) col[i] = data[o];
    // The C-th largest is the threshold; ties at it go to the lowest
    // token indices until C are taken.
    let [t, ties] = keepThreshold(col, N, C);
    for (let i = 0, o = j; i < N; i++, o += E) {
      const v = data[o];
      if (v > t || (v === t && ties-- > 0)) chosen[o] = 1;
    }
  }
  fillSlots(data, N, E, chosen, out, slotV, args.normalize);
  out.loads.fill(C);
  return out;
}

registerKernel({
  op: expertChoiceOp,
  backend: "cpu",
  run: expertChoiceCpu,
  callers: ["expertChoice balancer route()"],
});

/** Writes each token's chosen experts into its slots, best score first. */
function fillSlots(
  data: Float32Array,
  N: number,
  E: number,
  chosen: Uint8Array,
  out: Routing,
  slotV: Float64Array,
  normalize: boolean,
): void {
  const outE = out.experts, outW = out.weights;
  outE.fill(-1);
  outW.fill(0);
  for (let i = 0; i < N; i++) {
    const base = i * E;
    let n = 0;
    // Insertion by score; an equal score stays behind (lower index first).
    for (let j = 0; j < E; j++) {
      if (!chosen[base + j]) continue;
      const v = data[base + j];
      let p = n;
      while (p > 0 && v > slotV[p - 1]) {
        slotV[p] = slotV[p - 1];
        outE[base + p] = outE[base + p - 1];
        p--;
      }
      slotV[p] = v;
      outE[base + p] = j;
      n++;
    }
    let sum = 0;
    for (let r = 0; r < n; r++) {
      const w = slotV[r] > -Infinity ? slotV[r] : 0;
      outW[base + r] = w;
      sum += w;
    }
    if (normalize && sum > 0) {
      for (let r = 0; r < n; r++) outW[base + r] /= sum;
    }
  }
}
