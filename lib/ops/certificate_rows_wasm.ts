// The WebAssembly SIMD kernel of the certificate rows op (backend "wasm"):
// the CPU kernel's numbers, bit for bit, on lib/wasm/src/select.c. Scores
// in the shared heap are read in place, others copied into the instance's
// memory.
import { registerKernel } from "./registry.ts";
import { floatsIn, wasmRuntimeOn } from "../wasm/runtime.ts";
import {
  type CertificateRows,
  type CertificateRowsArgs,
  certificateRowsOp,
} from "./certificate_rows.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode certificateRowsOp}: the same
 * token prices, experts, loads, objective and gap terms as
 * {@linkcode certificateRowsCpu}, bit for bit (a float32x4 pass finds a
 * superset of the positive differences, float64 decides; only those are
 * summed, in the same order). Needs the runtime; callers pick it through
 * `hostKernel(certificateRowsOp, "wasm")`.
 */
export function certificateRowsWasm(
  args: CertificateRowsArgs,
): CertificateRows {
  const { scores: { data, tokens: N, experts: E }, k, slots } = args;
  const rt = wasmRuntimeOn(data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const at = {
    scores: floatsIn(rt, data, "select.scores"),
    slots: rt.reserve("cert.slots", N * k * 4),
    q: rt.reserve("cert.q", E * 8),
    p: rt.reserve("cert.p", N * 8),
    out: rt.reserve("cert.out", N * k * 4),
    loads: rt.reserve("cert.loads", E * 4),
    terms: rt.reserve("cert.terms", N * 8),
    objective: rt.reserve("cert.objective", 8),
    qf: rt.reserve("cert.qf", E * 4),
    score: rt.reserve("cert.score", k * 8),
  };
  rt.i32(at.slots, N * k).set(slots);
  rt.f64(at.q, E).set(args.expertPrices);
  rt.i32(at.loads, E).fill(0);
  const masked = rt.exports.moelab_certificate_rows(
    at.scores,
    N,
    E,
    k,
    at.slots,
    at.q,
    at.p,
    at.out,
    at.loads,
    at.terms,
    at.objective,
    at.qf,
    at.score,
  );
  return {
    masked,
    tokenPrices: rt.f64(at.p, N).slice(),
    experts: rt.i32(at.out, N * k).slice(),
    loads: rt.i32(at.loads, E).slice(),
    objective: rt.f64(at.objective, 1)[0],
    terms: rt.f64(at.terms, N).slice(),
  };
}

registerKernel({
  op: certificateRowsOp,
  backend: "wasm",
  run: certificateRowsWasm,
  callers: ["solveBalancedAssignmentSync()", "solveBalancedAssignment()"],
});
