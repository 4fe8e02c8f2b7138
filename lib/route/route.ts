// The public routing functions of the CPU: route() validates once with the
// route op's validator and runs its CPU kernel; routeInto() runs the kernel
// on settings its caller has checked. The rule itself lives in lib/ops.
import type { Routing, ScoreMatrix } from "../types.ts";
import { type GroupScore, routeOp, type RouteOptions } from "../ops/route.ts";
import { HOST_BACKENDS, type HostBackend, runOnHost } from "../ops/host.ts";
import { checkChoice } from "../validate.ts";
// Registers the route op's "wasm" kernel, which runOnHost picks.
import "../ops/route_wasm.ts";

export { createRouting } from "../select/routing.ts";
export type { GroupScore, RouteOptions } from "../ops/route.ts";
export type { HostBackend } from "../ops/host.ts";

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
 * biased scores (Megatron-Core's rule; `groupScore: "v3"` sums the top 2 as
 * DeepSeek-V3's gate does, `"v2"` takes the maximum as DeepSeek-V2 does),
 * only the `M` best groups stay eligible (ties to the lowest group), and
 * the top-`k` is taken over them.
 *
 * Cost `O(tokens * experts)` with a threshold pre-filter; no allocation per
 * token. `-Infinity` scores are allowed (masked experts); such experts are
 * selected only when fewer than `k` finite ones remain, lowest index first.
 *
 * @param scores Scores after the gate, `tokens x experts`.
 * @param options See {@linkcode RouteOptions}; `host`: `"wasm"` (the
 * default: the WebAssembly SIMD kernel where the engine runs it) or
 * `"cpu"` (the TypeScript kernel, the reference), with the same answer.
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
export function route(
  scores: ScoreMatrix,
  options: RouteOptions & { host?: HostBackend },
): Routing {
  const args = routeOp.validate({ scores, options });
  const host = checkChoice("host", options.host ?? "wasm", HOST_BACKENDS);
  return runOnHost(routeOp, args, host);
}

/** Settings of {@linkcode routeInto}, already validated. */
export interface RouteKernelSettings {
  bias?: ArrayLike<number>;
  multiply?: boolean;
  normalize?: boolean;
  scale?: number;
  groups?: number;
  topGroups?: number;
  groupScore?: GroupScore;
  /** Where it runs: `"wasm"` (default) or `"cpu"` (the TypeScript reference). */
  host?: HostBackend;
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
  const bias = settings.bias;
  const groups = settings.groups ?? 1;
  runOnHost(routeOp, {
    scores,
    k,
    bias: bias === undefined || bias instanceof Float64Array
      ? bias
      : Float64Array.from(bias),
    multiply: settings.multiply ?? false,
    normalize: settings.normalize ?? false,
    scale: settings.scale ?? 1,
    groups,
    topGroups: settings.topGroups ?? groups,
    groupScore: settings.groupScore,
    out,
  }, settings.host ?? "wasm");
}
