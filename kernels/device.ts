// Adapter and device acquisition: one device per process, with the limits
// the kernels need requested explicitly, and a description of the adapter
// for reports (summary.json's `backend`).
import { BufferPool } from "./buffer_pool.ts";
import { PipelineCache } from "./pipeline_cache.ts";
import type { KernelEnv } from "../lib/ops/registry.ts";

/** What a report says about the adapter in use. */
export interface GpuInfo {
  /** Adapter vendor as the driver reports it (a PCI id on some drivers). */
  vendor: string;
  /** Adapter architecture, often empty. */
  architecture: string;
  /** Adapter description, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  description: string;
  /**
   * Whether the adapter is a software fallback: `isFallbackAdapter`, or a
   * CPU rasteriser (llvmpipe, lavapipe, SwiftShader, WARP) in the description.
   */
  software: boolean;
}

/** An acquired device with the project's caches. */
export interface Gpu {
  device: GPUDevice;
  info: GpuInfo;
  /** Largest storage binding, in bytes (what the device was granted). */
  maxBinding: number;
  /** Largest buffer, in bytes. */
  maxBuffer: number;
  /** Largest workgroup count per dispatch dimension. */
  maxGroups: number;
  /** Whether timestamp queries are available. */
  timestamps: boolean;
  pool: BufferPool;
  pipelines: PipelineCache;
}

/** The outcome of {@linkcode acquireGpu}: a device, or why there is none. */
export type GpuAcquisition =
  | { gpu: Gpu; reason?: undefined }
  | { gpu?: undefined; reason: string };

let pending: Promise<GpuAcquisition> | undefined;

/**
 * Acquires the WebGPU device once per process (Deno's `navigator.gpu`;
 * Bun has none, so there the answer is the reason). Requests the adapter's
 * largest storage binding and buffer sizes, and timestamp queries where the
 * adapter has them.
 */
export function acquireGpu(): Promise<GpuAcquisition> {
  pending ??= open();
  return pending;
}

/**
 * Destroys the device that {@linkcode acquireGpu} made, if any (its
 * buffers with it); a later `acquireGpu` makes a new one. For the end of a
 * test module: several modules of one `deno test --parallel` process each
 * hold a device on their own thread, and releasing each where its module
 * ends leaves none to the driver's teardown at the process's exit.
 */
export async function releaseGpu(): Promise<void> {
  const held = pending;
  pending = undefined;
  const got = await held;
  got?.gpu?.device.destroy();
}

async function open(): Promise<GpuAcquisition> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) {
    return {
      reason: "this runtime has no navigator.gpu (WebGPU); Bun has none",
    };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    return { reason: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) {
    return {
      reason:
        "no WebGPU adapter (on Linux without a GPU: apt-get install libvulkan1 mesa-vulkan-drivers, and set XDG_RUNTIME_DIR)",
    };
  }
  const a = adapter.limits;
  const timestamps = adapter.features.has("timestamp-query");
  const device = await adapter.requestDevice({
    label: "moelab",
    requiredFeatures: timestamps ? ["timestamp-query"] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
      maxBufferSize: a.maxBufferSize,
      maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: Math.min(
        8,
        a.maxStorageBuffersPerShaderStage,
      ),
    },
  });
  const raw = adapter.info;
  const description = raw.description || raw.device || "";
  const info: GpuInfo = {
    vendor: raw.vendor,
    architecture: raw.architecture,
    description,
    software: Boolean(
      (raw as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ) || /llvmpipe|lavapipe|swiftshader|warp|software/i.test(description),
  };
  return {
    gpu: {
      device,
      info,
      maxBinding: device.limits.maxStorageBufferBindingSize,
      maxBuffer: device.limits.maxBufferSize,
      maxGroups: device.limits.maxComputeWorkgroupsPerDimension,
      timestamps,
      pool: new BufferPool(device),
      pipelines: new PipelineCache(device),
    },
  };
}

/** One line naming an adapter, e.g. `webgpu: llvmpipe (...) [software]`. */
export function describeGpu(info: GpuInfo): string {
  const name = [info.description, info.architecture].filter(Boolean).join(
    ", ",
  );
  return `webgpu: ${name || "unknown adapter"} (vendor ${
    info.vendor || "unknown"
  })${info.software ? " [software fallback]" : ""}`;
}

/**
 * The device of a `"webgpu"` kernel's environment (lib/ops keeps it
 * opaque, being below kernels/).
 *
 * @throws {Error} If the environment carries no device.
 */
export function gpuOf(env: KernelEnv): Gpu {
  const gpu = env.gpu as Gpu | undefined;
  if (!gpu || !gpu.device) {
    throw new Error(
      "a webgpu kernel needs env.gpu: the device from acquireGpu()",
    );
  }
  return gpu;
}
