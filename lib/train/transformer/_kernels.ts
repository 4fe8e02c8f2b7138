// The compute kernels the transformer runs, resolved once per workspace
// from the op registry (lib/ops) for one backend: "cpu", "cpu-threads"
// (worker threads over shared memory; ops without a threaded kernel run
// their "cpu" kernel) or "webgpu" (kernels/, loaded on first use). A WebGPU
// kernel answers with a promise; the step awaits every call, so one code
// path serves all backends.
import {
  type AnyOp,
  type ArgsOf,
  type KernelEnv,
  kernelFor,
  requireKernel,
  type ResultOf,
} from "../../ops/registry.ts";
import { type MatmulArgs, matmulOp } from "../../ops/matmul.ts";
import "../../ops/matmul_threads.ts";
import {
  type AttentionArgs,
  type AttentionBackwardArgs,
  attentionBackwardOp,
  attentionOp,
} from "../../ops/attention.ts";
import "../../ops/attention_threads.ts";
import {
  type RmsNormArgs,
  type RmsNormBackwardArgs,
  rmsNormBackwardOp,
  rmsNormOp,
} from "../../ops/rms_norm.ts";
import {
  type MoeCombineArgs,
  type MoeCombineBackwardArgs,
  moeCombineBackwardOp,
  moeCombineOp,
  type MoeDispatchArgs,
  type MoeDispatchBackwardArgs,
  moeDispatchBackwardOp,
  moeDispatchOp,
  type MoeDispatchResult,
} from "../../ops/moe_dispatch.ts";
import type { LmBackend } from "./model.ts";

export type { MatmulArgs };

type Run<O extends AnyOp> = (
  args: ArgsOf<O>,
) => ResultOf<O> | Promise<ResultOf<O>>;

/** The kernels of one backend. */
export interface LmKernels {
  readonly backend: LmBackend;
  matmul: Run<typeof matmulOp>;
  attention: Run<typeof attentionOp>;
  attentionBackward: Run<typeof attentionBackwardOp>;
  rmsNorm: Run<typeof rmsNormOp>;
  rmsNormBackward: Run<typeof rmsNormBackwardOp>;
  dispatch: (
    args: MoeDispatchArgs,
  ) => MoeDispatchResult | Promise<MoeDispatchResult>;
  combine: Run<typeof moeCombineOp>;
  combineBackward: Run<typeof moeCombineBackwardOp>;
  dispatchBackward: Run<typeof moeDispatchBackwardOp>;
}

export type {
  AttentionArgs,
  AttentionBackwardArgs,
  MoeCombineArgs,
  MoeCombineBackwardArgs,
  MoeDispatchBackwardArgs,
  RmsNormArgs,
  RmsNormBackwardArgs,
};

let device: Promise<KernelEnv> | undefined;

/** The WebGPU device and kernels, loaded once (an Error naming why when there is no adapter). */
export function gpuEnv(): Promise<KernelEnv> {
  return device ??= (async () => {
    await import("../../../kernels/mod.ts");
    const { acquireGpu } = await import("../../../kernels/device.ts");
    const { gpu, reason } = await acquireGpu();
    if (!gpu) {
      throw new Error(`backend "webgpu" needs a WebGPU adapter: ${reason}`);
    }
    return { gpu };
  })();
}

/**
 * The kernels of `backend`; `env.threads` for `"cpu-threads"`, `env.gpu`
 * for `"webgpu"` (default: the process's device, acquired on first use).
 */
export function lmKernels(
  backend: LmBackend = "cpu",
  env: { threads?: number; gpu?: unknown } = {},
): LmKernels {
  if (backend === "webgpu") {
    const on = (): Promise<KernelEnv> =>
      env.gpu
        ? import("../../../kernels/mod.ts").then(() => ({ gpu: env.gpu }))
        : gpuEnv();
    const gpu = <O extends AnyOp>(op: O): Run<O> => async (args) => {
      // The WebGPU kernels register when kernels/mod.ts loads, inside on().
      const e = await on();
      return await (requireKernel(op, "webgpu").run(args, e) as Promise<
        ResultOf<O>
      >);
    };
    return {
      backend,
      matmul: gpu(matmulOp),
      attention: gpu(attentionOp),
      attentionBackward: gpu(attentionBackwardOp),
      rmsNorm: gpu(rmsNormOp),
      rmsNormBackward: gpu(rmsNormBackwardOp),
      dispatch: gpu(moeDispatchOp),
      combine: gpu(moeCombineOp),
      combineBackward: gpu(moeCombineBackwardOp),
      dispatchBackward: gpu(moeDispatchBackwardOp),
    };
  }
  const cpuEnv = { threads: env.threads ?? navigator.hardwareConcurrency ?? 1 };
  // The threaded kernel where one exists, else the CPU one.
  const cpu = <O extends AnyOp>(op: O): Run<O> => {
    const k =
      (backend === "cpu-threads" ? kernelFor(op, "cpu-threads") : undefined) ??
        requireKernel(op, "cpu");
    return (args) => k.run(args, cpuEnv) as ResultOf<O>;
  };
  return {
    backend,
    matmul: cpu(matmulOp),
    attention: cpu(attentionOp),
    attentionBackward: cpu(attentionBackwardOp),
    rmsNorm: cpu(rmsNormOp),
    rmsNormBackward: cpu(rmsNormBackwardOp),
    dispatch: cpu(moeDispatchOp),
    combine: cpu(moeCombineOp),
    combineBackward: cpu(moeCombineBackwardOp),
    dispatchBackward: cpu(moeDispatchBackwardOp),
  };
}
