/**
 * The WebGPU kernels: importing this module registers every one of them
 * against its op (lib/ops), so that `kernelFor(op, "webgpu")` finds it.
 * See kernels/README.md for the programs, the device and the buffers.
 *
 * @module
 */
import "./route_topk.ts";
import "./bias_update.ts";
import "./bip_iteration.ts";

export { acquireGpu, describeGpu, type Gpu, gpuOf } from "./device.ts";
