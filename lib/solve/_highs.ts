// HiGHS (npm `highs`, WebAssembly) on the LP of _lp.ts, given as a sparse
// column-wise matrix. The loader (lp_solvers.ts) is asynchronous; solves
// are synchronous.
import type { Problem } from "./_problem.ts";
import { lpScale, type LpSolution } from "./_lp.ts";
import { loadHighs } from "./lp_solvers.ts";
import { timeLimitError } from "./_time_limit.ts";

/**
 * Solves the LP with HiGHS (its default LP method). Returns null when HiGHS
 * proves it infeasible; throws when it stops for any other reason (a time
 * limit of `seconds`, for instance).
 */
export async function solveWithHighs(
  problem: Problem,
  seconds?: number,
): Promise<LpSolution | null> {
  const highs = await loadHighs();
  const { data, tokens, experts } = problem.scores;
  // Scores near 1 in magnitude, whatever their own scale (lpScale).
  const f = lpScale(problem);
  const cols = tokens * experts;
  const colCost = new Float64Array(cols);
  const colUpper = new Float64Array(cols);
  const starts = new Int32Array(cols + 1);
  const indices = new Int32Array(2 * cols);
  const values = new Float64Array(2 * cols).fill(1);
  for (let c = 0; c < cols; c++) {
    const masked = data[c] === -Infinity;
    colCost[c] = masked ? 0 : data[c] * f;
    colUpper[c] = masked ? 0 : 1;
    starts[c + 1] = 2 * c + 2;
    indices[2 * c] = Math.floor(c / experts);
    indices[2 * c + 1] = tokens + (c % experts);
  }
  const rows = tokens + experts;
  const rowLower = new Float64Array(rows).fill(-highs.infinity);
  const rowUpper = new Float64Array(rows).fill(problem.capacity);
  rowLower.fill(problem.k, 0, tokens);
  rowUpper.fill(problem.k, 0, tokens);
  const model = highs.createModel({
    numCols: cols,
    numRows: rows,
    sense: highs.constants.objectiveSense.maximize,
    colCost,
    colLower: new Float64Array(cols),
    colUpper,
    rowLower,
    rowUpper,
    matrix: {
      format: "csc",
      numRows: rows,
      numCols: cols,
      starts,
      indices,
      values,
    },
  });
  try {
    model.options.set({
      output_flag: false,
      // The default tolerances (1e-7) let HiGHS stop on a vertex whose
      // objective is ~1e-8 short of the optimum when scores tie to within
      // float32 rounding; the tightest ones make it exact to ~1e-12.
      primal_feasibility_tolerance: 1e-10,
      dual_feasibility_tolerance: 1e-10,
      ...(seconds === undefined ? {} : { time_limit: seconds }),
    });
    model.run();
    const status = model.getModelStatus();
    if (status === highs.constants.modelStatus.infeasible) return null;
    if (
      status === highs.constants.modelStatus.timeLimit && seconds !== undefined
    ) {
      throw timeLimitError("highs", seconds);
    }
    if (status !== highs.constants.modelStatus.optimal) {
      throw new Error(`HiGHS stopped with model status ${status}`);
    }
    const solution = model.getSolution();
    return {
      values: solution.colValue,
      expertDuals: Float64Array.from(
        solution.rowDual.subarray(tokens),
        (d: number) => d / f,
      ),
    };
  } finally {
    model.dispose();
  }
}
