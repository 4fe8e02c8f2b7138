// glpk.js (GLPK compiled to WebAssembly) on the LP of _lp.ts. The module
// loads asynchronously once (lp_solvers.ts); its solve is synchronous after
// that.
import type { Problem } from "./_problem.ts";
import { lpScale, type LpSolution } from "./_lp.ts";
import { loadGlpk } from "./lp_solvers.ts";
import { timeLimitError } from "./_time_limit.ts";

// glpk.js exposes no simplex tolerances, and at GLPK's default (reduced
// costs within 1e-7) the simplex may stop about 1e-8 short of the optimum
// when scores tie to within float32 rounding. Scaling the objective, from
// scores brought near 1 in magnitude (lpScale), puts that slack far below
// the 1e-9 relative bar.
const SCALE = 1e6;

/**
 * Solves the LP with glpk.js's simplex, within `seconds` when given
 * (glpk.js's `tmlim`, in milliseconds). Returns null when GLPK reports no
 * feasible solution; throws the time-limit error when it stops at the
 * limit, and an error naming the status for any other stop.
 */
export async function solveWithGlpk(
  problem: Problem,
  seconds?: number,
): Promise<LpSolution | null> {
  const glpk = await loadGlpk();
  const { data, tokens, experts } = problem.scores;
  const f = lpScale(problem) * SCALE;
  const x = (i: number, j: number) => `x${i}_${j}`;
  const vars: { name: string; coef: number }[] = [];
  const bounds: { name: string; type: number; lb: number; ub: number }[] = [];
  const expertRows = Array.from({ length: experts }, (_, j) => ({
    name: `e${j}`,
    vars: [] as { name: string; coef: number }[],
    bnds: { type: glpk.GLP_UP, lb: 0, ub: problem.capacity },
  }));
  const tokenRows = [];
  for (let i = 0; i < tokens; i++) {
    const row = [];
    for (let j = 0; j < experts; j++) {
      const s = data[i * experts + j], name = x(i, j);
      const masked = s === -Infinity;
      vars.push({ name, coef: masked ? 0 : s * f });
      bounds.push({
        name,
        type: masked ? glpk.GLP_FX : glpk.GLP_DB,
        lb: 0,
        ub: masked ? 0 : 1,
      });
      row.push({ name, coef: 1 });
      expertRows[j].vars.push({ name, coef: 1 });
    }
    tokenRows.push({
      name: `t${i}`,
      vars: row,
      bnds: { type: glpk.GLP_FX, lb: problem.k, ub: problem.k },
    });
  }
  const t0 = performance.now();
  const result = glpk.solve({
    name: "balanced-assignment",
    objective: { direction: glpk.GLP_MAX, name: "score", vars },
    subjectTo: [...tokenRows, ...expertRows],
    bounds,
  }, {
    msglev: glpk.GLP_MSG_OFF,
    presol: true,
    ...(seconds === undefined ? {} : { tmlim: Math.ceil(seconds * 1000) }),
  }).result;
  const ms = performance.now() - t0;
  if (result.status === glpk.GLP_NOFEAS) return null;
  if (
    result.status !== glpk.GLP_OPT && seconds !== undefined &&
    ms >= seconds * 1000
  ) {
    throw timeLimitError("glpk", seconds);
  }
  if (result.status !== glpk.GLP_OPT) {
    throw new Error(`glpk.js stopped with status ${result.status}`);
  }
  const values = new Float64Array(tokens * experts);
  for (let i = 0; i < tokens; i++) {
    for (let j = 0; j < experts; j++) {
      values[i * experts + j] = result.vars[x(i, j)];
    }
  }
  const dual = result.dual ?? {};
  return {
    values,
    expertDuals: Array.from(
      { length: experts },
      (_, j) => (dual[`e${j}`] ?? 0) / f,
    ),
  };
}
