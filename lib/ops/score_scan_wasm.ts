// The WebAssembly SIMD kernel of the score scan op (backend "wasm"): the
// CPU kernel's counts, scale and first bad score on lib/wasm/src/select.c
// (integer lanes on the float bits). Scores in the shared heap are read in
// place, others copied into the instance's memory.
import { registerKernel } from "./registry.ts";
import { floatsIn, wasmRuntimeOn } from "../wasm/runtime.ts";
import {
  type ScoreScan,
  type ScoreScanArgs,
  scoreScanOp,
} from "./score_scan.ts";

/**
 * The WebAssembly SIMD kernel of {@linkcode scoreScanOp}: the same counts,
 * scale and first bad index as {@linkcode scoreScanCpu}. Needs the
 * runtime; callers pick it through `hostKernel(scoreScanOp, "wasm")`.
 */
export function scoreScanWasm(args: ScoreScanArgs): ScoreScan {
  const { data, tokens: N, experts: E } = args.scores;
  const rt = wasmRuntimeOn(data);
  if (rt === undefined) throw new Error("WebAssembly SIMD is not available");
  const at = {
    scores: floatsIn(rt, data, "scan.scores"),
    finite: rt.reserve("scan.finite", N * 4),
    top: rt.reserve("scan.top", 4),
  };
  const bad = rt.exports.moelab_scan_scores(at.scores, N, E, at.finite, at.top);
  const top = rt.f32(at.top, 1)[0];
  return {
    finite: rt.i32(at.finite, N).slice(),
    scale: top,
    bad,
  };
}

registerKernel({
  op: scoreScanOp,
  backend: "wasm",
  run: scoreScanWasm,
  callers: ["solveBalancedAssignmentSync()", "solveBalancedAssignment()"],
});
