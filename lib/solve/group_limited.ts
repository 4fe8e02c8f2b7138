/**
 * The balanced assignment under node-limited routing (DeepSeek-V3's group
 * limit): each token's `k` experts must come from at most `topGroups` of
 * the `groups` equal groups of consecutive experts. This constraint breaks
 * the flow structure, so the problem is an integer program in general;
 * {@linkcode groupLimitedBounds} brackets its optimum instead of claiming
 * it (docs/algorithms.md section 5, "Under a group limit").
 *
 * @module
 */
import { checkInteger, checkScoreShape, show } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { solveBalancedAssignmentSync } from "./solve_balanced_assignment_sync.ts";
import type { BalancedAssignment, BalancedAssignmentOptions } from "./types.ts";
import { type GroupDp, groupDp } from "./_group_dp.ts";

/** Options of {@linkcode groupLimitedBounds}. */
export interface GroupLimitOptions extends BalancedAssignmentOptions {
  /** Equal groups of consecutive experts; must divide the experts. */
  groups: number;
  /** Groups a token may use, `1 <= topGroups <= groups`, holding at least `k` experts. */
  topGroups: number;
  /**
   * Starting prices of the restricted solve (`experts` finite entries),
   * for example the previous batch's `assignment.expertPrices`. Default:
   * the relaxation's optimal prices. Any start gives the same bounds.
   */
  restrictedPrices?: ArrayLike<number>;
}

/**
 * A bracket of the group-limited optimum: `lowerBound <= optimum <=
 * upperBound`, with a feasible group-limited assignment that reaches the
 * lower bound.
 */
export interface GroupLimitedBounds {
  /**
   * The best group-limited assignment found: every token on `k` distinct
   * experts from at most `topGroups` groups, every expert within capacity.
   * Its `expertPrices` and `dualityGap` refer to the restricted problem it
   * solved (each token kept to its chosen groups), not to the
   * group-limited problem; where capacities are so tight that the
   * restriction and its repair find nothing (small instances), tokens take
   * their best sets in order, with zero prices and a `NaN` gap.
   */
  readonly assignment: BalancedAssignment;
  /** The assignment's objective: a lower bound of the group-limited optimum. */
  readonly lowerBound: number;
  /**
   * An upper bound of the group-limited optimum: the least of the flow
   * relaxation and the Lagrangian bounds at the prices tried.
   */
  readonly upperBound: number;
  /**
   * The optimum of the flow relaxation, which ignores the group limit
   * (what {@linkcode solveBalancedAssignmentSync} returns): an upper bound,
   * usually looser than `upperBound`.
   */
  readonly relaxation: number;
  /** The relaxation's optimal expert prices (a warm start for the next batch). */
  readonly relaxationPrices: Float64Array;
  /** `(upperBound - lowerBound) / |upperBound|` (0 when the upper bound is 0). */
  readonly bracket: number;
}

