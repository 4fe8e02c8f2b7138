// The capacity dropping op (GShard, Switch Transformer; docs/algorithms.md
// section 10) and its production CPU kernel, what the `capacity` balancer
// does after plain top-K routing.
import {
  checkChoice,
  checkInteger,
  checkObject,
  checkRoutingShape,
  checkScores,
} from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { keepThreshold } from "../select/order.ts";
import { defineOp, registerKernel } from "./registry.ts";

/** What the capacity dropping op's validator takes. */
export interface CapacityDropRequest {
  /** Scores, `tokens x experts`. */
  scores: ScoreMatrix;
  /** A top-K routing of those scores (every slot an expert), changed in place. */
  routing: Routing;
  /** Tokens an expert keeps, `>= 0`. */
  capacity: number;
  /**
   * `"probs"` drops the lowest routing probabilities, the routing's
   * weights (ties: the later token); `"position"` the latest tokens.
   */
  drop: "probs" | "position";
}

/** Checked arguments of every capacity dropping kernel. */
export interface CapacityDropArgs extends CapacityDropRequest {
  /** CPU kernel scratch (reused between batches); others ignore it. */
  scratch?: CapacityDropScratch;
}

/** Scratch of the CPU kernel for one batch shape. */
export interface CapacityDropScratch {
  /** First slot of each expert in `bySlot` (experts + 1). */
  start: Int32Array;
  /** Slots grouped by expert, in token order (tokens x k). */
  bySlot: Int32Array;
  /** One expert's routing probabilities (tokens x k at most). */
  vals: Float64Array;
}

/** A {@linkcode CapacityDropScratch} for the shape (or `reuse` when it fits). */
export function capacityDropScratch(
  slots: number,
  experts: number,
  reuse?: CapacityDropScratch,
): CapacityDropScratch {
  if (
    reuse && reuse.bySlot.length === slots && reuse.start.length === experts + 1
  ) {
    return reuse;
  }
  return {
    start: new Int32Array(experts + 1),
    bySlot: new Int32Array(slots),
    vals: new Float64Array(slots),
  };
}

/**
 * Capacity dropping: each expert keeps at most `capacity` of the slots
 * that selected it and drops the rest: the lowest routing probabilities
 * (`"probs"`: the routing's weights, after normalisation and scaling, as
 * Megatron-Core's `moe_token_drop_policy="probs"` ranks them; ties drop
 * the later token) or the latest tokens (`"position"`). A dropped
 * slot becomes expert `-1`, weight 0; each token's kept slots move first,
 * in their order; kept weights are not renormalised; loads become the kept
 * counts. Returns `args.routing`.
 *
 * Backends: `"cpu"` (the reference); any other kernel must drop the same
 * slots exactly.
 */
export const capacityDropOp = defineOp<
  CapacityDropRequest,
  CapacityDropArgs,
  Routing
>({
  name: "capacityDrop",
  summary:
    "drop the assignments over an expert capacity, by routing probability or position",
  validate: checkCapacityDrop,
});

function checkCapacityDrop(request: CapacityDropRequest): CapacityDropArgs {
  checkObject("request", request);
  const scores = checkScores("scores", request.scores);
  const { tokens: N, experts: E } = scores;
  const routing = checkRoutingShape("routing", request.routing, N, E);
  const k = routing.k;
  const counts = new Int32Array(E);
  for (let s = 0; s < N * k; s++) {
    const j = routing.experts[s];
    if (!(j >= 0 && j < E)) {
      throw new RangeError(
        `routing.experts must hold experts in [0, ${E}): slot ${s} is ${j}`,
      );
    }
    counts[j]++;
  }
  for (let j = 0; j < E; j++) {
    if (counts[j] !== routing.loads[j]) {
      throw new RangeError(
        `routing.loads must count the slots: expert ${j} has ${
          counts[j]
        }, loads say ${routing.loads[j]}`,
      );
    }
  }
  for (let s = 0; s < N * k; s++) {
    if (Number.isNaN(routing.weights[s])) {
      throw new RangeError(
        `routing.weights must be numbers (the routing probabilities): slot ${s} is NaN`,
      );
    }
  }
  return {
    scores,
    routing,
    capacity: checkInteger("capacity", request.capacity, 0),
    drop: checkChoice("drop", request.drop, ["probs", "position"]),
  };
}

/** The production CPU kernel of {@linkcode capacityDropOp}. */
export function capacityDropCpu(args: CapacityDropArgs): Routing {
  const { scores, routing: out, capacity: cap, drop } = args;
  const { tokens: N, experts: E } = scores;
  const K = out.k;
  const { start, bySlot, vals } = capacityDropScratch(N * K, E, args.scratch);
  const sel = out.experts, loads = out.loads;
  // Slots grouped by expert, in token order (a counting sort).
  start[0] = 0;
  for (let j = 0; j < E; j++) start[j + 1] = start[j] + loads[j];
  for (let j = 0; j < E; j++) loads[j] = 0;
  for (let s = 0; s < N * K; s++) {
    const j = sel[s];
    bySlot[start[j] + loads[j]++] = s;
  }
  for (let j = 0; j < E; j++) {
    const n = loads[j];
    if (n <= cap) continue;
    const lo = start[j];
    if (drop === "position") {
      for (let r = cap; r < n; r++) sel[bySlot[lo + r]] = -1;
    } else {
      dropLowest(out.weights, bySlot, lo, n, cap, sel, vals);
    }
    loads[j] = cap;
  }
  compact(out, N, K);
  return out;
}

registerKernel({
  op: capacityDropOp,
  backend: "cpu",
  run: capacityDropCpu,
  callers: ["capacity balancer route()"],
});

/**
 * Keeps the `cap` of one expert's `n` slots `bySlot[lo, lo + n)` (token
 * order) with the highest routing probability (`weights`, per slot), ties
 * kept by the earlier token.
 */
function dropLowest(
  weights: Float32Array,
  bySlot: Int32Array,
  lo: number,
  n: number,
  cap: number,
  sel: Int32Array,
  vals: Float64Array,
): void {
  for (let r = 0; r < n; r++) vals[r] = weights[bySlot[lo + r]];
  let [t, ties] = keepThreshold(vals, n, cap);
  for (let r = 0; r < n; r++) {
    const s = bySlot[lo + r];
    const v = weights[s];
    if (!(v > t || (v === t && ties-- > 0))) sel[s] = -1;
  }
}

/** Moves each token's kept slots first; dropped ones become `-1`, weight 0. */
function compact(out: Routing, N: number, K: number): void {
  const sel = out.experts, w = out.weights;
  for (let i = 0; i < N; i++) {
    let n = i * K;
    for (let r = i * K; r < (i + 1) * K; r++) {
      if (sel[r] < 0) continue;
      sel[n] = sel[r];
      w[n] = w[r];
      n++;
    }
    for (; n < (i + 1) * K; n++) {
      sel[n] = -1;
      w[n] = 0;
    }
  }
}
