/**
 * moelab: study how a Mixture-of-Experts model balances load over its
 * experts. Route scores with top-K ({@linkcode route}); compare balancing
 * methods (greedy, Loss-Free, BIP, Quantile, Sinkhorn, Expert Choice,
 * capacity dropping) side by side on the same scores
 * ({@linkcode runSimulation}); measure each against the exact balanced
 * assignment ({@linkcode solveBalancedAssignment}); place experts on GPUs
 * and schedule tokens over replicas ({@linkcode scheduleTokens},
 * {@linkcode rebalanceExperts}); load real traces into Polars; train small
 * MoE models to see what balancing costs in quality ({@linkcode trainMoe});
 * plot it all in reports and notebooks.
 *
 * @example Loss-Free Balancing against greedy top-K
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const result = runSimulation({
 *   experts: 16, topK: 2, tokens: 1024, layers: 1, steps: 60,
 *   methods: ["greedy", "loss-free(rate=0.01)"],
 * });
 * const [greedy, lossFree] = result.methods;
 * assert.ok(lossFree.maxVioGlobal < greedy.maxVioGlobal);
 * ```
 *
 * @module
 */
export type { Routing, ScoreMatrix } from "./lib/types.ts";
export { Rng } from "./lib/scores/rng.ts";
export {
  applyGate,
  type Gate,
  scoreMatrix,
  sigmoid,
  softmax,
} from "./lib/scores/gate.ts";
export { createRouting, route, type RouteOptions } from "./lib/route/route.ts";
export {
  routeParallel,
  type RouteParallelOptions,
  sharedScores,
} from "./lib/route/route_parallel.ts";
export {
  type Backend,
  type BackendInfo,
  BACKENDS,
  routeAsync,
  type RouteAsyncOptions,
  selectBackend,
} from "./lib/route/route_backend.ts";
export {
  type BackendRunOptions,
  runSimulationOn,
} from "./lib/sim/run_backend.ts";
export type { Balancer, BalancerContext } from "./lib/route/balancer.ts";
export { greedy } from "./lib/route/greedy.ts";
export { lossFree, type LossFreeOptions } from "./lib/route/loss_free.ts";
export {
  bip,
  type BipOptions,
  bipPrices,
  type BipPricesOptions,
} from "./lib/route/bip.ts";
export { quantile } from "./lib/route/quantile.ts";
export {
  sinkhorn,
  type SinkhornOptions,
  type SinkhornScaling,
  sinkhornScaling,
} from "./lib/route/sinkhorn.ts";
export {
  expertChoice,
  type ExpertChoiceOptions,
} from "./lib/route/expert_choice.ts";
export { capacity, type CapacityOptions } from "./lib/route/capacity.ts";
export { exact, type ExactOptions } from "./lib/route/exact.ts";
export {
  type BalancerEntry,
  BALANCERS,
  createBalancer,
  type MethodSpec,
  parseMethodSpec,
} from "./lib/route/registry.ts";
export {
  coefficientOfVariation,
  maxOverMean,
  maxVio,
  selectedScoreSum,
  zeroLoadExperts,
} from "./lib/metrics/load_metrics.ts";
export type { Workload } from "./lib/workload/workload.ts";
export {
  type SyntheticOptions,
  syntheticWorkload,
} from "./lib/workload/synthetic.ts";
export { encodeNpy, type NpyArray, parseNpy } from "./lib/workload/npy.ts";
export { replayWorkload } from "./lib/workload/replay.ts";
export { readTable } from "./lib/workload/read_table.ts";
export {
  loadTable,
  type LoadTableMapping,
  readLoadTable,
} from "./lib/workload/load_table.ts";
export {
  readTokenTrace,
  tokenTrace,
  type TokenTraceMapping,
} from "./lib/workload/token_trace.ts";
export {
  traceLoads,
  type TraceLoadsOptions,
} from "./lib/workload/trace_loads.ts";
export { type LoadVector, loadVectors } from "./lib/workload/load_vectors.ts";
export { loadImbalance } from "./lib/workload/load_imbalance.ts";
export { olmoeExpertCounts } from "./lib/workload/olmoe_counts.ts";
export { moeBeyondBatches } from "./lib/workload/moe_beyond_batches.ts";
export {
  resolveSimConfig,
  SIM_DEFAULTS,
  type SimConfig,
} from "./lib/sim/config.ts";
export {
  BATCH_METRICS,
  loadWorkload,
  type RunOptions,
  runSimulation,
  type SimResult,
  type SimTables,
} from "./lib/sim/run.ts";
export {
  type ParallelRunOptions,
  runSimulationParallel,
} from "./lib/sim/run_parallel.ts";
export type { MethodSummary } from "./lib/sim/summarize.ts";
export {
  formatSummaryTable,
  type SimFrames,
  simFrames,
  simSummary,
  writeSimOutputs,
} from "./lib/sim/output.ts";
export {
  ASSIGNMENT_SOLVERS,
  type AssignmentSolver,
  type BalancedAssignment,
  type BalancedAssignmentOptions,
} from "./lib/solve/types.ts";
export { solveBalancedAssignment } from "./lib/solve/solve_balanced_assignment.ts";
export { solveBalancedAssignmentSync } from "./lib/solve/solve_balanced_assignment_sync.ts";
export {
  isSlotAligned,
  type Placement,
  placementFromPhy2log,
  staticPlacement,
} from "./lib/placement/placement.ts";
export {
  SYMMETRIC_GRAPHS,
  type SymmetricGraph,
  type SymmetricOptions,
  symmetricPlacement,
} from "./lib/placement/cayley.ts";
export {
  randomPlacement,
  type RandomPlacementOptions,
} from "./lib/placement/random.ts";
export {
  type AsymmetricOptions,
  asymmetricPlacement,
  replicaCounts,
} from "./lib/placement/asymmetric.ts";
export {
  type EplbOptions,
  type EplbResult,
  rebalanceExperts,
} from "./lib/placement/eplb.ts";
export {
  CLOSED_FORM_MAX_GPUS,
  closedFormOptimum,
} from "./lib/placement/closed_form.ts";
export { exactScheduler } from "./lib/placement/exact_scheduler.ts";
export { loadLpSolvers, lpSolversLoaded } from "./lib/solve/lp_solvers.ts";
export type { Schedule, Scheduler } from "./lib/placement/types.ts";
export {
  createScheduler,
  SCHEDULE_SOLVERS,
  type ScheduleOptions,
  type ScheduleSolver,
  scheduleTokens,
} from "./lib/placement/schedule.ts";
export {
  type Dispatch,
  dispatchTokens,
  type Transfer,
} from "./lib/placement/locality.ts";
export {
  type CommAwareSchedule,
  commAwareSchedule,
} from "./lib/placement/comm_aware.ts";
export {
  H100_NVLINK,
  type StepTimeModel,
  stepTimeMs,
  throughputGain,
} from "./lib/placement/step_time.ts";
export { Figure } from "./lib/report/figure.ts";
export type { MimeBundle } from "./lib/report/_jupyter.ts";
export type { ChartOptions, PlotData } from "./lib/report/_plot.ts";
export { lineChart, type LineChartOptions } from "./lib/report/line_chart.ts";
export { heatmap, type HeatmapOptions } from "./lib/report/heatmap.ts";
export { barChart, type BarChartOptions } from "./lib/report/bar_chart.ts";
export {
  type BatchMetric,
  convergencePlot,
  loadHeatmap,
  metricOverSteps,
  mostImbalancedLayer,
} from "./lib/report/sim_plots.ts";
export {
  display,
  htmlTable,
  markdown,
  Rendered,
} from "./lib/report/display.ts";
export { simReportHtml } from "./lib/report/html_report.ts";
export {
  CHAR_VOCAB,
  decodeText,
  encodeText,
  UNKNOWN_CHAR,
} from "./lib/train/vocab.ts";
export {
  type BrownCorpus,
  type BrownOptions,
  loadBrown,
  stripBrownTags,
} from "./lib/train/brown.ts";
export {
  createMoeModel,
  type MoeModel,
  type MoeModelConfig,
  type MoeParams,
  type ResolvedModelConfig,
} from "./lib/train/model.ts";
export {
  auxLoss,
  type AuxLossOptions,
  type RouterBatch,
  zLoss,
  type ZLossOptions,
} from "./lib/train/aux_loss.ts";
export { Adam, type AdamOptions } from "./lib/train/adam.ts";
export { parseTrainMethod, type TrainMethod } from "./lib/train/method.ts";
export {
  evaluateMoe,
  type EvaluateOptions,
  type Evaluation,
} from "./lib/train/evaluate.ts";
export {
  trainMoe,
  type TrainOptions,
  type TrainRun,
} from "./lib/train/train.ts";
export {
  type MeanStd,
  runTrainExperiment,
  type TrainExperiment,
  type TrainMethodSummary,
  type TrainPreset,
} from "./lib/train/experiment.ts";
export {
  formatTrainTable,
  type TrainFrames,
  trainFrames,
  trainSummary,
  writeTrainOutputs,
} from "./lib/train/output.ts";
