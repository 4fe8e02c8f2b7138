import type { MethodSpec } from "../route/registry.ts";
import { BATCH_METRICS, METRIC } from "../metrics/batch_metrics.ts";
import type { SimConfig } from "./config.ts";
import type { EpStrategySummary } from "./ep_config.ts";
import { evalStart } from "./eval_window.ts";
import type { SimTables } from "./tables.ts";

/** One method's results over the evaluation window (the last `evalFraction` of the steps). */
export interface MethodSummary {
  /** The method's label (its spec as written). */
  method: string;
  /** Registered name. */
  name: string;
  /** Options it ran with. */
  options: Record<string, unknown>;
  /** Whether a batch's routing depends only on earlier batches. */
  causal: boolean;
  /** MaxVio of each batch, mean over layers and evaluation steps. */
  maxVioBatch: number;
  /** MaxVio of each layer's loads summed over the evaluation window, mean over layers. */
  maxVioGlobal: number;
  /** Selected score sum over greedy top-K's on the same batch, mean over layers and evaluation steps. */
  scoreRetention: number;
  /** First step from which the layer-mean MaxVio_batch stays below the threshold, or null. */
  stepsToBalance: number | null;
  /** Time spent in `route` and `update`, all steps and layers, milliseconds. */
  wallMs: number;
  /** Coefficient of variation of batch loads, mean over the window. */
  cv: number;
  /** Busiest over mean batch load, mean over the window. */
  maxOverMean: number;
  /** Experts with zero load per batch, mean over the window. */
  zeroExperts: number;
  /** Share of (token, slot) pairs left without an expert, mean over the window. */
  droppedFraction: number;
  /** Tokens routed to no expert per batch, mean over the window. */
  tokensWithoutExpert: number;
  /** Expert-parallel results by strategy (`static`, `eplb`, `symmetric-lp`, `asymmetric-lp`). */
  ep?: Record<string, EpStrategySummary>;
  /**
   * `1 - score sum / exact optimum's score sum`, mean over the layers and
   * the sampled steps of the window (`optimumSteps`; every step
   * of the window when the run includes the `exact` method, whose routing
   * is the optimum); null when `gapSteps` is 0. Negative when a method keeps more score than any
   * routing within capacity can, by overloading experts (greedy).
   */
  optimalityGap: number | null;
  /** Where the method ran: `"cpu"`, or `"webgpu"` (a device balancer, runSimulationOn). */
  backend: "cpu" | "webgpu";
  /**
   * The precision of the method's state (biases, prices) and arithmetic:
   * `"float64"` on the CPU, `"float32"` on WebGPU, whose figures then
   * match the CPU's within float32 rounding (the same selections given the
   * same biases).
   */
  state: "float64" | "float32";
}

/** Computes the {@linkcode MethodSummary} of every method from the long tables. */
export function summarize(
  config: SimConfig,
  tables: SimTables,
  specs: MethodSpec[],
  causal: boolean[],
  wallMs: Float64Array,
  gaps?: Float64Array,
): MethodSummary[] {
  const { steps, layers, experts: E } = config;
  const M = specs.length;
  const Q = BATCH_METRICS.length;
  const start = evalStart(config);
  const window = steps - start;
  const out: MethodSummary[] = [];
  for (let m = 0; m < M; m++) {
    const sums = new Float64Array(Q);
    const layerMean = new Float64Array(steps);
    let retainedNum = 0, retainedDen = 0;
    // Metrics rows are ordered step, layer, method, metric.
    for (let s = 0; s < steps; s++) {
      for (let l = 0; l < layers; l++) {
        const row = ((s * layers + l) * M + m) * Q;
        const v = tables.metrics.value;
        layerMean[s] += v[row + METRIC.maxVio] / layers;
        if (s >= start) {
          for (let q = 0; q < Q; q++) sums[q] += v[row + q];
          retainedNum += v[row + METRIC.scoreRetention];
          retainedDen += 1;
        }
      }
    }
    let global = 0;
    const acc = new Float64Array(E);
    for (let l = 0; l < layers; l++) {
      acc.fill(0);
      for (let s = start; s < steps; s++) {
        const row = ((s * layers + l) * M + m) * E;
        for (let j = 0; j < E; j++) acc[j] += tables.loads.load[row + j];
      }
      let total = 0, max = 0;
      for (let j = 0; j < E; j++) {
        total += acc[j];
        if (acc[j] > max) max = acc[j];
      }
      const mean = total / E;
      global += mean === 0 ? 0 : (max - mean) / mean;
    }
    let balancedFrom: number | null = null;
    for (let s = steps - 1; s >= 0; s--) {
      if (layerMean[s] < config.balanceThreshold) balancedFrom = s;
      else break;
    }
    const n = window * layers;
    // gaps: (step, layer, method), NaN where the optimum was not solved.
    let gapSum = 0, gapCount = 0;
    for (let s = start; gaps && s < steps; s++) {
      for (let l = 0; l < layers; l++) {
        const g = gaps[(s * layers + l) * M + m];
        if (g === g) {
          gapSum += g;
          gapCount++;
        }
      }
    }
    out.push({
      method: specs[m].label,
      name: specs[m].name,
      options: specs[m].options,
      causal: causal[m],
      maxVioBatch: sums[METRIC.maxVio] / n,
      maxVioGlobal: global / layers,
      scoreRetention: retainedDen === 0 ? 1 : retainedNum / retainedDen,
      stepsToBalance: balancedFrom,
      wallMs: wallMs[m],
      cv: sums[METRIC.cv] / n,
      maxOverMean: sums[METRIC.maxOverMean] / n,
      zeroExperts: sums[METRIC.zeroExperts] / n,
      droppedFraction: sums[METRIC.droppedFraction] / n,
      tokensWithoutExpert: sums[METRIC.tokensWithoutExpert] / n,
      optimalityGap: gapCount === 0 ? null : gapSum / gapCount,
      backend: "cpu",
      state: "float64",
    });
  }
  return out;
}
