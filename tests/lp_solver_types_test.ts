// The LP solvers' types in lib/solve/lp_solvers.ts are written there (a type
// import of the packages would put them in the core's module graph). Here
// the packages' own declarations must fit them: `deno check` of this file
// fails where a member used by the project is missing from a package or
// typed otherwise; at run time each member is present in the loaded solvers.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Highs as HighsPackage, ObjectiveSense } from "highs";
import type GlpkPackage from "glpk.js/node";
import {
  type Glpk,
  type Highs,
  loadGlpk,
  loadHighs,
} from "../lib/solve/lp_solvers.ts";

type GlpkInstance = Awaited<ReturnType<typeof GlpkPackage>>;
/** Compiles only where the package's type fits the local one. */
export const fitsHighs = (h: HighsPackage): Highs<ObjectiveSense> => h;
/** Compiles only where the package's type fits the local one. */
export const fitsGlpk = (g: GlpkInstance): Glpk => g;

test("the loaded solvers have every member the project's types name", async () => {
  const glpk = await loadGlpk();
  for (
    const name of [
      "GLP_MIN",
      "GLP_MAX",
      "GLP_UP",
      "GLP_DB",
      "GLP_FX",
      "GLP_MSG_OFF",
      "GLP_NOFEAS",
      "GLP_OPT",
    ] as const
  ) {
    assert.equal(typeof glpk[name], "number", name);
  }
  assert.equal(typeof glpk.solve, "function");
  const highs = await loadHighs();
  assert.equal(highs.infinity, Infinity);
  const c = highs.constants;
  for (
    const v of [
      c.objectiveSense.maximize,
      c.modelStatus.optimal,
      c.modelStatus.infeasible,
      c.modelStatus.timeLimit,
    ]
  ) {
    assert.equal(typeof v, "number");
  }
  // One model through every method the project calls: max x0 + x1 with
  // x0 + x1 <= 1 (one row), then the row's bound moved to 2.
  const model = highs.createModel({
    numCols: 2,
    numRows: 1,
    sense: c.objectiveSense.maximize,
    colCost: new Float64Array([1, 1]),
    colLower: new Float64Array(2),
    colUpper: new Float64Array([1, 1]),
    rowLower: new Float64Array([-highs.infinity]),
    rowUpper: new Float64Array([1]),
    matrix: {
      format: "csc",
      numRows: 1,
      numCols: 2,
      starts: new Int32Array([0, 1, 2]),
      indices: new Int32Array([0, 0]),
      values: new Float64Array([1, 1]),
    },
  });
  try {
    model.options.set({ output_flag: false, presolve: "off" });
    assert.equal(model.run().modelStatus, c.modelStatus.optimal);
    assert.equal(model.getModelStatus(), c.modelStatus.optimal);
    assert.equal(model.getObjectiveValue(), 1);
    assert.equal(model.getSolution().rowDual.length, 1);
    model.changeRowsBounds(
      { kind: "range", from: 0, to: 0 },
      new Float64Array([-highs.infinity]),
      new Float64Array([2]),
    );
    model.run();
    assert.deepEqual([...model.getSolution().colValue], [1, 1]);
  } finally {
    model.dispose();
  }
});
