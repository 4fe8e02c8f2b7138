import { createBalancer } from "../route/registry.ts";
import type { HostBackend } from "../ops/host.ts";
import type { Balancer } from "../route/balancer.ts";
import type { Workload } from "../workload/workload.ts";
import type { SimConfig } from "./config.ts";
import { type EpResult, mergeEpParts, runEpStage } from "./ep_stage.ts";
import type { EpPart } from "./_ep_parts.ts";
import { type MethodSummary, summarize } from "./summarize.ts";
import type { SimTables } from "./tables.ts";
import { type PreparedRun, prepareRun, workloadOn } from "./prepare_run.ts";
import { balancerContext, type LayerRun, simulateLayers } from "./_simulate.ts";
import {
  LOOP_STAGES,
  processCpuMs,
  processPeakRssMiB,
  type SimProfile,
} from "./profile.ts";

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
  /** Steps on which each layer's exact optimum was solved (`gapSteps` of the evaluation window). */
  optimumSteps: number[];
  /**
   * Optimality gap `1 - score sum / optimum`, (step, layer, method)
   * row-major, NaN on the steps not in `optimumSteps`.
   */
  optimalityGaps: Float64Array;
  /** Where the time went: the step loop's stages, each method, the EP stage. */
  profile: SimProfile;
}

/** Options of {@linkcode runSimulation}. */
export interface RunOptions {
  /**
   * Use this workload instead of the one the config describes (with a
   * configuration only: a prepared run has its workload).
   */
  workload?: Workload;
  /** Called after each step with `(stepsDone, steps)`. */
  onProgress?: (done: number, steps: number) => void;
  /**
   * Balancers to use instead of building them from the config, by method
   * index (`undefined` entries are built as usual), for a runner that
   * brings its own (a device's).
   */
  balancers?: (Balancer | undefined)[];
  /**
   * The kernels of the CPU balancers and routing: `"wasm"` (default;
   * WebAssembly SIMD where the engine runs it) or `"cpu"` (TypeScript
   * only, the reference). The numbers are the same.
   */
  host?: HostBackend;
}

/**
 * Runs every method of the configuration on the same scores, step by step
 * and layer by layer: each method routes the batch, its loads and biases
 * are recorded and it updates its state; then every method's metrics come
 * from one pass over the batch's scores. Score retention is measured
 * against greedy top-K on the same batch.
 *
 * @param config A partial configuration (see {@linkcode resolveSimConfig}),
 * or a {@linkcode PreparedRun}, which is run as it is.
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
  const run = prepareRun(config, { workload: options.workload });
  const host = options.host;
  const ctx = balancerContext(run.config, host);
  const balancers = run.specs.map((s, m) =>
    options.balancers?.[m] ?? createBalancer(s, ctx)
  );
  const all = Array.from({ length: run.config.layers }, (_, l) => l);
  const t0 = performance.now(), cpu0 = processCpuMs();
  const layers = simulateLayers(
    { ...run, workload: workloadOn(run, host), host },
    balancers,
    all,
    options.onProgress,
  );
  return finishSimulation(run, balancers.map((b) => b.causal), layers, {
    threads: 1,
    loopMs: performance.now() - t0,
    loopCpuMs: processCpuMs() - cpu0,
  });
}

/**
 * Summaries and the expert-parallel stage from the tables of a run, all
 * layers held in order. `ep`: the EP stage's parts, already computed
 * on `threads` threads in `ms` (wall), to merge instead of running the
 * stage here.
 */
export function finishSimulation(
  run: PreparedRun,
  causal: boolean[],
  layers: LayerRun,
  loop: { threads: number; loopMs: number; loopCpuMs: number },
  ep?: { parts: EpPart[]; ms: number; threads: number },
): SimResult {
  const { config: cfg, specs } = run;
  const { tables, wallMs, gaps } = layers;
  const M = specs.length;
  const t0 = performance.now();
  const methods = summarize(cfg, tables, [...specs], causal, wallMs, gaps);
  const t1 = performance.now();
  const epResult = ep
    ? mergeEpParts(cfg, M, ep.parts)
    : runEpStage(cfg, tables.loads.load, M);
  epResult?.summaries.forEach((s, m) => (methods[m].ep = s));
  const profile: SimProfile = {
    ...loop,
    stages: Object.fromEntries(
      LOOP_STAGES.map((s, i) => [s, layers.stageMs[i]]),
    ) as SimProfile["stages"],
    methods: specs.map((s, m) => ({
      method: s.label,
      routeMs: layers.routeMs[m],
      updateMs: wallMs[m] - layers.routeMs[m],
    })),
    summarizeMs: t1 - t0,
    epMs: (ep?.ms ?? 0) + performance.now() - t1,
    epThreads: ep?.threads ?? 1,
    scoreBytes: cfg.steps * cfg.layers * cfg.tokens * cfg.experts * 4,
    peakRssMiB: processPeakRssMiB(),
  };
  return {
    config: cfg,
    ep: epResult,
    workload: run.workload.describe(),
    backend: "cpu",
    labels: specs.map((s) => s.label),
    methods,
    tables,
    optimumSteps: layers.optimumSteps,
    optimalityGaps: gaps,
    profile,
  };
}
