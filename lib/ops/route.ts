// The route op: biased top-K selection with gate weights and loads, one
// validator for route(), routeInto's callers, routeParallel and routeAsync,
// and the production CPU kernel (the reference of every other backend).
import {
  badScore,
  checkChoice,
  checkInteger,
  checkNumber,
  checkScoreShape,
  show,
} from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { createRouting } from "../select/routing.ts";
import { defineOp, registerKernel } from "./registry.ts";
import { rowRouter } from "./_route_blocks.ts";
import type { RowRouterMaker, RowSettings } from "./_route_rows.ts";

/** Options of `route` (lib/route/route.ts). */
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
  /**
   * How a group is scored for group-limited routing (see
   * {@linkcode GroupScore}). Default `"megatron"`.
   */
  groupScore?: GroupScore;
  /** Reuse these output buffers (shapes must match). */
  out?: Routing;
}

/**
 * How group-limited routing scores a group, over the (biased) keys of its
 * experts:
 *
 * - `"megatron"`: the sum of its top `max(1, floor(k / topGroups))` keys,
 *   Megatron-Core's `group_limited_topk` (`moe_router_num_groups`,
 *   `moe_router_group_topk`). For DeepSeek-V3's settings (k = 8, 4 of 8
 *   groups) that is the top 2, as in V3's gate;
 * - `"v3"`: the sum of its top 2 keys, DeepSeek-V3's `Gate` (with its
 *   bias), whatever `k` and `topGroups`;
 * - `"v2"`: its largest key, DeepSeek-V2's device-limited routing (and
 *   V3's gate without a bias).
 */
export type GroupScore = "megatron" | "v3" | "v2";

/** The group scorings, for validation and help text. */
export const GROUP_SCORES: readonly GroupScore[] = ["megatron", "v3", "v2"];

/**
 * How many of a group's top keys are summed to score it: `"megatron"`
 * `max(1, floor(k / topGroups))`, `"v3"` 2, `"v2"` 1, never more than the
 * group size. The one place the CPU and GPU route kernels read it from.
 */
export function groupTopCount(
  k: number,
  topGroups: number,
  groupSize: number,
  groupScore: GroupScore = "megatron",
): number {
  const n = groupScore === "v2"
    ? 1
    : groupScore === "v3"
    ? 2
    : Math.max(1, Math.floor(k / topGroups));
  return Math.max(1, Math.min(groupSize, n));
}

/** What the route op's validator takes: the scores and the options. */
export interface RouteRequest {
  scores: ScoreMatrix;
  options: RouteOptions;
}

/** Checked arguments of every route kernel. */
export interface RouteArgs {
  /** Scores, `tokens x experts` (shape checked; NaN is the kernel's to find). */
  scores: ScoreMatrix;
  /** Experts per token, `1 <= k <= experts`. */
  k: number;
  /** Finite bias per expert, or `undefined` for none. */
  bias: Float64Array | undefined;
  /** Select on `s * b` instead of `s + b`. */
  multiply: boolean;
  /** Normalise the weights over the selection. */
  normalize: boolean;
  /** Factor on the weights. */
  scale: number;
  /** Groups (`1`: off); divides `experts`. */
  groups: number;
  /** Groups kept, `1 <= topGroups <= groups`. */
  topGroups: number;
  /** How a group is scored (`"megatron"` when absent). */
  groupScore?: GroupScore;
  /** Output, of the batch's shape; overwritten. */
  out: Routing;
}

/**
 * Checks group-limited routing settings against `experts` and `k` and
 * fills their defaults (1 group, all kept): the groups divide the experts,
 * `1 <= topGroups <= groups`, and the kept groups hold at least `k`
 * experts. The one place the route op and the balancers' contexts check
 * them.
 */
export function checkGroupLimit(
  experts: number,
  k: number,
  groupsIn: unknown,
  topGroupsIn: unknown,
): { groups: number; topGroups: number } {
  const groups = checkInteger("groups", groupsIn ?? 1, 1, experts);
  if (experts % groups !== 0) {
    throw new RangeError(
      `groups must divide the number of experts (${experts}): current value is ${groups}`,
    );
  }
  const topGroups = checkInteger("topGroups", topGroupsIn ?? groups, 1, groups);
  if (topGroups * (experts / groups) < k) {
    throw new RangeError(
      `topGroups x group size must be at least k (${k}): current value is ${topGroups} x ${
        experts / groups
      }`,
    );
  }
  return { groups, topGroups };
}

