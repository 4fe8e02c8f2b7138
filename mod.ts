/**
 * moelab: study how a Mixture-of-Experts model balances load over its
 * experts. Route scores with top-K ({@linkcode route}, on worker threads
 * with {@linkcode routeParallel}, on WebGPU with {@linkcode routeAsync});
 * compare balancing methods (greedy, Loss-Free, BIP, Quantile, Sinkhorn,
 * Expert Choice, capacity dropping) side by side on the same scores
 * ({@linkcode runSimulation}); measure each against the exact balanced
 * assignment ({@linkcode solveBalancedAssignment}); place experts on GPUs
 * and schedule tokens over replicas ({@linkcode scheduleTokens},
 * {@linkcode rebalanceExperts}).
 *
 * This is the light core: importing it loads no Polars, Observable Plot,
 * linkedom or WebAssembly LP solver (glpk.js and HiGHS load when a caller
 * asks for them). The heavy parts have their own entry points:
 *
 * | entry point                  | what it holds                                         |
 * | ---------------------------- | ----------------------------------------------------- |
 * | `@moelab/balance/workload`   | real traces as Polars tables (CSV, JSON, parquet)     |
 * | `@moelab/balance/report`     | SVG charts, notebook display, HTML and parquet output |
 * | `@moelab/balance/train`      | small trainable MoE models on the Brown corpus        |
 * | `@moelab/balance/cli`        | the `moelab` command line (`sim`, `solve`, `train`...) |
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
  sqrtSoftplus,
} from "./lib/scores/gate.ts";
export {
  createRouting,
  type GroupScore,
  type HostBackend,
  route,
  type RouteOptions,
} from "./lib/route/route.ts";
export {
  megatronCapacity,
  type TopKRouterOptions,
  type TopKRouterResult,
  topkRouting,
} from "./lib/route/topk_router.ts";
export {
  addIn,
  bfloat16,
  countCeiling,
  type Precision,
  PRECISIONS,
  roundTo,
} from "./lib/numeric/precision.ts";
export {
  routeParallel,
  type RouteParallelOptions,
  sharedRouting,
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
export {
  lossFree,
  type LossFreeOptions,
  type RateSchedule,
  scheduledRate,
} from "./lib/route/loss_free.ts";
export { addCount, type CountAdd } from "./lib/ops/loss_free_update.ts";
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
export {
  exact,
  type ExactBalancer,
  type ExactBounds,
  type ExactOptions,
} from "./lib/route/exact.ts";
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
export {
  BATCH_METRICS,
  type BatchMetric,
  batchMetrics,
  type BatchMetricsMany,
  batchMetricsMany,
  type BatchMetricsManyOptions,
  type BatchMetricsOptions,
  METRIC,
} from "./lib/metrics/batch_metrics.ts";
export {
  resolveSimConfig,
  SIM_DEFAULTS,
  type SimConfig,
  type WorkloadConfig,
} from "./lib/sim/config.ts";
export {
  EP_DEFAULT_STRATEGIES,
  EP_DEFAULTS,
  EP_STRATEGIES,
  EP_STRATEGY,
  type EpConfig,
  epGpusPerNode,
  epSlots,
  type EpStrategy,
  type EpStrategySummary,
} from "./lib/sim/ep_config.ts";
export {
  createEpStage,
  EP_TABLE_ROWS,
  type EpResult,
  type EpStage,
  runEpStage,
} from "./lib/sim/ep_stage.ts";
export {
  loadWorkload,
  type PreparedRun,
  type PrepareOptions,
  prepareRun,
  type WorkloadSource,
} from "./lib/sim/prepare_run.ts";
export type { SimTables } from "./lib/sim/tables.ts";
export {
  type RunOptions,
  runSimulation,
  type SimResult,
} from "./lib/sim/run.ts";
export {
  type ParallelRunOptions,
  runSimulationParallel,
} from "./lib/sim/run_parallel.ts";
export type { MethodSummary } from "./lib/sim/summarize.ts";
export type { LoopStage, SimProfile } from "./lib/sim/profile.ts";
export { formatSummaryTable, simSummary } from "./lib/sim/summary_table.ts";
export {
  ASSIGNMENT_SOLVERS,
  type AssignmentSolver,
  type BalancedAssignment,
  type BalancedAssignmentOptions,
} from "./lib/solve/types.ts";
export { solveBalancedAssignment } from "./lib/solve/solve_balanced_assignment.ts";
export { solveBalancedAssignmentSync } from "./lib/solve/solve_balanced_assignment_sync.ts";
export {
  type GroupLimitedBounds,
  groupLimitedBounds,
  type GroupLimitOptions,
} from "./lib/solve/group_limited.ts";
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
  type EplbPolicy,
  eplbPolicy,
  type EplbResult,
  rebalanceExperts,
} from "./lib/placement/eplb.ts";
export {
  colocatedReplicas,
  type Colocation,
} from "./lib/placement/colocation.ts";
export {
  gpuLoadsEqualSplit,
  sglangUtilizationRate,
  trtllmImbalanceRatio,
  vllmBalancedness,
} from "./lib/placement/engine_balance.ts";
export {
  type Migration,
  migrationVolume,
  shouldReplan,
} from "./lib/placement/migration.ts";
export {
  type Advice,
  adviceHeadline,
  type AdviseOptions,
  adviseRecording,
  type StrategyFigures,
  type StrategyKey,
} from "./lib/placement/advise.ts";
export {
  CLOSED_FORM_MAX_GPUS,
  closedFormOptimum,
} from "./lib/placement/closed_form.ts";
export { exactScheduler } from "./lib/placement/exact_scheduler.ts";
export { localFirstScheduler } from "./lib/placement/local_scheduler.ts";
export { loadLpSolvers } from "./lib/solve/lp_solvers.ts";
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
  type MultiNodeModel,
  multiNodeStepTimeMs,
  type StepTimeModel,
  stepTimeMs,
  throughputGain,
} from "./lib/placement/step_time.ts";
export {
  HARDWARE,
  type Hardware,
  HARDWARE_NAMES,
  type HardwareName,
  hardwarePreset,
} from "./lib/placement/hardware.ts";
export {
  groupsStayOnNodes,
  type NodeTraffic,
  nodeTraffic,
  type NodeTrafficOptions,
  remotePairs,
} from "./lib/placement/node_traffic.ts";
