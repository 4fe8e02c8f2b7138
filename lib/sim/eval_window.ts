// Which steps a run evaluates: the window its summaries average over, and
// the steps of that window whose exact optimum it solves.
import { type MethodSpec, parseMethodSpec } from "../route/registry.ts";
import type { Balancer } from "../route/balancer.ts";
import type { ExactBalancer } from "../route/exact.ts";
import type { SimConfig } from "./config.ts";
import { isGrouped } from "../ops/route.ts";

/** First evaluated step: the window is `[evalStart, steps)`. */
export function evalStart(
  config: Pick<SimConfig, "steps" | "evalFraction">,
): number {
  return config.steps -
    Math.max(1, Math.ceil(config.steps * config.evalFraction));
}

/**
 * How many steps of the evaluation window a stage that takes every
 * `every`-th of them (its first step included) samples: the EP stage's
 * `sampleEvery`.
 */
export function sampledCount(
  config: Pick<SimConfig, "steps" | "evalFraction">,
  every: number,
): number {
  return Math.ceil((config.steps - evalStart(config)) / every);
}

/**
 * The steps whose exact optimum the simulator solves: `gapSteps` steps
 * evenly spaced over the evaluation window, its first step included.
 */
export function optimumSteps(
  config: Pick<SimConfig, "steps" | "evalFraction" | "gapSteps">,
): number[] {
  const start = evalStart(config);
  const window = config.steps - start;
  const n = Math.min(config.gapSteps, window);
  return Array.from(
    { length: n },
    (_, t) => start + Math.floor((t * window) / n),
  );
}

/** The steps whose optimality gap a run measures, and how it gets the optimum. */
export interface GapPlan {
  /**
   * The index of an `exact` method at the default capacity, or -1. Such a
   * method routes by the optimum itself: its score sum is the optimum
   * (under a group limit its bracket gives the reference,
   * {@linkcode exactOptimum}), the gap costs nothing more, and it covers
   * the whole evaluation window.
   */
  exactIndex: number;
  /** The steps measured, ascending. */
  steps: number[];
  /** 1 at each measured step (length `config.steps`). */
  at: Uint8Array;
  /** What the gaps are measured against. */
  reference: GapReference;
}

/**
 * What a run's optimality gaps are measured against:
 * - `"optimum"`: the exact optimum (no group limit);
 * - `"bracket"`: under a group limit, the upper end of the bracket of the
 *   group-limited optimum (`groupLimitedBounds`, or the `exact` method's
 *   own where one runs: it routes the lower end, so its gap is the
 *   bracket's width), at or above the group-limited optimum and at or
 *   below the relaxation (the gaps are upper bounds);
 * - `"relaxation"`: under a group limit with `exact(groupLimit=relax)`
 *   among the methods, the exact optimum without the limit, which that
 *   method routes (above the group-limited optimum: the gaps are upper
 *   bounds).
 */
export type GapReference = "optimum" | "relaxation" | "bracket";

/** Plans a run's optimality gaps: which steps, and whether a method is the optimum. */
export function gapPlan(
  config: Pick<
    SimConfig,
    "steps" | "evalFraction" | "gapSteps" | "groups" | "topGroups"
  >,
  specs: readonly MethodSpec[],
): GapPlan {
  const exactIndex = specs.findIndex((s) =>
    s.name === "exact" && (s.options.capacityFactor ?? 1) === 1
  );
  const steps = exactIndex >= 0 && config.gapSteps > 0
    ? optimumSteps({ ...config, gapSteps: config.steps })
    : optimumSteps(config);
  const at = new Uint8Array(config.steps);
  for (const s of steps) at[s] = 1;
  const reference: GapReference = !isGrouped(config)
    ? "optimum"
    : exactIndex >= 0 && specs[exactIndex].options.groupLimit === "relax"
    ? "relaxation"
    : "bracket";
  return { exactIndex, steps, at, reference };
}

/**
 * What the gaps of a resolved configuration are measured against, and
 * whether an `exact` method gives that reference ({@linkcode gapPlan}).
 */
export function gapReference(
  config: Pick<
    SimConfig,
    "steps" | "evalFraction" | "gapSteps" | "groups" | "topGroups" | "methods"
  >,
): { reference: GapReference; byExact: boolean } {
  const plan = gapPlan(config, config.methods.map(parseMethodSpec));
  return { reference: plan.reference, byExact: plan.exactIndex >= 0 };
}

/**
 * The optimum a batch's gaps are measured against where an `exact` method
 * (at the default capacity) runs: its routed score sum `routed` without a
 * group limit, the upper end of its bracket under one (its routed sum is
 * the lower end there, below the group-limited optimum: gaps against it
 * would understate every method's).
 */
export function exactOptimum(
  exact: Balancer | undefined,
  layer: number,
  routed: number,
): number {
  const bounds = (exact as Partial<ExactBalancer> | undefined)?.bounds?.(
    layer,
  );
  return bounds?.groupLimited ? bounds.upperBound : routed;
}