/**
 * Top-K routing: each token takes the `k` largest of `s[i][j] + b[j]`
 * (`s * b` with a multiplicative bias), ties to the lowest expert index,
 * within the `topGroups` best groups when `groups > 1`; weights from the
 * unbiased scores (`-Infinity` weighs 0), normalised and scaled; loads
 * counted. Kernels throw a RangeError for a NaN or `+Infinity` score.
 *
 * Backends: `"cpu"` (float64 keys, the reference), `"cpu-threads"` (the
 * same rows over worker threads, bit for bit), `"webgpu"` (keys compared
 * as the CPU compares its float64 keys: the same selection as the CPU
 * given the same bias values, which the GPU holds as float32; weights
 * within float32 rounding).
 */
export const routeOp = defineOp<RouteRequest, RouteArgs, Routing>({
  name: "route",
  summary: "biased top-K routing with groups, gate weights and loads",
  validate: checkRoute,
});

function checkRoute(request: RouteRequest): RouteArgs {
  // NaN and +Infinity are found by the kernel while it reads the scores.
  const scores = checkScoreShape("scores", request.scores);
  const options = request.options;
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
  const { groups, topGroups } = checkGroupLimit(
    experts,
    k,
    options.groups,
    options.topGroups,
  );
  const groupScore = checkChoice(
    "groupScore",
    options.groupScore ?? "megatron",
    GROUP_SCORES,
  );
  const given = options.bias;
  let bias: Float64Array | undefined;
  if (given !== undefined) {
    if (
      given === null || typeof given !== "object" || given.length !== experts
    ) {
      throw new TypeError(
        `bias must have one entry per expert (${experts}): current value is ${
          show(given)
        }`,
      );
    }
    bias = new Float64Array(experts);
    for (let j = 0; j < experts; j++) {
      if (!Number.isFinite(given[j])) {
        throw new RangeError(`bias must be finite: entry ${j} is ${given[j]}`);
      }
      bias[j] = given[j];
    }
  }
  const out = options.out ?? createRouting(tokens, k, experts);
  if (
    out === null || typeof out !== "object" ||
    out.k !== k || out.experts?.length !== tokens * k ||
    out.weights?.length !== tokens * k ||
    out.loads?.length !== experts
  ) {
    throw new TypeError(
      `out must be a Routing for ${tokens} tokens, k = ${k} and ${experts} experts`,
    );
  }
  return {
    scores,
    k,
    bias,
    multiply: mode === "multiply",
    normalize: options.normalize ?? false,
    scale,
    groups,
    topGroups,
    groupScore,
    out,
  };
}

/**
 * Whether the arguments (or any settings with `groups` and `topGroups`)
 * ask for group-limited routing: fewer groups kept than there are.
 */
export function isGrouped(
  args: Pick<RouteArgs, "groups" | "topGroups">,
): boolean {
  return args.groups > 1 && args.topGroups < args.groups;
}

/**
 * The production CPU kernel of {@linkcode routeOp}: the pre-filtered row
 * kernel (_route_rows.ts) without groups, its group-limited twin
 * (_route_groups.ts) with them. Keys in float64. Writes `args.out` and
 * returns it.
 */
export function routeCpu(args: RouteArgs): Routing {
  return routeAllRows(args, rowRouter)!;
}

/**
 * Routes every row of `args` with a router of row ranges that `make`
 * builds (`rowRouter`, or the WebAssembly SIMD one): writes `args.out`
 * and returns it, `undefined` where `make` gives no router. Throws the
 * route op's RangeError for a NaN or `+Infinity` score.
 */
export function routeAllRows(
  args: RouteArgs,
  make: RowRouterMaker,
): Routing | undefined {
  const { scores, k, out } = args;
  out.loads.fill(0);
  const run = make(
    scores.data,
    scores.experts,
    k,
    rowSettings(args),
    out.experts,
    out.weights,
    out.loads,
  );
  if (run === undefined) return undefined;
  const bad = run(0, scores.tokens);
  if (bad >= 0) throw badScore("scores", scores, bad);
  return out;
}

/**
 * The settings of the row kernels (lib/ops/_route_*.ts) from the checked
 * arguments: the number of top keys summed into a group's score resolved.
 */
export function rowSettings(args: RouteArgs): RowSettings {
  const { k, groups, topGroups } = args;
  const perGroup = groupTopCount(
    k,
    topGroups,
    args.scores.experts / groups,
    args.groupScore,
  );
  return { ...args, perGroup };
}

registerKernel({
  op: routeOp,
  backend: "cpu",
  run: routeCpu,
  callers: [
    "route()",
    "routeInto() (greedy, loss-free, bip, sinkhorn, capacity balancers; simulator; training)",
    "routeParallel() and routeAsync() below their size threshold",
  ],
});
