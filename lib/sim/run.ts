import { readFileSync } from "node:fs";
import { parseNpy } from "../workload/npy.ts";
import { replayWorkload } from "../workload/replay.ts";
import { syntheticWorkload } from "../workload/synthetic.ts";
import type { Workload } from "../workload/workload.ts";
import { createBalancer, parseMethodSpec } from "../route/registry.ts";
import { createRouting, routeInto } from "../route/route.ts";
import type { Balancer, BalancerContext } from "../route/balancer.ts";
import { selectedScoreSum } from "../metrics/load_metrics.ts";
import { resolveSimConfig, type SimConfig } from "./config.ts";
import { type EpResult, runEpStage } from "./ep_stage.ts";
import { type MethodSummary, optimumSteps, summarize } from "./summarize.ts";
import { solveBalancedAssignmentSync } from "../solve/solve_balanced_assignment_sync.ts";

/** Names of the per-batch metrics, in the order of `SimResult.metrics.metric`. */
export const BATCH_METRICS = [
  "maxVio",
  "cv",
  "maxOverMean",
  "zeroExperts",
  "scoreRetention",
  "droppedFraction",
  "tokensWithoutExpert",
] as const;

/** Long tables of a run, columnar, with the method as an index into `labels`. */
export interface SimTables {
  /** `loads(step, layer, method, expert, load)`. */
  loads: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    expert: Int32Array;
    load: Int32Array;
  };
  /** `biases(step, layer, method, expert, bias)`: the bias used to route the batch. */
  biases: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    expert: Int32Array;
    bias: Float64Array;
  };
  /** `metrics(step, layer, method, metric, value)`, metric an index into {@linkcode BATCH_METRICS}. */
  metrics: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    metric: Int32Array;
    value: Float64Array;
  };
}

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
  let cfg = resolveSimConfig(config);
  let workload: Workload;
  if (options.workload) {
    workload = options.workload;
    cfg = resolveSimConfig({
      ...cfg,
      steps: workload.steps,
      layers: workload.layers,
      tokens: workload.tokens,
      experts: workload.experts,
    });
  } else {
    ({ workload, config: cfg } = loadWorkload(cfg));
  }
  const { steps, layers, tokens, experts: E, topK: k } = cfg;
  const specs = cfg.methods.map(parseMethodSpec);
  const ctx: BalancerContext = {
    layers,
    experts: E,
    k,
    normalize: cfg.normalize,
    groups: cfg.groups,
    topGroups: cfg.topGroups,
  };
  const balancers = specs.map((s, m) =>
    options.balancers?.[m] ?? createBalancer(s, ctx)
  );
  const M = specs.length;
  const loadRows = steps * layers * M * E;
  const metricRows = steps * layers * M * BATCH_METRICS.length;
  const tables: SimTables = {
    loads: {
      step: new Int32Array(loadRows),
      layer: new Int32Array(loadRows),
      method: new Int32Array(loadRows),
      expert: new Int32Array(loadRows),
      load: new Int32Array(loadRows),
    },
    biases: {
      step: new Int32Array(loadRows),
      layer: new Int32Array(loadRows),
      method: new Int32Array(loadRows),
      expert: new Int32Array(loadRows),
      bias: new Float64Array(loadRows),
    },
    metrics: {
      step: new Int32Array(metricRows),
      layer: new Int32Array(metricRows),
      method: new Int32Array(metricRows),
      metric: new Int32Array(metricRows),
      value: new Float64Array(metricRows),
    },
  };
  const reference = createRouting(tokens, k, E);
  const wallMs = new Float64Array(M);
  const values = new Float64Array(BATCH_METRICS.length);
  const gapStepList = optimumSteps(cfg);
  const gapAt = new Uint8Array(steps);
  for (const s of gapStepList) gapAt[s] = 1;
  const gaps = new Float64Array(steps * layers * M).fill(NaN);
  const sums = new Float64Array(M);
  // An exact method at the default capacity routes by the optimum itself.
  const exactIndex = specs.findIndex((s) =>
    s.name === "exact" && (s.options.capacityFactor ?? 1) === 1
  );
  let lr = 0, mr = 0;
  for (let step = 0; step < steps; step++) {
    for (let layer = 0; layer < layers; layer++) {
      const scores = workload.scores(step, layer);
      routeInto(scores, k, reference, ctx);
      const referenceSum = selectedScoreSum(scores, reference);
      for (let m = 0; m < M; m++) {
        const b = balancers[m];
        const t0 = performance.now();
        const routing = b.route(layer, scores);
        const t1 = performance.now();
        // Read after route: a non-causal method sets its bias from the batch.
        const bias = b.biases(layer);
        batchMetrics(
          scores,
          routing.experts,
          routing.k,
          routing.loads,
          referenceSum,
          values,
          k,
        );
        if (gapAt[step]) sums[m] = selectedScoreSum(scores, routing);
        for (let j = 0; j < E; j++, lr++) {
          tables.loads.step[lr] = tables.biases.step[lr] = step;
          tables.loads.layer[lr] = tables.biases.layer[lr] = layer;
          tables.loads.method[lr] = tables.biases.method[lr] = m;
          tables.loads.expert[lr] = tables.biases.expert[lr] = j;
          tables.loads.load[lr] = routing.loads[j];
          tables.biases.bias[lr] = bias[j];
        }
        for (let q = 0; q < BATCH_METRICS.length; q++, mr++) {
          tables.metrics.step[mr] = step;
          tables.metrics.layer[mr] = layer;
          tables.metrics.method[mr] = m;
          tables.metrics.metric[mr] = q;
          tables.metrics.value[mr] = values[q];
        }
        const t2 = performance.now();
        b.update(layer, scores, routing);
        wallMs[m] += t1 - t0 + (performance.now() - t2);
      }
      if (gapAt[step]) {
        const optimum = exactIndex >= 0
          ? sums[exactIndex]
          : solveBalancedAssignmentSync(scores, { k }).objective;
        const row = (step * layers + layer) * M;
        for (let m = 0; m < M; m++) {
          gaps[row + m] = optimum === 0 ? 0 : 1 - sums[m] / optimum;
        }
      }
    }
    options.onProgress?.(step + 1, steps);
  }
  const labels = specs.map((s) => s.label);
  const methods = summarize(
    cfg,
    tables,
    specs,
    balancers.map((b) => b.causal),
    wallMs,
    gaps,
  );
  const ep = runEpStage(cfg, tables.loads.load, M);
  ep?.summaries.forEach((s, m) => (methods[m].ep = s));
  return {
    config: cfg,
    ep,
    workload: workload.describe(),
    backend: "cpu",
    labels,
    methods,
    tables,
    optimumSteps: gapStepList,
    optimalityGaps: gaps,
  };
}

