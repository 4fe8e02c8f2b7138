/**
 * Ops: the hot operations of routing and balancing, each with one
 * validator and one kernel per backend, chosen from a registry (after
 * tfjs-core's kernel registry, without its global engine: the caller picks
 * the backend).
 *
 * Layers: lib/select (selection) and lib/types.ts below; kernels/ (the
 * WGSL kernels, which register against these ops) above; the balancers and
 * the public routing functions (lib/route) above both.
 *
 * | op               | what it computes                                  |
 * | ---------------- | ------------------------------------------------- |
 * | `route`          | biased top-K with groups, weights, loads          |
 * | `lossFreeUpdate` | Loss-Free's expert bias update from the loads     |
 * | `bipRound`       | BIP's exact dual coordinate rounds                |
 * | `quantileStep`   | Quantile Balancing's unclipped dual step          |
 * | `sinkhorn`       | Sinkhorn (S-BASE) scaling steps to the tolerance  |
 * | `expertChoice`   | each expert takes its top-C tokens                |
 * | `capacityDrop`   | drop assignments over an expert capacity          |
 * | `batchMetrics`   | balance, retention and drops of a routed batch    |
 * | `rowSelect`      | the exact solver's top-k of s - q, lists near it  |
 * | `rowReselect`    | the same under new prices, from the lists         |
 * | `scoreScan`      | the solver's input check: masks, scale, NaN       |
 * | `certificateRows` | the certificate's token prices, loads, gap terms |
 * | `matmul`         | `out (+)= op(a) op(b)`, float32, any transposes   |
 * | `attention`      | causal softmax(q kᵀ / sqrt(d)) v, per head        |
 * | `attentionBackward` | dq, dk, dv of causal attention                 |
 * | `rmsNorm`        | RMSNorm per row (and `rmsNormBackward`)           |
 * | `moeDispatch`    | token rows grouped by expert, slot rows           |
 * | `moeCombine`     | expert rows weighted back per token               |
 * | `moeCombineBackward` | dy and dWeights of the combine                |
 * | `moeDispatchBackward` | dx of the dispatch (scatter-add)             |
 *
 * Every op has a `"cpu"` kernel: the production code, float64 where it
 * matters, and the reference every other kernel is compared with.
 * `"cpu-threads"` runs the same rule over worker threads; `"webgpu"`
 * kernels (kernels/) compute in float32, a documented difference: the same
 * selections given the same float32 inputs, values within float32
 * rounding.
 *
 * ## Using an op
 *
 * A public function validates once and runs one kernel:
 *
 * ```ts ignore
 * const args = routeOp.validate({ scores, options }); // TypeError | RangeError
 * const routing = requireKernel(routeOp, "cpu").run(args, {});
 * ```
 *
 * Code whose input is already checked (a balancer, the simulator) builds
 * the arguments itself and keeps the kernel it looked up.
 *
 * ## Adding a kernel
 *
 * 1. Write it where its backend lives: a CPU kernel in the op's module
 *    here, a WebGPU kernel in kernels/ (a WGSL program plus a function that
 *    uploads typed arrays, runs, and reads back; resident `GPUBuffer`s may
 *    be passed to the same function by device balancers, so the kernel has
 *    one code path).
 * 2. Register it when its module loads:
 *
 *    ```ts ignore
 *    registerKernel({
 *      op: routeOp,
 *      backend: "webgpu",
 *      run: (args, env) => routeOnGpu(gpuOf(env), args.scores, args.k, {...}),
 *      refuses: (args) => args.k > 32 ? "k above 32" : undefined,
 *      callers: ['routeAsync() with backend "webgpu"'],
 *    });
 *    ```
 *
 *    `run` takes the op's checked arguments and returns the op's result
 *    (a promise of it on WebGPU). `refuses` names the valid arguments the
 *    kernel does not take; `callers` lists the public paths that reach it.
 * 3. Make a public path dispatch to it (`kernelFor(op, backend)`), and add
 *    that path to the reachability table of
 *    tests/kernels_conformance_test.ts. The suite imports every module of
 *    lib/ops and kernels/, then compares every registered kernel with the
 *    op's CPU kernel on the op's cases (ties, `-Infinity`, groups, biases,
 *    sizes off the workgroup, chunked bindings); a kernel that no case
 *    compares, or that no public path reaches, fails it.
 *
 * ## Adding an op
 *
 * `defineOp({ name, summary, validate })` in a new module here, with its
 * CPU kernel registered beside it, and a case generator and comparison in
 * the conformance suite.
 *
 * @module
 */
