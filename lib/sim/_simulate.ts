// The simulator's inner loop, over any subset of the layers: every layer
// is independent (balancers keep per-layer state, scores depend only on
// seed, step and layer), so subsets can run on separate threads, each
// holding the rows of its own layers only, and merge exactly.
import { createRouting, routeInto } from "../route/route.ts";
import type { Balancer, BalancerContext } from "../route/balancer.ts";
import { BATCH_METRICS, batchMetricsMany } from "../metrics/batch_metrics.ts";
import { requireKernel } from "../ops/registry.ts";
import { batchMetricsOp } from "../ops/batch_metrics.ts";
import type { Routing } from "../types.ts";
import type { HostBackend } from "../ops/host.ts";
import { solveBalancedAssignmentSync } from "../solve/solve_balanced_assignment_sync.ts";
import { groupLimitedBounds } from "../solve/group_limited.ts";
import type { ScoreMatrix } from "../types.ts";
import type { SimConfig } from "./config.ts";
import { isGrouped } from "../ops/route.ts";
import { exactOptimum, gapPlan } from "./eval_window.ts";
import type { PreparedRun } from "./prepare_run.ts";
import { allocateTables, type SimTables } from "./tables.ts";
import { LOOP_STAGE, LOOP_STAGES } from "./profile.ts";

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
  /** Milliseconds in `route` alone, per method. */
  routeMs: Float64Array;
  /** Milliseconds per loop stage ({@linkcode LOOP_STAGES}), over these layers. */
  stageMs: Float64Array;
  /** Optimality gaps, (step, held layer, method) row-major, NaN where not solved. */
  gaps: Float64Array;
  /** Steps whose optimum was solved. */
  optimumSteps: number[];
}

/**
 * Full tables (every layer, rows ordered step, layer, method, ...) and
 * optimality gaps that several runs of {@linkcode simulateLayers}, one per
 * share of the layers, fill in place (on shared memory, from worker
 * threads), each writing the rows of its own layers only.
 */
export interface FullTables {
  tables: SimTables;
  gaps: Float64Array;
}

/**
 * The balancer context of a configuration; `host` picks the kernels of the
 * CPU balancers and routing (`"wasm"` by default, `"cpu"`: TypeScript
 * only), which give the same numbers.
 */
export function balancerContext(
  cfg: SimConfig,
  host: HostBackend = "wasm",
): BalancerContext {
  return {
    host,
    layers: cfg.layers,
    experts: cfg.experts,
    k: cfg.topK,
    normalize: cfg.normalize,
    groups: cfg.groups,
    topGroups: cfg.topGroups,
  };
}

/**
 * Runs every method on the layers of `layerList`, step by step: each
 * method routes the batch, its loads and biases are recorded and it
 * updates; then every method's metrics (and the gap's sums) come from one
 * pass over the scores (batchMetricsMany). Score retention is measured
 * against greedy top-K on the same batch.
 */