/**
 * Brackets the optimum of the balanced assignment under a group limit:
 * maximise the sum of the selected scores with every token on exactly `k`
 * distinct experts from at most `topGroups` groups and every expert on at
 * most `capacity` tokens.
 *
 * Upper bound: relaxing the capacities with expert prices `q >= 0` leaves
 * one problem per token, `L(q) = C * sum_j q[j] + sum_i max over
 * group-limited k-sets S of sum_{j in S} (s[i][j] - q[j])`, which a small
 * dynamic programme over the groups solves exactly (`O(groups * topGroups
 * * k^2)` per token). `L(q)` is at most the flow relaxation (the group
 * limit dropped) at its optimal prices; the least of the values tried is
 * returned. Lower bound: each token is kept to the groups of its best
 * group-limited set under the relaxation's prices (completed to
 * `topGroups` groups by their best entry), the other pairs are masked,
 * and the flow problem is solved exactly on what is left (warm-started
 * from the relaxation's prices); its optimum is feasible for the group
 * limit. The restricted problem's optimal prices give a second Lagrangian
 * bound. At DeepSeek-V3's shape (256 experts, top-8, 8 groups, 4 kept)
 * the bracket is about 0.05 % of the optimum, against about 2.3 % between
 * the relaxation and the group-limited optimum (docs/findings.md).
 *
 * @param scores Scores (tokens x experts, row-major); `-Infinity` masks a pair.
 * @param options `k`, `groups`, `topGroups`, and the options of
 * {@linkcode solveBalancedAssignmentSync} (`capacity` or `capacityFactor`,
 * `expertPrices` as the relaxation's start, `timeLimit` per solve).
 * @returns The bracket and the assignment that reaches its lower bound.
 * @throws {TypeError} If `scores` or `options` has the wrong type or shape.
 * @throws {RangeError} If `groups` does not divide the experts, `topGroups`
 * is outside `[1, groups]` or its groups hold fewer than `k` experts, or
 * for any reason {@linkcode solveBalancedAssignmentSync} throws.
 * @throws {Error} If the tokens' groups under the relaxation's prices
 * leave no feasible assignment (never seen without masked scores).
 *
 * @example Two groups of two experts, one group per token
 * ```ts
 * import { groupLimitedBounds, solveBalancedAssignmentSync } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // Token 0 likes experts 0 and 2 (different groups); k = 2, one group each.
 * const scores = {
 *   data: new Float32Array([
 *     0.9, 0.1, 0.8, 0.2,
 *     0.5, 0.5, 0.5, 0.5,
 *   ]),
 *   tokens: 2,
 *   experts: 4,
 * };
 * const free = solveBalancedAssignmentSync(scores, { k: 2 });
 * assert.ok(Math.abs(free.objective - 2.7) < 1e-6); // 0.9 + 0.8 + 0.5 + 0.5
 * const b = groupLimitedBounds(scores, { k: 2, groups: 2, topGroups: 1 });
 * // Token 0 keeps expert 0 or 2 with its group partner: 0.9 + 0.1 or 0.8 + 0.2.
 * assert.ok(Math.abs(b.lowerBound - 2.0) < 1e-6);
 * assert.ok(Math.abs(b.upperBound - 2.0) < 1e-6);
 * assert.ok(b.relaxation > b.upperBound);
 * ```
 */
export function groupLimitedBounds(
  scores: ScoreMatrix,
  options: GroupLimitOptions,
): GroupLimitedBounds {
  const { tokens, experts: E } = checkScoreShape("scores", scores);
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const G = checkInteger("options.groups", options.groups, 1, E);
  if (E % G !== 0) {
    throw new RangeError(
      `options.groups must divide the number of experts (${E}): current value is ${G}`,
    );
  }
  const M = checkInteger("options.topGroups", options.topGroups, 1, G);
  const k = options.k;
  if (typeof k === "number" && M * (E / G) < k) {
    throw new RangeError(
      `options.topGroups x group size must be at least k (${k}): current value is ${M} x ${
        E / G
      }`,
    );
  }
  const relaxed = solveBalancedAssignmentSync(scores, options);
  const { capacity } = relaxed;
  if (M === G) {
    return {
      assignment: relaxed,
      lowerBound: relaxed.objective,
      upperBound: relaxed.objective,
      relaxation: relaxed.objective,
      relaxationPrices: relaxed.expertPrices,
      bracket: 0,
    };
  }
  const dp = groupDp(E, G, M, k);
  const allowed = new Uint8Array(G);
  // The Lagrangian bound at the relaxation's prices, and each token's groups.
  const keep = new Uint8Array(tokens * G);
  let upper = Math.min(
    relaxed.objective,
    lagrangianBound(dp, scores, capacity, relaxed.expertPrices, allowed, keep),
  );
  const start = options.restrictedPrices === undefined
    ? relaxed.expertPrices
    : startPrices(options.restrictedPrices, E);
  const best = restrictedOptimum(
    scores,
    k,
    capacity,
    G,
    M,
    keep,
    start,
    relaxed,
    dp,
    options.host,
  );
  checkGroupLimited(best, tokens, k, dp.size, M);
  // The restricted problem's prices give a second, often lower, bound.
  upper = Math.min(
    upper,
    lagrangianBound(dp, scores, capacity, best.expertPrices, allowed),
  );
  // Rounding can put the bound a hair under a feasible objective.
  upper = Math.max(upper, best.objective);
  return {
    assignment: best,
    lowerBound: best.objective,
    upperBound: upper,
    relaxation: relaxed.objective,
    relaxationPrices: relaxed.expertPrices,
    bracket: upper === 0 ? 0 : (upper - best.objective) / Math.abs(upper),
  };
}

