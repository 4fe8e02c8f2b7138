import {
  checkChoice,
  checkInteger,
  checkNumber,
  checkSeed,
  show,
} from "../validate.ts";
import { type Gate, GATES } from "../scores/gate.ts";
import { type MethodSpec, parseMethodSpec } from "../route/registry.ts";
import { checkNoGroupLimit } from "../route/expert_choice.ts";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import { checkEpConfig, EP_DEFAULTS, type EpConfig } from "./ep_config.ts";
import {
  SYNTHETIC_DEFAULTS,
  type SyntheticOptions,
} from "../workload/synthetic.ts";

/** Where the simulator's scores come from. */
export type WorkloadConfig =
  | (
    & { kind: "synthetic" }
    & Omit<
      SyntheticOptions,
      "seed" | "steps" | "layers" | "tokens" | "experts" | "gate"
    >
  )
  | { kind: "npy"; path: string };

/** A complete simulation configuration (what a preset holds, defaults filled in). */
export interface SimConfig {
  /** Seed of the workload. */
  seed: number;
  /** Routed experts per layer. */
  experts: number;
  /** Experts per token (`K`). */
  topK: number;
  /** Tokens per batch. */
  tokens: number;
  /** MoE layers. */
  layers: number;
  /** Steps (batches). */
  steps: number;
  /** Gate applied to logits. */
  gate: Gate;
  /** Normalise gate weights over the selected experts. */
  normalize: boolean;
  /** Group-limited routing: groups (1 = off). */
  groups: number;
  /** Group-limited routing: groups kept. */
  topGroups: number;
  /** Methods to compare, as specs (`"loss-free(rate=1e-2)"` or objects). */
  methods: (string | {
    name: string;
    options?: Record<string, unknown>;
    label?: string;
  })[];
  /** Score source. */
  workload: WorkloadConfig;
  /** Expert-parallel stage (GPUs, replicas, placement, scheduler); null turns it off. */
  ep: EpConfig | null;
  /** Share of the steps, at the end, over which results are evaluated. */
  evalFraction: number;
  /** Layer-mean MaxVio_batch under which a method counts as balanced. */
  balanceThreshold: number;
  /**
   * Steps of the evaluation window, evenly spaced, on which every layer's
   * exact balanced optimum (capacity `ceil(tokens * topK / experts)`) is
   * solved for the optimality gap (every window step when the run includes
   * `exact`, which solves them anyway); `0` turns the gap off.
   */
  gapSteps: number;
}

/** The configuration a run uses when the preset and flags say nothing. */
export const SIM_DEFAULTS: Readonly<SimConfig> = {
  seed: 1,
  experts: 64,
  topK: 6,
  tokens: 4096,
  layers: 8,
  steps: 200,
  gate: "sigmoid",
  normalize: true,
  groups: 1,
  topGroups: 1,
  methods: ["greedy", "loss-free"],
  workload: { kind: "synthetic" },
  ep: EP_DEFAULTS,
  evalFraction: 0.5,
  balanceThreshold: 0.2,
  gapSteps: 8,
};

const KEYS = new Set(Object.keys(SIM_DEFAULTS));
const SYNTHETIC_KEYS = new Set(
  Object.keys(SYNTHETIC_DEFAULTS).filter(
    (k) =>
      !["seed", "steps", "layers", "tokens", "experts", "gate"].includes(k),
  ),
);

/**
 * Fills a partial configuration with defaults and checks every field.
 * Unknown keys are errors (a typo in a preset should not pass silently).
 *
 * @throws {TypeError} If a field has the wrong type or the input is not an object.
 * @throws {RangeError} If a value is out of range (`topK > experts`, a
 * non-positive size, an unknown method or gate).
 *
 * @example
 * ```ts
 * import { resolveSimConfig } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const c = resolveSimConfig({ experts: 16, topK: 2 });
 * assert.equal(c.layers, 8);
 * assert.throws(() => resolveSimConfig({ experts: 4, topK: 6 }), RangeError);
 * ```
 */
export function resolveSimConfig(partial: unknown): SimConfig {
  return resolveConfigWith(partial).config;
}

/** The sizes a workload fixes (a recording's shape), overriding the config's. */
export interface WorkloadSizes {
  steps: number;
  layers: number;
  tokens: number;
  experts: number;
}

/**
 * {@linkcode resolveSimConfig} in one pass, also when the workload fixes
 * the sizes: checks the keys, the workload and the gate first, then asks
 * `sizesOf` for the sizes (reading a recording, say) and checks the rest
 * against them, so that a typo fails before any file is read. Returns the
 * methods parsed too.
 */