export {
  type AnyOp,
  type ArgsOf,
  definedOps,
  defineOp,
  type Kernel,
  KERNEL_BACKENDS,
  type KernelBackend,
  type KernelEnv,
  kernelFor,
  type KernelRecord,
  type KernelResult,
  type Op,
  registeredKernels,
  registerKernel,
  requireKernel,
  type ResultOf,
  type SyncBackend,
} from "./registry.ts";
export {
  isGrouped,
  type RouteArgs,
  routeCpu,
  routeOp,
  type RouteOptions,
  type RouteRequest,
} from "./route.ts";
export { routeThreads } from "./route_threads.ts";
export {
  type LossFreeUpdateArgs,
  lossFreeUpdateCpu,
  lossFreeUpdateOp,
} from "./loss_free_update.ts";
export {
  type BipPricesOptions,
  type BipRoundArgs,
  bipRoundCpu,
  bipRoundOp,
  type BipRoundRequest,
  type BipRoundResult,
  type ColumnBounds,
  columnBounds,
  type DualScratch,
  dualScratch,
} from "./bip_round.ts";
export {
  type QuantileStepArgs,
  quantileStepCpu,
  quantileStepOp,
  type QuantileStepRequest,
  routeKeepingNext,
} from "./quantile_step.ts";
export {
  checkSinkhornOptions,
  type SinkhornArgs,
  sinkhornCpu,
  sinkhornOp,
  type SinkhornOptions,
  type SinkhornRequest,
  type SinkhornResult,
  type SinkhornScratch,
  sinkhornScratch,
  type SinkhornSettings,
} from "./sinkhorn.ts";
export {
  type ExpertChoiceArgs,
  expertChoiceCpu,
  expertChoiceOp,
  type ExpertChoiceRequest,
  type ExpertChoiceScratch,
  expertChoiceScratch,
} from "./expert_choice.ts";
export {
  type CapacityDropArgs,
  capacityDropCpu,
  capacityDropOp,
  type CapacityDropRequest,
  type CapacityDropScratch,
  capacityDropScratch,
} from "./capacity_drop.ts";
export {
  type BatchMetricsArgs,
  batchMetricsCpu,
  batchMetricsOp,
  type BatchMetricsRequest,
} from "./batch_metrics.ts";
export {
  type RowReselectArgs,
  rowReselectCpu,
  rowReselectOp,
  type RowReselectRequest,
  type RowSelectArgs,
  rowSelectCpu,
  type RowSelection,
  rowSelectOp,
  type RowSelectRequest,
} from "./row_select.ts";
export {
  type ScoreScan,
  type ScoreScanArgs,
  scoreScanCpu,
  scoreScanOp,
  type ScoreScanRequest,
} from "./score_scan.ts";
export {
  type CertificateRows,
  type CertificateRowsArgs,
  certificateRowsCpu,
  certificateRowsOp,
  type CertificateRowsRequest,
  invalidSlot,
} from "./certificate_rows.ts";
export {
  type MatmulArgs,
  matmulCpu,
  matmulOp,
  type MatmulRequest,
} from "./matmul.ts";
export { matmulThreads } from "./matmul_threads.ts";
export {
  attentionBackwardThreads,
  attentionThreads,
} from "./attention_threads.ts";
export {
  type AttentionArgs,
  type AttentionBackwardArgs,
  attentionBackwardCpu,
  attentionBackwardOp,
  type AttentionBackwardRequest,
  attentionCpu,
  type AttentionGrads,
  attentionOp,
  type AttentionRequest,
  type AttentionShape,
} from "./attention.ts";
export {
  type RmsNormArgs,
  type RmsNormBackwardArgs,
  rmsNormBackwardCpu,
  rmsNormBackwardOp,
  type RmsNormBackwardRequest,
  rmsNormCpu,
  type RmsNormGrads,
  rmsNormOp,
  type RmsNormRequest,
} from "./rms_norm.ts";
export {
  type MoeCombineArgs,
  type MoeCombineBackwardArgs,
  moeCombineBackwardCpu,
  moeCombineBackwardOp,
  type MoeCombineBackwardRequest,
  moeCombineCpu,
  type MoeCombineGrads,
  moeCombineOp,
  type MoeCombineRequest,
  type MoeDispatchArgs,
  type MoeDispatchBackwardArgs,
  moeDispatchBackwardCpu,
  moeDispatchBackwardOp,
  type MoeDispatchBackwardRequest,
  moeDispatchCpu,
  moeDispatchOp,
  type MoeDispatchRequest,
  type MoeDispatchResult,
  type MoeShape,
} from "./moe_dispatch.ts";
