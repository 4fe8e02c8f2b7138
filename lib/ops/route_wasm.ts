// The "wasm" kernel of the route op: the rows routed by the WebAssembly
// SIMD kernel (lib/wasm/src/route.c) on this thread's instance, in blocks
// copied into its memory (in place where the scores live in the shared
// heap, lib/wasm/runtime.ts). The same answers as the "cpu" kernel bit for
// bit: float64 keys, a float32 pre-filter whose bounds are checked to be
// conservative, the exact selection among the entries left, the
// reference's full scan where too few are left.
import type { Routing } from "../types.ts";
import { registerKernel } from "./registry.ts";
import { routeAllRows, type RouteArgs, routeCpu, routeOp } from "./route.ts";
import { heapRowRouter, wasmRowRouter } from "./_route_wasm_rows.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode routeOp}: writes `args.out`
 * and returns it; the `"cpu"` kernel where the engine cannot run the
 * module. Throws the `"cpu"` kernel's RangeError for a NaN or `+Infinity`
 * score.
 */
export function routeWasm(args: RouteArgs): Routing {
  return routeAllRows(args, heapRowRouter) ??
    routeAllRows(args, wasmRowRouter) ?? routeCpu(args);
}

registerKernel({
  op: routeOp,
  backend: "wasm",
  run: routeWasm,
  callers: [
    'route() and routeInto() with host "wasm" (the default: balancers, simulator, training)',
    'routeParallel() with host "wasm" below its size threshold',
  ],
});