/** `options.restrictedPrices`, checked: `experts` finite numbers. */
function startPrices(q: ArrayLike<number>, E: number): Float64Array {
  if (q === null || typeof q !== "object" || q.length !== E) {
    throw new TypeError(
      `options.restrictedPrices must hold ${E} numbers (one per expert): current value is ${
        show(q)
      }`,
    );
  }
  const out = Float64Array.from(q);
  const bad = out.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new RangeError(
      `options.restrictedPrices must be finite: entry ${bad} is ${out[bad]}`,
    );
  }
  return out;
}

/** Throws unless every token's experts lie in at most `M` groups. */
function checkGroupLimited(
  a: BalancedAssignment,
  tokens: number,
  k: number,
  size: number,
  M: number,
): void {
  for (let i = 0; i < tokens; i++) {
    const seen = new Set<number>();
    for (let r = i * k; r < (i + 1) * k; r++) {
      seen.add(Math.floor(a.experts[r] / size));
    }
    if (seen.size > M) {
      throw new Error(`token ${i} uses ${seen.size} groups, more than ${M}`);
    }
  }
}

/**
 * `L(q) = C * sum_j q[j] + sum_i` (token i's best group-limited k-set of
 * `s - q`), an upper bound of the group-limited optimum for any `q >= 0`.
 * With `keep` (tokens x groups), also marks the groups of each token's
 * best set, completed to `topGroups` groups.
 */
function lagrangianBound(
  dp: GroupDp,
  scores: ScoreMatrix,
  capacity: number,
  q: Float64Array,
  allowed: Uint8Array,
  keep?: Uint8Array,
): number {
  const { data, tokens, experts: E } = scores;
  let bound = 0;
  for (let j = 0; j < E; j++) bound += capacity * q[j];
  for (let i = 0; i < tokens; i++) {
    bound += dp.solve(data, i * E, q, allowed);
    keep?.set(allowed, i * allowed.length);
  }
  return bound;
}

/** Rounds of the repair before giving up (each one flow solve). */
const REPAIR_ROUNDS = 8;

/**
 * The flow optimum with each token kept to its groups in `keep`. Where
 * that leaves no feasible assignment, the other pairs are penalised
 * instead of masked, and each token the optimum takes into more than `M`
 * groups is kept to the `M` groups it uses most; the penalty doubles each
 * round. The result is checked against the group limit and scored on the
 * original scores.
 */
/**
 * The restricted problem's scores, reused from call to call (16 MiB at
 * DeepSeek-V3's 16384 x 256): a fresh copy each call stayed allocated
 * until a major collection, some hundreds of MiB across the sim's sampled
 * steps. Nothing returned refers to it; the solve is synchronous.
 */
let masked32: Float32Array | undefined;
function maskedScratch(n: number): Float32Array {
  if (!masked32 || masked32.length < n) masked32 = new Float32Array(n);
  return masked32.subarray(0, n);
}

