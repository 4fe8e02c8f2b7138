// Which kernel of an op runs on the calling thread: the WebAssembly SIMD
// kernel (backend "wasm") where one is registered, the engine runs the
// module and the kernel takes the arguments; else the TypeScript kernel
// ("cpu"), its reference. Both give the same answer bit for bit, so the
// choice changes the speed, never a number.
import {
  type AnyOp,
  type ArgsOf,
  type KernelEnv,
  kernelFor,
  type KernelRecord,
  requireKernel,
  type ResultOf,
} from "./registry.ts";
import { wasmRuntime } from "../wasm/runtime.ts";

/**
 * Where an op runs on the calling thread: `"wasm"` (WebAssembly SIMD where
 * the op has such a kernel, else TypeScript) or `"cpu"` (TypeScript only:
 * the reference).
 */
export type HostBackend = "cpu" | "wasm";

/** Every {@linkcode HostBackend}, the default first. */
export const HOST_BACKENDS: readonly HostBackend[] = ["wasm", "cpu"];

/**
 * The kernel of `op` that `host` runs, before looking at the arguments:
 * the `"wasm"` kernel when `host` is `"wasm"`, one is registered (import
 * its module first) and this engine runs WebAssembly SIMD; else the
 * `"cpu"` kernel. Use {@linkcode runOnHost} where a kernel may refuse
 * some arguments.
 */
export function hostKernel<O extends AnyOp>(
  op: O,
  host: HostBackend = "wasm",
): KernelRecord<O, "cpu" | "wasm"> {
  if (host === "wasm") {
    const k = kernelFor(op, "wasm");
    if (k && wasmRuntime()) return k;
  }
  return requireKernel(op, "cpu");
}

/**
 * Runs `op` on checked `args` with the kernel `host` picks
 * ({@linkcode hostKernel}), falling back to the `"cpu"` kernel where the
 * `"wasm"` kernel refuses these arguments.
 */
export function runOnHost<O extends AnyOp>(
  op: O,
  args: ArgsOf<O>,
  host: HostBackend = "wasm",
  env: KernelEnv = {},
): ResultOf<O> {
  let k = hostKernel(op, host);
  if (k.backend === "wasm" && k.refuses?.(args) !== undefined) {
    k = requireKernel(op, "cpu");
  }
  return k.run(args, env) as ResultOf<O>;
}
