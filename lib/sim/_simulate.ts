// The simulator's inner loop, over any subset of the layers: every layer
// is independent (balancers keep per-layer state, scores depend only on
// seed, step and layer), so subsets can run on separate threads and their
// rows, written at their positions in the full layout, merge exactly.
import { createRouting, routeInto } from "../route/route.ts";
import type { Balancer, BalancerContext } from "../route/balancer.ts";
import type { MethodSpec } from "../route/registry.ts";
import { selectedScoreSum } from "../metrics/load_metrics.ts";
import { solveBalancedAssignmentSync } from "../solve/solve_balanced_assignment_sync.ts";
import type { Workload } from "../workload/workload.ts";
import type { SimConfig } from "./config.ts";
import { optimumSteps } from "./summarize.ts";

/** Names of the per-batch metrics, in the order of `SimTables.metrics.metric`. */
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

/** What the loop produces for its layers (other layers' rows stay zero). */
export interface LayerRun {
  tables: SimTables;
  /** Milliseconds in `route` and `update`, per method, over these layers. */
  wallMs: Float64Array;
  /** Optimality gaps, (step, layer, method) row-major, NaN where not solved. */
  gaps: Float64Array;
  /** Steps whose optimum was solved. */
  optimumSteps: number[];
}

/** Tables in the full (step, layer, method[, expert | metric]) layout. */
export function allocateTables(
  steps: number,
  layers: number,
  methods: number,
  experts: number,
): SimTables {
  const loadRows = steps * layers * methods * experts;
  const metricRows = steps * layers * methods * BATCH_METRICS.length;
  return {
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
}

/** The balancer context of a configuration. */
export function balancerContext(cfg: SimConfig): BalancerContext {
  return {
    layers: cfg.layers,
    experts: cfg.experts,
    k: cfg.topK,
    normalize: cfg.normalize,
    groups: cfg.groups,
    topGroups: cfg.topGroups,
  };
}

/**
 * Runs every method on the layers of `layerList`, step by step: route the
 * batch, record loads, biases and metrics, then let the method update.
 * Score retention is measured against greedy top-K on the same batch.
 */
export function simulateLayers(
  cfg: SimConfig,
  workload: Workload,
  specs: MethodSpec[],
  balancers: Balancer[],
  layerList: readonly number[],
  onProgress?: (done: number, steps: number) => void,
): LayerRun {
  const { steps, layers, tokens, experts: E, topK: k } = cfg;
  const ctx = balancerContext(cfg);
  const M = specs.length;
  const Q = BATCH_METRICS.length;
  const tables = allocateTables(steps, layers, M, E);
  const reference = createRouting(tokens, k, E);
  const wallMs = new Float64Array(M);
  const values = new Float64Array(Q);
  // An exact method at the default capacity routes by the optimum itself:
  // then the gap costs nothing more and covers the whole evaluation window.
  const exactIndex = specs.findIndex((s) =>
    s.name === "exact" && (s.options.capacityFactor ?? 1) === 1
  );
  const gapStepList = exactIndex >= 0 && cfg.gapSteps > 0
    ? optimumSteps({ ...cfg, gapSteps: steps })
    : optimumSteps(cfg);
  const gapAt = new Uint8Array(steps);
  for (const s of gapStepList) gapAt[s] = 1;
  const gaps = new Float64Array(steps * layers * M).fill(NaN);
  const sums = new Float64Array(M);
  // Greedy at the run's own settings is the retention reference: reuse it.
  const greedyIndex = specs.findIndex((s) => s.name === "greedy");
  for (let step = 0; step < steps; step++) {
    for (const layer of layerList) {
      const scores = workload.scores(step, layer);
      let referenceSum = NaN;
      if (greedyIndex < 0) {
        routeInto(scores, k, reference, ctx);
        referenceSum = selectedScoreSum(scores, reference);
      }
      let lr = (step * layers + layer) * M * E;
      let mr = (step * layers + layer) * M * Q;
      for (let m = 0; m < M; m++) {
        const b = balancers[m];
        const t0 = performance.now();
        const routing = b.route(layer, scores);
        const t1 = performance.now();
        if (m === greedyIndex) {
          referenceSum = selectedScoreSum(scores, routing);
        } else if (m < greedyIndex && Number.isNaN(referenceSum)) {
          routeInto(scores, k, reference, ctx);
          referenceSum = selectedScoreSum(scores, reference);
        }
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
        for (let q = 0; q < Q; q++, mr++) {
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
    onProgress?.(step + 1, steps);
  }
  return { tables, wallMs, gaps, optimumSteps: gapStepList };
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
