// A routing's three device buffers (experts, weights, loads) read back into
// a host Routing, and a routing copied into a caller's buffers: what every
// registered kernel that returns a Routing does after its passes.
import type { Routing } from "../lib/types.ts";
import type { Gpu } from "./device.ts";
import { readBack } from "./program.ts";

/** The device buffers of a routing: slots (`int32`, `f32`) and loads (`u32`). */
export interface RoutingBuffers {
  experts: GPUBuffer;
  weights: GPUBuffer;
  loads: GPUBuffer;
}

/**
 * Reads `buffers` into `out`, whose lengths give the sizes read (slots of
 * `experts` and `weights`, one load per expert). Returns `out`.
 */
export async function readRouting(
  gpu: Gpu,
  buffers: RoutingBuffers,
  out: Routing,
): Promise<Routing> {
  const [e, w, l] = await Promise.all([
    readBack(gpu, buffers.experts, 4 * out.experts.length),
    readBack(gpu, buffers.weights, 4 * out.weights.length),
    readBack(gpu, buffers.loads, 4 * out.loads.length),
  ]);
  out.experts.set(new Int32Array(e));
  out.weights.set(new Float32Array(w));
  out.loads.set(new Int32Array(l));
  return out;
}

/** Copies `from` into `to` (same shape). Returns `to`. */
export function copyRouting(from: Routing, to: Routing): Routing {
  to.experts.set(from.experts);
  to.weights.set(from.weights);
  to.loads.set(from.loads);
  return to;
}
