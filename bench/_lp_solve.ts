// One LP solve of the balanced assignment (glpk.js or HiGHS) through the
// public API, in its own process, for bench/solve_bench.ts: the bench
// kills the process at its time cap (a WebAssembly solve cannot be
// interrupted from inside a process). It prints a `ready` line once the
// instance is built and the solvers are loaded, then one JSON line with
// the solve's milliseconds and its objective or error.
//
//   deno run -A bench/_lp_solve.ts TOKENS EXPERTS K SEED glpk|highs
import { loadLpSolvers, solveBalancedAssignment } from "../mod.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { ScoreMatrix } from "../lib/types.ts";

/** Sigmoid scores of normal logits, with experts of unequal popularity. */
export function instance(
  tokens: number,
  experts: number,
  seed: number,
): ScoreMatrix {
  const rng = new Rng(seed);
  const data = new Float32Array(tokens * experts);
  for (let i = 0; i < tokens; i++) {
    for (let j = 0; j < experts; j++) {
      const logit = rng.normal() - Math.log1p(j) / Math.log(experts);
      data[i * experts + j] = 1 / (1 + Math.exp(-logit));
    }
  }
  return { data, tokens, experts };
}

if (import.meta.main) {
  const [tokens, experts, k, seed] = Deno.args.slice(0, 4).map(Number);
  const solver = Deno.args[4] === "glpk" ? "glpk" : "highs";
  const scores = instance(tokens, experts, seed);
  await loadLpSolvers();
  console.log("ready");
  const t0 = performance.now();
  try {
    const a = await solveBalancedAssignment(scores, { k, solver });
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ms, objective: a.objective }));
  } catch (e) {
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ms, error: String(e) }));
  }
}
