// The WebAssembly SIMD kernel of the gap terms op (backend "wasm"): the CPU
// kernel's sums, bit for bit, on lib/wasm/src/select.c. Scores in the
// shared heap are read in place, others copied into the instance's memory.
import { registerKernel } from "./registry.ts";
import { floatsIn, wasmRuntimeOn } from "../wasm/runtime.ts";
import { type GapTermsArgs, gapTermsOp } from "./gap_terms.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode gapTermsOp}: the same terms as
 * {@linkcode gapTermsCpu}, bit for bit (a float32x4 pass finds a
 * superset of the positive differences, float64 decides; only those are
 * summed, in the same order). Needs
 * the runtime; callers pick it through `hostKernel(gapTermsOp, "wasm")`.
 */
export function gapTermsWasm(args: GapTermsArgs): Float64Array {
  const { scores: { data, tokens: N, experts: E }, k, slots } = args;
  const rt = wasmRuntimeOn(data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const at = {
    scores: floatsIn(rt, data, "select.scores"),
    slots: rt.reserve("gap.slots", N * k * 4),
    p: rt.reserve("gap.p", N * 8),
    q: rt.reserve("gap.q", E * 8),
    out: rt.reserve("gap.out", N * 8),
    qf: rt.reserve("gap.qf", E * 4),
  };
  rt.i32(at.slots, N * k).set(slots);
  rt.f64(at.p, N).set(args.tokenPrices);
  rt.f64(at.q, E).set(args.expertPrices);
  rt.exports.moelab_gap_terms(
    at.scores,
    N,
    E,
    k,
    at.slots,
    at.p,
    at.q,
    at.out,
    at.qf,
  );
  return rt.f64(at.out, N).slice();
}

registerKernel({
  op: gapTermsOp,
  backend: "wasm",
  run: gapTermsWasm,
  callers: ["solveBalancedAssignmentSync()", "solveBalancedAssignment()"],
});