/**
 * Fills `out` with the {@linkcode BATCH_METRICS} of one routed batch.
 * `droppedFraction` counts, per token, the experts short of `topK` (a
 * routing may have more slots than `topK`, as Expert Choice's has).
 */
function batchMetrics(
  scores: { data: Float32Array; tokens: number; experts: number },
  selected: Int32Array,
  k: number,
  loads: Int32Array,
  referenceSum: number,
  out: Float64Array,
  topK: number,
): void {
  const E = loads.length;
  let total = 0, max = 0, zero = 0;
  for (let j = 0; j < E; j++) {
    total += loads[j];
    if (loads[j] > max) max = loads[j];
    if (loads[j] === 0) zero++;
  }
  const mean = total / E;
  let ss = 0;
  for (let j = 0; j < E; j++) ss += (loads[j] - mean) ** 2;
  let empty = 0, without = 0;
  for (let i = 0; i < scores.tokens; i++) {
    let used = 0;
    for (let r = 0; r < k; r++) {
      if (selected[i * k + r] >= 0) used++;
    }
    if (used < topK) empty += topK - used;
    if (used === 0) without++;
  }
  const sum = selectedScoreSum(scores, {
    experts: selected,
    weights: new Float32Array(0),
    loads,
    k,
  });
  out[0] = mean === 0 ? 0 : (max - mean) / mean;
  out[1] = mean === 0 ? 0 : Math.sqrt(ss / E) / mean;
  out[2] = mean === 0 ? 0 : max / mean;
  out[3] = zero;
  out[4] = referenceSum === 0 ? 1 : sum / referenceSum;
  out[5] = empty / (scores.tokens * topK);
  out[6] = without;
}
