// The expert-parallel stage's configuration and result types: what a preset
// says about GPUs and placements, checked against the number of experts.
import { checkChoice, checkInteger, show } from "../validate.ts";
import {
  SYMMETRIC_GRAPHS,
  type SymmetricGraph,
  symmetricPlacement,
} from "../placement/cayley.ts";
import { randomPlacement } from "../placement/random.ts";
import { type Placement, staticPlacement } from "../placement/placement.ts";

/** The strategies the EP stage compares, in table order. */
export const EP_STRATEGIES = [
  "static",
  "eplb",
  "symmetric-lp",
  "asymmetric-lp",
] as const;

/** An EP strategy (see {@linkcode EP_STRATEGIES}). */
export type EpStrategy = typeof EP_STRATEGIES[number];

/**
 * The position of each strategy in {@linkcode EP_STRATEGIES}, which is its
 * number in the `strategy` column of `gpu_loads`.
 */
export const EP_STRATEGY: Readonly<Record<EpStrategy, number>> = Object
  .freeze(
    Object.fromEntries(EP_STRATEGIES.map((name, k) => [name, k])) as Record<
      EpStrategy,
      number
    >,
  );

/** Configuration of the EP stage (`ep` in a preset). */
export interface EpConfig {
  /** GPUs of the expert-parallel group. */
  gpus: number;
  /** Replicas per expert (EPLB gets the same `experts * replicas` slots). */
  replicas: number;
  /** Graph of the symmetric placement, or `"random"` (seeded by the run's seed). */
  placement: SymmetricGraph | "random";
  /** How the LP strategies split tokens: `"exact"` (MicroMoE LP) or `"equal"` (no LP). */
  scheduler: "exact" | "equal";
  /** Steps between EPLB and asymmetric re-placements, from the loads of the steps since the last one. */
  rebalanceEvery: number;
}

/** Defaults of the EP stage. */
export const EP_DEFAULTS: Readonly<EpConfig> = {
  gpus: 8,
  replicas: 2,
  placement: "complete",
  scheduler: "exact",
  rebalanceEvery: 50,
};

/** One method's result for one strategy over the evaluation window. */
export interface EpStrategySummary {
  /** Busiest over mean GPU tokens, mean over steps and layers. */
  gpuMaxOverMean: number;
  /** Modelled time of all MoE layers of a step (H100 NVLink preset), mean over steps, ms. */
  stepTimeMs: number;
  /** Throughput gain over static EP from the step times. */
  throughputGain: number;
}

const PLACEMENTS = [...SYMMETRIC_GRAPHS, "random"] as const;

/**
 * Checks an `ep` configuration against the number of experts. Returns
 * null (stage off) for `null`, or when the defaults do not fit the
 * experts and the user did not ask for the stage.
 */
export function checkEpConfig(
  value: unknown,
  experts: number,
  explicit: boolean,
): EpConfig | null {
  if (value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(
      `ep must be an object or null: current value is ${show(value)}`,
    );
  }
  for (const key of Object.keys(value)) {
    if (!(key in EP_DEFAULTS)) {
      throw new RangeError(
        `ep has an unknown key ${show(key)} (keys: ${
          Object.keys(EP_DEFAULTS).join(", ")
        })`,
      );
    }
  }
  const c = { ...EP_DEFAULTS, ...value } as EpConfig;
  checkInteger("ep.gpus", c.gpus, 1);
  checkInteger("ep.replicas", c.replicas, 1, c.gpus);
  checkChoice("ep.placement", c.placement, PLACEMENTS);
  checkChoice("ep.scheduler", c.scheduler, ["exact", "equal"]);
  checkInteger("ep.rebalanceEvery", c.rebalanceEvery, 1);
  try {
    staticPlacement(experts, c.gpus);
    epSymmetricPlacement(c, experts, 0);
  } catch (e) {
    // The defaults are off, not an error, when they do not fit the experts
    // (a resolved configuration re-resolved for a recording's sizes too).
    const defaults = (Object.keys(EP_DEFAULTS) as (keyof EpConfig)[])
      .every((k) => c[k] === EP_DEFAULTS[k]);
    if (!explicit || defaults) return null;
    throw e;
  }
  return c;
}

/** The symmetric placement an `ep` configuration asks for (`random` seeded by `seed`). */
export function epSymmetricPlacement(
  c: EpConfig,
  experts: number,
  seed: number,
): Placement {
  return c.placement === "random"
    ? randomPlacement(experts, c.gpus, { replicas: c.replicas, seed })
    : symmetricPlacement(experts, c.gpus, {
      replicas: c.replicas,
      graph: c.placement,
    });
}