function restrictedOptimum(
  scores: ScoreMatrix,
  k: number,
  capacity: number,
  G: number,
  M: number,
  keep: Uint8Array,
  start: Float64Array,
  relaxed: BalancedAssignment,
  dp: GroupDp,
  host: "cpu" | "wasm" | undefined,
): BalancedAssignment {
  const { data, tokens, experts: E } = scores;
  const size = E / G;
  const allowed = new Uint8Array(G);
  const masked = maskedScratch(data.length);
  const used = new Int32Array(G);
  let lo = Infinity, hi = -Infinity;
  for (const v of data) {
    if (v === -Infinity) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  let penalty = Infinity, prices = start;
  for (let round = 0; round < REPAIR_ROUNDS; round++) {
    for (let x = 0; x < tokens * G; x++) {
      const from = x * size, to = from + size;
      if (keep[x] === 1) masked.set(data.subarray(from, to), from);
      else if (penalty === Infinity) masked.fill(-Infinity, from, to);
      else {
        for (let y = from; y < to; y++) masked[y] = data[y] - penalty;
      }
    }
    let a: BalancedAssignment;
    try {
      a = solveBalancedAssignmentSync(
        { data: masked, tokens, experts: E },
        { k, capacity, expertPrices: prices, host },
      );
    } catch (e) {
      if (
        penalty === Infinity && e instanceof RangeError &&
        /mask/.test(e.message)
      ) {
        penalty = 2 * (hi - lo) + 1;
        continue;
      }
      throw e;
    }
    prices = a.expertPrices;
    let violators = 0;
    for (let i = 0; i < tokens; i++) {
      used.fill(0);
      let groups = 0;
      for (let r = i * k; r < (i + 1) * k; r++) {
        if (used[Math.floor(a.experts[r] / size)]++ === 0) groups++;
      }
      if (groups <= M) continue;
      violators++;
      // Its best groups at the new prices, which have risen where the
      // kept groups were congested.
      dp.solve(data, i * E, prices, allowed);
      keep.set(allowed, i * G);
    }
    if (violators === 0) return rescored(a, scores);
    penalty *= 2;
  }
  return sequential(scores, k, capacity, dp, relaxed);
}

/**
 * The last resort when the repair does not settle (tight capacities on
 * small instances): tokens in order, each taking its best group-limited
 * k-set among the experts with room left.
 */
function sequential(
  scores: ScoreMatrix,
  k: number,
  capacity: number,
  dp: GroupDp,
  relaxed: BalancedAssignment,
): BalancedAssignment {
  const { data, tokens, experts: E } = scores;
  const left = new Int32Array(E).fill(capacity);
  const row = new Float32Array(E), zero = new Float64Array(E);
  const allowed = new Uint8Array(E / dp.size);
  const experts = new Int32Array(tokens * k);
  const order = Array.from({ length: E }, (_, j) => j);
  for (let i = 0; i < tokens; i++) {
    for (let j = 0; j < E; j++) {
      row[j] = left[j] > 0 ? data[i * E + j] : -Infinity;
    }
    if (dp.solve(row, 0, zero, allowed) === -Infinity) {
      throw new Error(
        `no group-limited assignment found: token ${i} has no k = ${k} experts with room in its groups`,
      );
    }
    const set = order.filter((j) =>
      allowed[Math.floor(j / dp.size)] === 1 && row[j] > -Infinity
    ).sort((x, y) => row[y] - row[x] || x - y).slice(0, k);
    for (let r = 0; r < k; r++) {
      experts[i * k + r] = set[r];
      left[set[r]]--;
    }
  }
  const loads = new Int32Array(E);
  for (const j of experts) loads[j]++;
  return rescored({
    ...relaxed,
    experts,
    loads,
    expertPrices: new Float64Array(E),
    tokenPrices: new Float64Array(tokens),
    dualityGap: NaN,
  }, scores);
}

/** The assignment scored on the original scores, each token's experts by decreasing score. */
function rescored(
  a: BalancedAssignment,
  scores: ScoreMatrix,
): BalancedAssignment {
  const { data, tokens, experts: E } = scores;
  const k = a.k, out = a.experts.slice();
  let objective = 0;
  for (let i = 0; i < tokens; i++) {
    const row = i * E, set = [...out.subarray(i * k, (i + 1) * k)];
    set.sort((x, y) => data[row + y] - data[row + x] || x - y);
    out.set(set, i * k);
    for (const j of set) objective += data[row + j];
  }
  return { ...a, experts: out, objective };
}
