// The WebAssembly SIMD kernel of the BIP round op (backend "wasm"): the
// CPU kernel's rounds, bit for bit, on lib/wasm/src/dual.c.
import { registerKernel } from "./registry.ts";
import { wasmRuntimeOn } from "../wasm/runtime.ts";
import {
  type BipRoundArgs,
  bipRoundOp,
  type BipRoundResult,
} from "./bip_round.ts";
import { coordinateRoundsWasm } from "./_dual_wasm.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode bipRoundOp}: the same prices as
 * {@linkcode bipRoundCpu}, bit for bit (the same float64 values and order
 * statistics; SIMD lists the candidates). Reads and writes
 * `args.scratch`'s token prices and row filter, as the CPU kernel does.
 * Needs the runtime ({@linkcode wasmRuntime}); callers pick it through
 * `hostKernel(bipRoundOp, "wasm")`, which falls back to the CPU kernel
 * where WebAssembly SIMD is missing.
 */
export function bipRoundWasm(args: BipRoundArgs): BipRoundResult {
  const rt = wasmRuntimeOn(args.scores.data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const { scores } = args;
  const p = args.scratch?.p ?? new Float64Array(scores.tokens);
  const stats = args.scratch?.filter.stats ?? new Float64Array([NaN, 0]);
  coordinateRoundsWasm(
    rt,
    scores,
    args.k,
    args.capacity,
    args.prices,
    args.rounds,
    args.clip,
    p,
    stats,
    args.bounds,
  );
  return { prices: args.prices, tokenPrices: p };
}

registerKernel({
  op: bipRoundOp,
  backend: "wasm",
  run: bipRoundWasm,
  callers: ["bipPrices()", "bip balancer route()"],
});
