// The exact balanced assignment: the specialised solver ("ssp") against
// HiGHS and glpk.js on the same instances in one run. The LP solvers run
// once each under a time cap; a capped run is reported as "> cap" and its
// ratio as a lower bound.
import { resolveProblem } from "../lib/solve/_problem.ts";
import { solveWithGlpk } from "../lib/solve/_glpk.ts";
import { solveWithHighs } from "../lib/solve/_highs.ts";
import { solveBalancedAssignmentSync } from "../lib/solve/solve_balanced_assignment_sync.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { ScoreMatrix } from "../lib/types.ts";
import { medianMs, printTable } from "./_timing.ts";

/** Sigmoid scores of normal logits, with experts of unequal popularity. */
function instance(tokens: number, experts: number, seed: number): ScoreMatrix {
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

async function timeLp(
  solve: () => Promise<unknown>,
): Promise<{ ms: number; capped: boolean }> {
  const t0 = performance.now();
  try {
    await solve();
    return { ms: performance.now() - t0, capped: false };
  } catch {
    return { ms: performance.now() - t0, capped: true };
  }
}

/** Runs the suite. */
export async function run(): Promise<void> {
  const rows: (string | number)[][] = [];
  const cases = [
    { tokens: 4096, experts: 64, k: 8, highsCap: 120, glpkCap: 60 },
    { tokens: 16384, experts: 256, k: 8, highsCap: 120, glpkCap: 0 },
  ];
  for (const { tokens, experts, k, highsCap, glpkCap } of cases) {
    const scores = instance(tokens, experts, 5);
    const problem = resolveProblem(scores, { k });
    // Warm-up solves first: V8 keeps optimising the solver's loops over
    // the first dozen calls (a simulator calls it every batch).
    const ssp = medianMs(
      () => void solveBalancedAssignmentSync(scores, { k }),
      9,
      tokens <= 4096 ? 12 : 3,
    );
    const gap = solveBalancedAssignmentSync(scores, { k }).dualityGap;
    const highs = await timeLp(
      () => solveWithHighs(problem, highsCap),
    );
    const glpk = glpkCap > 0
      ? await timeLp(() => solveWithGlpk(problem, glpkCap))
      : null;
    const show = (t: { ms: number; capped: boolean } | null) =>
      t === null
        ? "not run"
        : t.capped
        ? `> ${(t.ms / 1e3).toFixed(0)} s`
        : `${(t.ms / 1e3).toFixed(2)} s`;
    const ratio = (t: { ms: number; capped: boolean } | null) =>
      t === null ? "-" : `${t.capped ? "> " : ""}${(t.ms / ssp).toFixed(0)}x`;
    rows.push([
      `${tokens} x ${experts}, k=${k}`,
      ssp.toFixed(1),
      gap.toExponential(1),
      show(highs),
      ratio(highs),
      show(glpk),
      ratio(glpk),
    ]);
  }
  printTable(
    [
      "instance",
      "ssp ms",
      "ssp gap",
      "HiGHS",
      "HiGHS / ssp",
      "glpk.js",
      "glpk / ssp",
    ],
    rows,
  );
}
