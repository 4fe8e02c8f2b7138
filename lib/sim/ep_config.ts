// The expert-parallel stage's configuration and result types: what a preset
// says about GPUs and placements, checked against the number of experts.
import { checkChoice, checkInteger, checkNumber, show } from "../validate.ts";
import { HARDWARE_NAMES, type HardwareName } from "../placement/hardware.ts";
import {
  SYMMETRIC_GRAPHS,
  type SymmetricGraph,
  symmetricPlacement,
} from "../placement/cayley.ts";
import { randomPlacement } from "../placement/random.ts";
import {
  checkReplicasFit,
  type Placement,
  staticPlacement,
} from "../placement/placement.ts";

/** The strategies the EP stage compares, in table order. */
export const EP_STRATEGIES = [
  "static",
  "eplb",
  "symmetric-lp",
  "asymmetric-lp",
  "eplb-hierarchical",
  "hierarchical-lp",
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

/** The strategies a stage runs when the configuration names none. */
export const EP_DEFAULT_STRATEGIES: readonly EpStrategy[] = [
  "static",
  "eplb",
  "symmetric-lp",
  "asymmetric-lp",
];

/** Configuration of the EP stage (`ep` in a preset). */
export interface EpConfig {
  /** GPUs of the expert-parallel group. */
  gpus: number;
  /**
   * GPUs per node (NVLink inside a node, the network between nodes);
   * null: all GPUs in one node. A divisor of `gpus`.
   */
  gpusPerNode: number | null;
  /** Replicas per expert of the symmetric placement (and, when `redundant` is null, `experts * replicas` slots for the others). */
  replicas: number;
  /**
   * Redundant expert slots of EPLB, hierarchical EPLB and the asymmetric
   * placement: `experts + redundant` slots, a multiple of `gpus`
   * (DeepSeek-V3's deployments: 32). Null: `experts * (replicas - 1)`.
   */
  redundant: number | null;
  /** Graph of the symmetric placement, or `"random"` (seeded by the run's seed). */
  placement: SymmetricGraph | "random";
  /** How the LP strategies split tokens: `"exact"` (MicroMoE LP) or `"equal"` (no LP). */
  scheduler: "exact" | "equal";
  /** Steps between EPLB and asymmetric re-placements, from the loads of the steps since the last one. */
  rebalanceEvery: number;
  /**
   * Evaluate every `sampleEvery`-th step of the evaluation window (its
   * first step, then every `sampleEvery`); 1: every step. Re-placements
   * still see every step's loads. When a large run's `gpu_loads` table
   * keeps only the sampled steps (see `EpResult.table`), the other steps
   * cost nothing: at DeepSeek-V3's size the LP schedules are most of the
   * stage's time.
   */
  sampleEvery: number;
  /** Strategies to compare, in table order; `"static"` (the baseline of the gains) first. */
  strategies: EpStrategy[];
  /** Hardware preset of the step-time model (compute, NVLink, network per GPU). */
  hardware: HardwareName;
  /** Hidden size `H` of a token sent in the all-to-alls (DeepSeek-V3: 7168). */
  hidden: number;
  /** Expert intermediate size over `H` (DeepSeek-V3: 2048 / 7168). */
  ffnFactor: number;
  /** Bytes per element a dispatch sends (DeepSeek-V3: 1, FP8). */
  dispatchBytes: number;
  /** Bytes per element a combine sends (DeepSeek-V3: 2, BF16). */
  combineBytes: number;
  /**
   * How NVLink and network times of one all-to-all add up: `"max"`
   * (DeepEP and DeepSeek-V3 overlap the network sends and the NVLink
   * forwarding) or `"sum"` (no overlap).
   */
  overlap: "max" | "sum";
}

/** Defaults of the EP stage. */
export const EP_DEFAULTS: Readonly<EpConfig> = {
  gpus: 8,
  gpusPerNode: null,
  replicas: 2,
  redundant: null,
  placement: "complete",
  scheduler: "exact",
  rebalanceEvery: 50,
  sampleEvery: 1,
  strategies: [...EP_DEFAULT_STRATEGIES],
  hardware: "h100",
  hidden: 4096,
  ffnFactor: 4,
  dispatchBytes: 2,
  combineBytes: 2,
  overlap: "max",
};

/** One method's result for one strategy over the evaluation window. */
export interface EpStrategySummary {
  /** Busiest over mean GPU tokens, mean over steps and layers. */
  gpuMaxOverMean: number;
  /** Modelled time of all MoE layers of a step (the configuration's hardware), mean over steps, ms. */
  stepTimeMs: number;
  /** Throughput gain over static EP from the step times. */
  throughputGain: number;
  /** NVLink bytes of a step's all-to-alls (all layers, dispatch and combine, forward and backward), mean over steps, GB. */
  intraNodeGB: number;
  /** Network (inter-node) bytes of a step's all-to-alls, as `intraNodeGB`, GB; 0 on one node. */
  interNodeGB: number;
  /** Nodes a token reaches in a dispatch, mean over layers and steps (the model's estimate; 1 on one node). */
  nodesPerToken: number;
  /**
   * Share of the layers and steps whose placement kept every routing group
   * on one node, so that group-limited routing limited dispatch to
   * `topGroups` nodes a token; 0 without a group limit or on one node.
   */
  nodeLimited: number;
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
  if (c.gpusPerNode !== null) {
    checkInteger("ep.gpusPerNode", c.gpusPerNode, 1, c.gpus);
    if (c.gpus % c.gpusPerNode !== 0) {
      throw new RangeError(
        `ep.gpusPerNode must divide ep.gpus (${c.gpus}): current value is ${c.gpusPerNode}`,
      );
    }
  }
  checkInteger("ep.replicas", c.replicas, 1);
  checkReplicasFit(
    "ep.replicas",
    c.replicas,
    "ep.gpus",
    c.gpus,
    !Object.hasOwn(value, "replicas"),
  );
  if (c.redundant !== null) checkInteger("ep.redundant", c.redundant, 0);
  checkChoice("ep.placement", c.placement, PLACEMENTS);
  checkChoice("ep.scheduler", c.scheduler, ["exact", "equal"]);
  checkInteger("ep.rebalanceEvery", c.rebalanceEvery, 1);
  checkInteger("ep.sampleEvery", c.sampleEvery, 1);
  if (
    !Array.isArray(c.strategies) || c.strategies.length === 0 ||
    c.strategies[0] !== "static"
  ) {
    throw new RangeError(
      `ep.strategies must be a list of strategies starting with "static": current value is ${
        JSON.stringify(c.strategies)
      }`,
    );
  }
  c.strategies.forEach((s, i) =>
    checkChoice(`ep.strategies[${i}]`, s, EP_STRATEGIES)
  );
  if (new Set(c.strategies).size !== c.strategies.length) {
    throw new RangeError(
      `ep.strategies must not repeat a strategy: current value is ${
        JSON.stringify(c.strategies)
      }`,
    );
  }
  checkChoice("ep.hardware", c.hardware, HARDWARE_NAMES);
  checkInteger("ep.hidden", c.hidden, 1);
  checkNumber("ep.ffnFactor", c.ffnFactor, Number.MIN_VALUE);
  checkNumber("ep.dispatchBytes", c.dispatchBytes, Number.MIN_VALUE);
  checkNumber("ep.combineBytes", c.combineBytes, Number.MIN_VALUE);
  checkChoice("ep.overlap", c.overlap, ["max", "sum"]);
  c.strategies = [...c.strategies];
  try {
    if (experts % c.gpus !== 0) {
      throw new RangeError(
        `ep.gpus must divide the number of experts (${experts}): current value is ${c.gpus}`,
      );
    }
    staticPlacement(experts, c.gpus);
    if (c.strategies.includes("symmetric-lp")) {
      epSymmetricPlacement(c, experts, 0);
    }
    const slots = epSlots(c, experts);
    if (slots % c.gpus !== 0) {
      throw new RangeError(
        `ep.redundant must make experts + redundant (${experts} + ${
          slots - experts
        }) a multiple of ep.gpus (${c.gpus}): current value is ${c.redundant}`,
      );
    }
  } catch (e) {
    // The defaults are off, not an error, when they do not fit the experts
    // (a resolved configuration re-resolved for a recording's sizes too).
    const defaults = (Object.keys(EP_DEFAULTS) as (keyof EpConfig)[])
      .every((k) => JSON.stringify(c[k]) === JSON.stringify(EP_DEFAULTS[k]));
    if (!explicit || defaults) return null;
    throw e;
  }
  return c;
}

/**
 * GPUs per node of a configuration (all of them when `gpusPerNode` is null).
 *
 * @example
 * ```ts
 * import { EP_DEFAULTS, epGpusPerNode } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(epGpusPerNode(EP_DEFAULTS), 8);
 * assert.equal(epGpusPerNode({ ...EP_DEFAULTS, gpus: 64, gpusPerNode: 8 }), 8);
 * ```
 */
export function epGpusPerNode(c: EpConfig): number {
  return c.gpusPerNode ?? c.gpus;
}

/**
 * Physical expert slots of the EPLB and asymmetric strategies:
 * `experts + redundant`, or `experts * replicas` when `redundant` is null.
 *
 * @example DeepSeek-V3: 256 experts and 32 redundant slots
 * ```ts
 * import { EP_DEFAULTS, epSlots } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(epSlots({ ...EP_DEFAULTS, redundant: 32 }, 256), 288);
 * assert.equal(epSlots(EP_DEFAULTS, 64), 128);
 * ```
 */
export function epSlots(c: EpConfig, experts: number): number {
  return experts + (c.redundant ?? experts * (c.replicas - 1));
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
