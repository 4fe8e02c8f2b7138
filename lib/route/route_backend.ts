// Routing on a chosen backend: routeAsync() validates once with the route
// op's validator, picks the backend, and runs that backend's kernel of the
// route op ("cpu-threads" on the CPU, "webgpu" on an adapter).
import { acquireGpu, describeGpu, type Gpu } from "../../kernels/device.ts";
import { checkChoice } from "../validate.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { requireKernel } from "../ops/registry.ts";
import { routeOp } from "../ops/route.ts";
import "../ops/route_threads.ts";
import { checkThreads, type RouteParallelOptions } from "./route_parallel.ts";

/** Where routing runs: the CPU, WebGPU, or WebGPU where an adapter exists. */
export type Backend = "cpu" | "webgpu" | "auto";

/**
 * The backend names `--backend` and `backend:` accept.
 *
 * @example
 * ```ts
 * import { BACKENDS } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(BACKENDS, ["cpu", "webgpu", "auto"]);
 * ```
 */
export const BACKENDS: readonly Backend[] = ["cpu", "webgpu", "auto"];

/** The backend a call actually used, for reports. */
export interface BackendInfo {
  /** `"cpu"` or `"webgpu"`. */
  name: "cpu" | "webgpu";
  /** One line: the adapter (vendor, description, software fallback) or the CPU. */
  description: string;
  /** Whether the adapter is a software fallback (lavapipe, llvmpipe, ...). */
  software: boolean;
  /** Why `"auto"` chose the CPU, when it did. */
  reason?: string;
}

/**
 * Resolves a backend name to the backend to use: `"cpu"`; `"webgpu"` (an
 * error without an adapter); `"auto"`: WebGPU where an adapter exists,
 * else the CPU, with the reason.
 *
 * @param backend `"cpu"`, `"webgpu"` or `"auto"`.
 * @returns What was chosen, for reports.
 * @throws {RangeError} If `backend` is not one of the three.
 * @throws {Error} If `"webgpu"` is asked for and there is no adapter.
 *
 * @example
 * ```ts
 * import { selectBackend } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const { info } = await selectBackend("cpu");
 * assert.equal(info.name, "cpu");
 * ```
 */
export async function selectBackend(
  backend: Backend,
): Promise<{ info: BackendInfo }> {
  return { info: (await resolveBackend(backend)).info };
}

/**
 * {@linkcode selectBackend} with the device, for the code that runs
 * kernels on it (routeAsync, the simulator's WebGPU runner).
 */
export async function resolveBackend(
  backend: Backend,
): Promise<{ info: BackendInfo; gpu?: Gpu }> {
  checkChoice("backend", backend, BACKENDS);
  const cpu = (reason?: string): { info: BackendInfo } => ({
    info: { name: "cpu", description: "cpu", software: false, reason },
  });
  if (backend === "cpu") return cpu();
  const { gpu, reason } = await acquireGpu();
  if (!gpu) {
    if (backend === "webgpu") throw new Error(`no WebGPU adapter: ${reason}`);
    return cpu(reason);
  }
  return {
    info: {
      name: "webgpu",
      description: describeGpu(gpu.info),
      software: gpu.info.software,
    },
    gpu,
  };
}

/** Options of {@linkcode routeAsync}. */
export interface RouteAsyncOptions extends RouteParallelOptions {
  /** Default `"cpu"`. */
  backend?: Backend;
}

/**
 * Routes a batch on the chosen backend. The CPU answer is
 * {@linkcode routeParallel}'s (that of `route`). The WebGPU kernel makes
 * the same selection as the CPU given the same bias values, which it holds
 * as float32 (a bias that is not a float32 value is rounded first); its
 * weights agree within float32 rounding. Settings the kernel does not take
 * (`k > 32`, more than 4096 experts, more than 64 groups) run on the CPU
 * under `"auto"`.
 *
 * @param scores Scores after the gate, `tokens x experts`.
 * @param options {@linkcode RouteParallelOptions} and `backend`.
 * @returns The routing and the backend actually used.
 * @throws {TypeError | RangeError} As {@linkcode routeParallel}; RangeError
 * when `"webgpu"` is asked for settings the kernel does not take.
 * @throws {Error} If `"webgpu"` is asked for and there is no adapter.
 *
 * @example
 * ```ts
 * import { routeAsync } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const scores = { data: new Float32Array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5]), tokens: 2, experts: 3 };
 * const { routing, backend } = await routeAsync(scores, { k: 2, backend: "auto" });
 * assert.deepEqual([...routing.loads], [2, 2, 0]);
 * assert.ok(backend.name === "cpu" || backend.name === "webgpu");
 * ```
 */
export async function routeAsync(
  scores: ScoreMatrix,
  options: RouteAsyncOptions,
): Promise<{ routing: Routing; backend: BackendInfo }> {
  const args = routeOp.validate({ scores, options });
  const threads = checkThreads(options.threads);
  const wanted = options.backend ?? "cpu";
  const chosen = await resolveBackend(wanted);
  const gpuKernel = requireKernel(routeOp, "webgpu");
  const unsupported = chosen.gpu ? gpuKernel.refuses!(args) : undefined;
  if (unsupported && wanted === "webgpu") {
    throw new RangeError(`backend "webgpu" cannot route this: ${unsupported}`);
  }
  if (!chosen.gpu || unsupported) {
    const info: BackendInfo = chosen.gpu
      ? {
        name: "cpu",
        description: "cpu",
        software: false,
        reason: unsupported,
      }
      : chosen.info;
    const routing = requireKernel(routeOp, "cpu-threads").run(args, {
      threads,
    });
    return { routing, backend: info };
  }
  const routing = await gpuKernel.run(args, { gpu: chosen.gpu });
  return { routing, backend: chosen.info };
}
