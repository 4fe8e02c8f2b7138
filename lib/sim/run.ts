import { readFileSync } from "node:fs";
import { parseNpy } from "../workload/npy.ts";
import { replayWorkload } from "../workload/replay.ts";
import { syntheticWorkload } from "../workload/synthetic.ts";
import type { Workload } from "../workload/workload.ts";
import {
  createBalancer,
  type MethodSpec,
  parseMethodSpec,
} from "../route/registry.ts";
import type { Balancer } from "../route/balancer.ts";
import { resolveSimConfig, type SimConfig } from "./config.ts";
import { type EpResult, runEpStage } from "./ep_stage.ts";
import { type MethodSummary, summarize } from "./summarize.ts";
import {
  balancerContext,
  type LayerRun,
  type SimTables,
  simulateLayers,
} from "./_simulate.ts";

export { BATCH_METRICS, type SimTables } from "./_simulate.ts";

/** Everything a simulation produces. */
export interface SimResult {
  /** The configuration, resolved (sizes from the recording when replaying). */
  config: SimConfig;
  /** Where the scores came from. */
  workload: Record<string, unknown>;
  /** The compute backend used. */
  backend: string;
  /** Method labels, in the order of the config. */
  labels: string[];
  /** One summary per method. */
  methods: MethodSummary[];
  /** The long tables. */
  tables: SimTables;
  /** The expert-parallel stage, null when `config.ep` is null. */
  ep: EpResult | null;
  /** Steps on which each layer's exact optimum was solved (see {@linkcode optimumSteps}). */
  optimumSteps: number[];
  /**
   * Optimality gap `1 - score sum / optimum`, (step, layer, method)
   * row-major, NaN on the steps not in `optimumSteps`.
   */
  optimalityGaps: Float64Array;
}

/** Options of {@linkcode runSimulation}. */
export interface RunOptions {
  /** Use this workload instead of the one the config describes. */
  workload?: Workload;
  /** Called after each step with `(stepsDone, steps)`. */
  onProgress?: (done: number, steps: number) => void;
  /**
   * Balancers to use instead of building them from the config, by method
   * index (`undefined` entries are built as usual). The WebGPU runner
   * (run_backend.ts) passes balancers that replay its routings.
   */
  balancers?: (Balancer | undefined)[];
}

/**
 * Builds the workload a configuration describes (synthetic, or a `.npy`
 * recording read from disk) and returns it with the configuration updated
 * to the recording's sizes.
 *
 * @throws {RangeError} If the recording does not fit the configuration
 * (for example `topK` larger than its experts).
 * @throws {SyntaxError} If the `.npy` file is malformed.
 */
export function loadWorkload(
  config: SimConfig,
): { workload: Workload; config: SimConfig } {
  const w = config.workload;
  if (w.kind === "npy") {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(w.path);
    } catch (e) {
      throw new RangeError(
        `scores file cannot be read: ${w.path} (${(e as Error).message})`,
      );
    }
    const workload = replayWorkload(
      parseNpy(new Uint8Array(bytes)),
      config.gate,
    );
    const resolved = resolveSimConfig({
      ...config,
      steps: workload.steps,
      layers: workload.layers,
      tokens: workload.tokens,
      experts: workload.experts,
    });
    return { workload, config: resolved };
  }
  const { kind: _kind, ...rest } = w;
  const workload = syntheticWorkload({
    ...rest,
    seed: config.seed,
    steps: config.steps,
    layers: config.layers,
    tokens: config.tokens,
    experts: config.experts,
    gate: config.gate,
  });
  return { workload, config };
}

/**
 * Resolves a configuration with its workload: `workload` when given (the
 * configuration takes its sizes), else the one the configuration describes
 * ({@linkcode loadWorkload}).
 */
export function resolveWorkload(
  config: unknown,
  workload?: Workload,
): { workload: Workload; config: SimConfig } {
  const cfg = resolveSimConfig(config);
  if (!workload) return loadWorkload(cfg);
  return {
    workload,
    config: resolveSimConfig({
      ...cfg,
      steps: workload.steps,
      layers: workload.layers,
      tokens: workload.tokens,
      experts: workload.experts,
    }),
  };
}

/**
 * Runs every method of the configuration on the same scores, step by step
 * and layer by layer: route the batch, record loads, biases and metrics,
 * then let the method update its state. Score retention is measured
 * against greedy top-K on the same batch.
 *
 * @param config A partial configuration (see {@linkcode resolveSimConfig}).
 * @param options A workload to use instead, and a progress callback.
 * @returns Summaries and long tables ({@linkcode SimResult}).
 * @throws {TypeError | RangeError} If the configuration is invalid.
 *
 * @example Loss-Free balances what greedy does not
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const r = runSimulation({ steps: 40, layers: 1, tokens: 1024, experts: 16, topK: 2,
 *   methods: ["greedy", "loss-free(rate=0.01)"] });
 * const [greedy, lossFree] = r.methods;
 * assert.ok(lossFree.maxVioGlobal < greedy.maxVioGlobal);
 * assert.equal(greedy.scoreRetention, 1);
 * ```
 */
export function runSimulation(
  config: unknown,
  options: RunOptions = {},
): SimResult {
  const { workload, config: cfg } = resolveWorkload(config, options.workload);
  const specs = cfg.methods.map(parseMethodSpec);
  const ctx = balancerContext(cfg);
  const balancers = specs.map((s, m) =>
    options.balancers?.[m] ?? createBalancer(s, ctx)
  );
  const all = Array.from({ length: cfg.layers }, (_, l) => l);
  const run = simulateLayers(
    cfg,
    workload,
    specs,
    balancers,
    all,
    options.onProgress,
  );
  return finishSimulation(
    cfg,
    workload.describe(),
    specs,
    balancers.map((b) => b.causal),
    run,
  );
}

/**
 * Summaries and the expert-parallel stage from the tables of a run (all
 * layers filled).
 */
export function finishSimulation(
  cfg: SimConfig,
  workload: Record<string, unknown>,
  specs: MethodSpec[],
  causal: boolean[],
  run: LayerRun,
): SimResult {
  const { tables, wallMs, gaps } = run;
  const M = specs.length;
  const labels = specs.map((s) => s.label);
  const methods = summarize(
    cfg,
    tables,
    specs,
    causal,
    wallMs,
    gaps,
  );
  const ep = runEpStage(cfg, tables.loads.load, M);
  ep?.summaries.forEach((s, m) => (methods[m].ep = s));
  return {
    config: cfg,
    ep,
    workload,
    backend: "cpu",
    labels,
    methods,
    tables,
    optimumSteps: run.optimumSteps,
    optimalityGaps: gaps,
  };
}
