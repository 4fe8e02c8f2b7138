import {
  badScore,
  checkChoice,
  checkInteger,
  checkNumber,
  checkScoreShape,
  show,
} from "../_validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { routeRows, writeSelection } from "./_route_rows.ts";
import { insert } from "./_select.ts";

/** Options of {@linkcode route}. */
export interface RouteOptions {
  /** Experts per token (`K`), `1 <= k <= experts`. */
  k: number;
  /**
   * Per-expert bias (`experts` entries) that changes the selection only:
   * top-K of `score + bias` (or `score * bias` with `biasMode: "multiply"`).
   * Default: no bias.
   */
  bias?: ArrayLike<number>;
  /** How the bias enters the selection. Default `"add"`. */
  biasMode?: "add" | "multiply";
  /** Normalise the gate weights to sum 1 over the selected experts. Default `false`. */
  normalize?: boolean;
  /** Multiply the gate weights by this factor (DeepSeek-V3: 2.5). Default `1`. */
  scale?: number;
  /**
   * Group-limited routing (DeepSeek-V3): split the experts into `groups`
   * equal groups, keep the `topGroups` best. Default: 1 group (off).
   */
  groups?: number;
  /** Number of groups kept. Default: all groups. */
  topGroups?: number;
  /** Reuse these output buffers (shapes must match). */
  out?: Routing;
}

/**
 * Allocates an empty {@linkcode Routing} for `tokens` tokens, `k` slots and
 * `experts` experts.
 *
 * @example
 * ```ts
 * import { createRouting } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const r = createRouting(3, 2, 4);
 * assert.equal(r.experts.length, 6);
 * assert.equal(r.loads.length, 4);
 * ```
 */
export function createRouting(
  tokens: number,
  k: number,
  experts: number,
): Routing {
  checkInteger("tokens", tokens, 0);
  checkInteger("k", k, 1);
  checkInteger("experts", experts, 1);
  return {
    experts: new Int32Array(tokens * k),
    weights: new Float32Array(tokens * k),
    loads: new Int32Array(experts),
    k,
  };
}

/**
 * Routes a batch: each token takes the top-`k` experts of `score + bias`
 * (ties to the lowest expert index), with gate weights from the unbiased
 * scores, and the load of every expert is counted.
 *
 * Formula (docs/algorithms.md section 2; Loss-Free Balancing, Wang et al.,
 * arXiv 2408.15664): `experts[i] = argtopk_j (s[i][j] + b[j])`,
 * `weights[i][r] = s[i][experts[i][r]]`, divided by their sum when
 * `normalize` is set, times `scale`. With `groups = G, topGroups = M`,
 * each group is scored by the sum of its top `max(1, floor(k / M))`
 * biased scores, only the `M` best groups stay eligible (ties to the lowest
 * group), and the top-`k` is taken over them.
 *
 * Cost `O(tokens * experts)` with a threshold pre-filter; no allocation per
 * token. `-Infinity` scores are allowed (masked experts); such experts are
 * selected only when fewer than `k` finite ones remain, lowest index first.
 *
 * @param scores Scores after the gate, `tokens x experts`.
 * @param options See {@linkcode RouteOptions}.
 * @returns Experts and weights (tokens x k, best first) and loads (experts).
 * @throws {TypeError} If the scores or `out` have the wrong shape.
 * @throws {RangeError} If `k > experts`, a score is NaN, the groups do not
 * divide the experts, or the bias has a non-finite entry.
 *
 * @example Top-2 with a bias that moves one token
 * ```ts
 * import { route } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const scores = {
 *   data: new Float32Array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5]),
 *   tokens: 2,
 *   experts: 3,
 * };
 * const plain = route(scores, { k: 2 });
 * assert.deepEqual([...plain.experts], [0, 1, 0, 1]);
 * assert.deepEqual([...plain.loads], [2, 2, 0]);
 *
 * const biased = route(scores, { k: 2, bias: [0, -0.75, 0] });
 * assert.deepEqual([...biased.experts], [0, 2, 0, 2]);
 * assert.deepEqual([...biased.weights], [0.9, 0.1, 0.7, 0.5].map(Math.fround));
 * ```
 */
export function route(scores: ScoreMatrix, options: RouteOptions): Routing {
  // NaN and +Infinity are found by the kernel while it reads the scores.
  checkScoreShape("scores", scores);
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const { tokens, experts } = scores;
  const k = checkInteger("k", options.k, 1);
  if (k > experts) {
    throw new RangeError(
      `k must be at most the number of experts (${experts}): current value is ${k}`,
    );
  }
  const mode = checkChoice("biasMode", options.biasMode ?? "add", [
    "add",
    "multiply",
  ]);
  const scale = checkNumber("scale", options.scale ?? 1);
  const groups = checkInteger("groups", options.groups ?? 1, 1, experts);
  if (experts % groups !== 0) {
    throw new RangeError(
      `groups must divide the number of experts (${experts}): current value is ${groups}`,
    );
  }
  const topGroups = checkInteger(
    "topGroups",
    options.topGroups ?? groups,
    1,
    groups,
  );
  if (topGroups * (experts / groups) < k) {
    throw new RangeError(
      `topGroups x group size must be at least k (${k}): current value is ${topGroups} x ${
        experts / groups
      }`,
    );
  }
  const bias = options.bias;
  if (bias !== undefined) {
    if (bias === null || typeof bias !== "object" || bias.length !== experts) {
      throw new TypeError(
        `bias must have one entry per expert (${experts}): current value is ${
          show(bias)
        }`,
      );
    }
    for (let j = 0; j < experts; j++) {
      if (!Number.isFinite(bias[j])) {
        throw new RangeError(`bias must be finite: entry ${j} is ${bias[j]}`);
      }
    }
  }
  const out = options.out ?? createRouting(tokens, k, experts);
  if (
    out.k !== k || out.experts.length !== tokens * k ||
    out.weights.length !== tokens * k ||
    out.loads.length !== experts
  ) {
    throw new TypeError(
      `out must be a Routing for ${tokens} tokens, k = ${k} and ${experts} experts`,
    );
  }
  routeInto(scores, k, out, {
    bias,
    multiply: mode === "multiply",
    normalize: options.normalize ?? false,
    scale,
    groups,
    topGroups,
  });
  return out;
}