export function simulateLayers(
  run: Pick<PreparedRun, "config" | "specs" | "workload"> & {
    host?: HostBackend;
  },
  balancers: readonly Balancer[],
  layerList: readonly number[],
  onProgress?: (done: number, steps: number) => void,
  into?: FullTables,
): LayerRun {
  const { config: cfg, specs, workload } = run;
  const { steps, tokens, experts: E, topK: k } = cfg;
  const M = specs.length;
  // Rows go to (step, held layer), or to (step, layer) of the full tables.
  const held = into ? cfg.layers : layerList.length;
  const slot = into ? layerList : layerList.map((_, h) => h);
  const ctx = balancerContext(cfg, run.host);
  const Q = BATCH_METRICS.length;
  const tables = into?.tables ?? allocateTables(steps, layerList, M, E);
  const loadColumn = tables.loads.load, biasColumn = tables.biases.bias;
  const metricColumn = tables.metrics.value;
  const reference = createRouting(tokens, k, E);
  const wallMs = new Float64Array(M), routeMs = new Float64Array(M);
  const stageMs = new Float64Array(LOOP_STAGES.length);
  const { exactIndex, steps: gapStepList, at: gapAt } = gapPlan(cfg, specs);
  const gaps = into?.gaps ?? new Float64Array(steps * held * M).fill(NaN);
  // Greedy at the run's own settings is the retention reference: reuse it;
  // without it, a private greedy routing (after the methods' own).
  const greedyIndex = specs.findIndex((s) => s.name === "greedy");
  const routings: Routing[] = [];
  const values = Array.from(
    { length: M + (greedyIndex < 0 ? 1 : 0) },
    () => new Float64Array(Q),
  );
  const referenceIndex = greedyIndex < 0 ? M : greedyIndex;
  // The batchMetrics op's CPU kernel, whose code batchMetricsMany runs for
  // every method at once: noted once per method and batch.
  const metricsKernel = requireKernel(batchMetricsOp, "cpu");
  const { scores: SCORES, reference: REFERENCE, metrics: METRICS } = LOOP_STAGE;
  const { record: RECORD, gap: GAP } = LOOP_STAGE;
  const causal = balancers.map((b) => b.causal);
  for (let step = 0; step < steps; step++) {
    for (let h = 0; h < layerList.length; h++) {
      const layer = layerList[h];
      const cell = step * held + slot[h];
      let t = performance.now();
      const scores = workload.scores(step, layer);
      let now = performance.now();
      stageMs[SCORES] += now - t;
      for (let m = 0; m < M; m++) {
        const b = balancers[m];
        const t0 = performance.now();
        const routing = b.route(layer, scores);
        const t1 = performance.now();
        routeMs[m] += t1 - t0;
        // A balancer's routing stays as it is until its next route: the
        // metrics of every method are taken after the last one's.
        routings[m] = routing;
        // Read after route: a non-causal method sets its bias from the batch.
        const row = (cell * M + m) * E;
        loadColumn.set(routing.loads, row);
        biasColumn.set(b.biases(layer), row);
        const t2 = performance.now();
        stageMs[RECORD] += t2 - t1;
        b.update(layer, scores, routing);
        wallMs[m] += t1 - t0 + (performance.now() - t2);
      }
      if (greedyIndex < 0) {
        t = performance.now();
        routeInto(scores, k, reference, ctx);
        routings[M] = reference;
        stageMs[REFERENCE] += performance.now() - t;
      }
      // Every method's metrics and selected score sum in one pass over the
      // scores.
      t = performance.now();
      const { sums } = batchMetricsMany(scores, routings, {
        topK: k,
        referenceIndex,
        out: values,
      });
      for (let m = 0; m < M; m++) {
        metricColumn.set(values[m], (cell * M + m) * Q);
        metricsKernel.note();
      }
      now = performance.now();
      stageMs[METRICS] += now - t;
      if (gapAt[step]) {
        t = now;
        const optimum = exactIndex >= 0
          ? exactOptimum(balancers[exactIndex], layer, sums[exactIndex])
          : gapOptimum(
            scores,
            cfg,
            startPrices(causal, biasColumn, cell * M * E, E),
            ctx.host,
          );
        for (let m = 0; m < M; m++) {
          gaps[cell * M + m] = optimum === 0 ? 0 : 1 - sums[m] / optimum;
        }
        stageMs[GAP] += performance.now() - t;
      }
    }
    onProgress?.(step + 1, steps);
  }
  return {
    layers: into ? Array.from({ length: held }, (_, l) => l) : [...layerList],
    tables,
    wallMs,
    routeMs,
    stageMs,
    gaps,
    optimumSteps: gapStepList,
  };
}

/**
 * The optimum a batch's gaps are measured against where no `exact` method
 * runs: the exact optimum without a group limit; under one, the upper end
 * of {@linkcode groupLimitedBounds}' bracket of the group-limited optimum
 * (at or above it, so the gaps are upper bounds, and at or below the
 * relaxation that drops the limit: at DeepSeek-V3's shape about 2.3 % of
 * the score below it, the price of the limit itself). `expertPrices`
 * starts the (relaxation's) solve.
 */
export function gapOptimum(
  scores: ScoreMatrix,
  config: Pick<SimConfig, "topK" | "groups" | "topGroups">,
  expertPrices: Float64Array | undefined,
  host?: HostBackend,
): number {
  const start = { k: config.topK, expertPrices, host };
  return isGrouped(config)
    ? groupLimitedBounds(scores, {
      ...start,
      groups: config.groups,
      topGroups: config.topGroups,
    }).upperBound
    : solveBalancedAssignmentSync(scores, start).objective;
}

/**
 * Where the gap's exact solve starts: the expert prices `q = -bias` that
 * routed this batch, recorded in `bias` from `from` (one row of `experts`
 * per method, `causal[m]` telling method `m`'s kind). A method's row
 * counts when it is finite and not all zero: the first non-causal
 * method's (BIP sets its prices from this very batch), else the first
 * causal one's (prices from the batches before), else none (the solver's
 * own start, a token sample's prices). Any prices give the same optimum;
 * close ones shorten the repair. On DeepSeek-V3-shaped batches (16384 x
 * 256, k = 8) a solve from BIP's prices took about a third of one from the
 * sample's, from Quantile's about two fifths.
 */
export function startPrices(
  causal: readonly boolean[],
  bias: Float64Array,
  from: number,
  experts: number,
): Float64Array | undefined {
  let pick = -1;
  for (let m = 0; m < causal.length; m++) {
    const at = from + m * experts;
    let nonzero = false, finite = true;
    for (let j = 0; j < experts; j++) {
      const b = bias[at + j];
      nonzero ||= b !== 0;
      finite &&= Number.isFinite(b);
    }
    if (!nonzero || !finite) continue;
    if (!causal[m]) {
      pick = m;
      break;
    }
    if (pick < 0) pick = m;
  }
  if (pick < 0) return undefined;
  const at = from + pick * experts;
  return Float64Array.from(bias.subarray(at, at + experts), (v) => 0 - v);
}
