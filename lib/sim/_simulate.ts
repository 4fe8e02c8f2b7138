// The simulator's inner loop, over any subset of the layers: every layer
// is independent (balancers keep per-layer state, scores depend only on
// seed, step and layer), so subsets can run on separate threads, each
// holding the rows of its own layers only, and merge exactly.
import { createRouting, routeInto } from "../route/route.ts";
import type { Balancer, BalancerContext } from "../route/balancer.ts";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import { requireKernel } from "../ops/registry.ts";
import { batchMetricsOp } from "../ops/batch_metrics.ts";
import { selectedScoreSum } from "../metrics/load_metrics.ts";
import { solveBalancedAssignmentSync } from "../solve/solve_balanced_assignment_sync.ts";
import type { SimConfig } from "./config.ts";
import { gapPlan } from "./eval_window.ts";
import type { PreparedRun } from "./prepare_run.ts";
import { allocateTables, type SimTables } from "./tables.ts";

/**
 * What the loop produces for its layers. Rows are ordered (step, held
 * layer, method, ...), where the held layers are `layers` in the order
 * given; the `layer` column holds the real layer number.
 */
export interface LayerRun {
  /** The layers held, in row order. */
  layers: number[];
  tables: SimTables;
  /** Milliseconds in `route` and `update`, per method, over these layers. */
  wallMs: Float64Array;
  /** Optimality gaps, (step, held layer, method) row-major, NaN where not solved. */
  gaps: Float64Array;
  /** Steps whose optimum was solved. */
  optimumSteps: number[];
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
  run: Pick<PreparedRun, "config" | "specs" | "workload">,
  balancers: readonly Balancer[],
  layerList: readonly number[],
  onProgress?: (done: number, steps: number) => void,
): LayerRun {
  const { config: cfg, specs, workload } = run;
  const { steps, tokens, experts: E, topK: k } = cfg;
  const held = layerList.length;
  const ctx = balancerContext(cfg);
  const M = specs.length;
  const Q = BATCH_METRICS.length;
  const tables = allocateTables(steps, held, M, E);
  const reference = createRouting(tokens, k, E);
  const wallMs = new Float64Array(M);
  const values = new Float64Array(Q);
  const metricsKernel = requireKernel(batchMetricsOp, "cpu");
  const { exactIndex, steps: gapStepList, at: gapAt } = gapPlan(cfg, specs);
  const gaps = new Float64Array(steps * held * M).fill(NaN);
  const sums = new Float64Array(M);
  // Greedy at the run's own settings is the retention reference: reuse it.
  const greedyIndex = specs.findIndex((s) => s.name === "greedy");
  for (let step = 0; step < steps; step++) {
    for (let h = 0; h < held; h++) {
      const layer = layerList[h];
      const cell = step * held + h;
      const scores = workload.scores(step, layer);
      let referenceSum = NaN;
      if (greedyIndex < 0) {
        routeInto(scores, k, reference, ctx);
        referenceSum = selectedScoreSum(scores, reference);
      }
      let lr = cell * M * E;
      let mr = cell * M * Q;
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
        metricsKernel.run({
          scores,
          routing,
          topK: k,
          referenceSum,
          out: values,
        }, {});
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
        for (let m = 0; m < M; m++) {
          gaps[cell * M + m] = optimum === 0 ? 0 : 1 - sums[m] / optimum;
        }
      }
    }
    onProgress?.(step + 1, steps);
  }
  return {
    layers: [...layerList],
    tables,
    wallMs,
    gaps,
    optimumSteps: gapStepList,
  };
}