/** Settings of {@linkcode routeInto}, already validated. */
export interface RouteKernelSettings {
  bias?: ArrayLike<number>;
  multiply?: boolean;
  normalize?: boolean;
  scale?: number;
  groups?: number;
  topGroups?: number;
}

/**
 * The routing kernel without argument checks, for callers that have
 * checked their input (balancers, the simulator). Same contract as
 * {@linkcode route}; a NaN or `+Infinity` score, found while the scores are
 * read, is still a RangeError.
 */
export function routeInto(
  scores: ScoreMatrix,
  k: number,
  out: Routing,
  settings: RouteKernelSettings = {},
): void {
  const { data, tokens, experts: E } = scores;
  const bias = settings.bias;
  const multiply = settings.multiply ?? false;
  const normalize = settings.normalize ?? false;
  const scale = settings.scale ?? 1;
  const groups = settings.groups ?? 1;
  const topGroups = settings.topGroups ?? groups;
  const loads = out.loads;
  loads.fill(0);
  const outE = out.experts;
  const outW = out.weights;
  const grouped = groups > 1 && topGroups < groups;
  if (!grouped) {
    // The pre-filtered row kernel of the fast path: same answers, fewer
    // comparisons, no row copy.
    const b64 = bias === undefined || bias instanceof Float64Array
      ? bias
      : Float64Array.from(bias);
    const bad = routeRows(
      data,
      E,
      k,
      { bias: b64, multiply, normalize, scale },
      0,
      tokens,
      outE,
      outW,
      loads,
      new Float64Array(k),
      new Int32Array(k),
    );
    if (bad >= 0) throw badScore("scores", scores, bad);
    return;
  }
  // Biased values of one token, reused for every token.
  const row = new Float64Array(E);
  const topV = new Float64Array(k);
  const topI = new Int32Array(k);
  const groupSize = E / groups;
  const perGroup = Math.max(1, Math.min(groupSize, Math.floor(k / topGroups)));
  const groupScore = new Float64Array(groups);
  const groupKeep = new Uint8Array(groups);
  const gv = new Float64Array(perGroup);
  const hasBias = bias !== undefined;
  for (let i = 0; i < tokens; i++) {
    const base = i * E;
    for (let j = 0; j < E; j++) {
      const x = data[base + j];
      if (x !== x || x === Infinity) throw badScore("scores", scores, base + j);
    }
    if (hasBias) {
      if (multiply) {
        for (let j = 0; j < E; j++) row[j] = data[base + j] * bias[j];
      } else for (let j = 0; j < E; j++) row[j] = data[base + j] + bias[j];
    } else {
      for (let j = 0; j < E; j++) row[j] = data[base + j];
    }
    if (grouped) {
      maskGroups(
        row,
        groups,
        groupSize,
        perGroup,
        topGroups,
        groupScore,
        groupKeep,
        gv,
      );
    }
    // Top-k by insertion: the first k fill the list, later entries enter
    // only when strictly larger than the k-th, so ties keep the lowest index.
    for (let j = 0; j < k; j++) insert(topV, topI, j, row[j], j);
    let th = topV[k - 1];
    for (let j = k; j < E; j++) {
      if (row[j] > th) th = insert(topV, topI, k - 1, row[j], j);
    }
    writeSelection(
      data,
      base,
      topI,
      k,
      i * k,
      outE,
      outW,
      loads,
      normalize,
      scale,
    );
  }
}

/** Sets the experts of all but the `topGroups` best groups to -Infinity. */
function maskGroups(
  row: Float64Array,
  groups: number,
  groupSize: number,
  perGroup: number,
  topGroups: number,
  groupScore: Float64Array,
  groupKeep: Uint8Array,
  gv: Float64Array,
): void {
  for (let g = 0; g < groups; g++) {
    let n = 0;
    for (let j = g * groupSize; j < (g + 1) * groupSize; j++) {
      const v = row[j];
      if (n === perGroup) {
        if (!(v > gv[perGroup - 1])) continue;
        n--;
      }
      let p = n;
      while (p > 0 && v > gv[p - 1]) {
        gv[p] = gv[p - 1];
        p--;
      }
      gv[p] = v;
      n++;
    }
    let s = 0;
    for (let r = 0; r < perGroup; r++) s += gv[r];
    groupScore[g] = s !== s ? -Infinity : s;
  }
  groupKeep.fill(0);
  for (let t = 0; t < topGroups; t++) {
    let best = -1;
    for (let g = 0; g < groups; g++) {
      if (!groupKeep[g] && (best < 0 || groupScore[g] > groupScore[best])) {
        best = g;
      }
    }
    groupKeep[best] = 1;
  }
  for (let g = 0; g < groups; g++) {
    if (groupKeep[g]) continue;
    row.fill(-Infinity, g * groupSize, (g + 1) * groupSize);
  }
}