export function resolveConfigWith(
  partial: unknown,
  sizesOf?: (workload: WorkloadConfig, gate: Gate) => WorkloadSizes | undefined,
): { config: SimConfig; specs: MethodSpec[] } {
  if (
    partial === null || typeof partial !== "object" || Array.isArray(partial)
  ) {
    throw new TypeError(
      `configuration must be an object: current value is ${show(partial)}`,
    );
  }
  const p = partial as Record<string, unknown>;
  for (const key of Object.keys(p)) {
    if (!KEYS.has(key)) {
      throw new RangeError(
        `configuration has an unknown key ${show(key)} (keys: ${
          [...KEYS].join(", ")
        })`,
      );
    }
  }
  const workload = checkWorkload(
    Object.hasOwn(p, "workload") ? p.workload : SIM_DEFAULTS.workload,
  );
  const c = { ...SIM_DEFAULTS, ...p, workload } as SimConfig;
  checkChoice("gate", c.gate, GATES);
  const sizes = sizesOf?.(workload, c.gate);
  if (sizes) Object.assign(c, sizes);
  checkSeed("seed", c.seed);
  checkInteger("experts", c.experts, 1);
  checkInteger("topK", c.topK, 1);
  if (c.topK > c.experts) {
    throw new RangeError(
      `topK must be at most the number of experts (${c.experts}): current value is ${c.topK}`,
    );
  }
  checkInteger("tokens", c.tokens, 1);
  checkInteger("layers", c.layers, 1);
  checkInteger("steps", c.steps, 1);
  if (typeof c.normalize !== "boolean") {
    throw new TypeError(
      `normalize must be a boolean: current value is ${show(c.normalize)}`,
    );
  }
  checkInteger("groups", c.groups, 1, c.experts);
  if (c.experts % c.groups !== 0) {
    throw new RangeError(
      `groups must divide the number of experts (${c.experts}): current value is ${c.groups}`,
    );
  }
  if (p.topGroups === undefined) c.topGroups = c.groups;
  checkInteger("topGroups", c.topGroups, 1, c.groups);
  if (c.topGroups * (c.experts / c.groups) < c.topK) {
    throw new RangeError(
      `topGroups x group size must be at least topK (${c.topK}): current value is ${c.topGroups} x ${
        c.experts / c.groups
      }`,
    );
  }
  if (!Array.isArray(c.methods) || c.methods.length === 0) {
    throw new TypeError(
      `methods must be a non-empty array: current value is ${show(c.methods)}`,
    );
  }
  const specs = c.methods.map(parseMethodSpec);
  const labels = new Set<string>();
  for (const spec of specs) {
    if (labels.has(spec.label)) {
      throw new RangeError(
        `methods must have distinct labels: ${show(spec.label)} repeats`,
      );
    }
    labels.add(spec.label);
    if (spec.name === "expert-choice") {
      checkNoGroupLimit(c.groups, c.topGroups);
    }
  }
  checkNumber("evalFraction", c.evalFraction, 0, 1);
  if (c.evalFraction === 0) {
    throw new RangeError(
      "evalFraction must be greater than 0: current value is 0",
    );
  }
  checkNumber("balanceThreshold", c.balanceThreshold, 0);
  checkInteger("gapSteps", c.gapSteps, 0);
  c.ep = checkEpConfig(c.ep, c.experts, p.ep !== undefined);
  checkSimMemory(c, specs.length);
  return { config: c, specs };
}

/** The most memory a simulation may need: 8 GiB. */
const MAX_SIM_BYTES = 2 ** 33;

/**
 * Throws, before anything is allocated, when the run's tables (a load and
 * a bias per step, layer, method and expert, and the batch metrics per
 * step, layer and method: the value columns, held once; the index columns
 * are never stored and the files are written in slices) and a batch's
 * score buffers would pass {@linkcode MAX_SIM_BYTES}; the message says
 * how much the run needs.
 */
function checkSimMemory(c: SimConfig, methods: number): void {
  const cells = c.steps * c.layers * methods * c.experts;
  const scores = c.tokens * c.experts;
  const metrics = c.steps * c.layers * methods * BATCH_METRICS.length;
  const bytes = cells * 12 + metrics * 8 + scores * 32;
  if (bytes > MAX_SIM_BYTES) {
    throw new RangeError(
      `experts ${c.experts}, tokens ${c.tokens}, steps ${c.steps}, layers ${c.layers} and ${methods} methods make the run need about ${
        (bytes / 2 ** 30).toFixed(1)
      } GiB (tokens x experts = ${scores} scores per batch, steps x layers x methods x experts = ${cells} recorded loads), above the bound of ${
        MAX_SIM_BYTES / 2 ** 30
      } GiB: lower experts, tokens, steps, layers or methods`,
    );
  }
}

function checkWorkload(w: unknown): WorkloadConfig {
  if (w === null || typeof w !== "object" || Array.isArray(w)) {
    throw new TypeError(
      `workload must be an object: current value is ${show(w)}`,
    );
  }
  const o = w as Record<string, unknown>;
  if (o.kind === "npy") {
    if (typeof o.path !== "string" || o.path === "") {
      throw new TypeError(
        `workload.path must be a file path: current value is ${show(o.path)}`,
      );
    }
    for (const key of Object.keys(o)) {
      if (key !== "kind" && key !== "path") {
        throw new RangeError(
          `npy workload has an unknown key ${show(key)} (keys: kind, path)`,
        );
      }
    }
    return { kind: "npy", path: o.path };
  }
  if (o.kind !== "synthetic") {
    throw new RangeError(
      `workload.kind must be "synthetic" or "npy": current value is ${
        show(o.kind)
      }`,
    );
  }
  for (const [key, value] of Object.entries(o)) {
    if (key === "kind") continue;
    if (!SYNTHETIC_KEYS.has(key)) {
      throw new RangeError(
        `synthetic workload has an unknown key ${show(key)} (keys: ${
          [...SYNTHETIC_KEYS].join(", ")
        })`,
      );
    }
    checkNumber(`workload.${key}`, value);
  }
  return { ...o } as WorkloadConfig;
}
