/**
 * The WebGPU kernels: importing this module registers every one of them
 * against its op (lib/ops), so that `kernelFor(op, "webgpu")` finds it.
 * See kernels/README.md for the programs, the device and the buffers.
 *
 * @module
 */
import "./route_topk.ts";
import "./bias_update.ts";
import "./dual_round.ts";
import "./sinkhorn_scaling.ts";
import "./expert_choice.ts";
import "./capacity_drop.ts";
import "./batch_metrics.ts";
import "./matmul.ts";
import "./attention.ts";
import "./rms_norm.ts";
import "./moe_dispatch.ts";

export { acquireGpu, describeGpu, type Gpu, gpuOf } from "./device.ts";
