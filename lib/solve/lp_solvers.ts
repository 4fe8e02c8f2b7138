// The one place that loads the WebAssembly LP solvers (glpk.js and HiGHS).
// Nothing imports them statically: importing the package stays free of
// WebAssembly, and each solver is fetched and compiled the first time a
// caller asks for it.
// The solvers' types are the members this project uses, written here:
// a type import of the packages would put them (and their megabytes of
// declarations) in the module graph of every importer of the core.
// tests/lp_solver_types_test.ts checks that the packages' own types fit.

/** A glpk.js problem (its `LP`, the members used here). */
export interface GlpkLp {
  name: string;
  objective: {
    direction: number;
    name: string;
    vars: { name: string; coef: number }[];
  };
  subjectTo: {
    name: string;
    vars: { name: string; coef: number }[];
    bnds: { type: number; ub: number; lb: number };
  }[];
  bounds?: { name: string; type: number; ub: number; lb: number }[];
}

/** A loaded glpk.js instance (GLPK compiled to WebAssembly), the members used here. */
export interface Glpk {
  readonly GLP_MIN: number;
  readonly GLP_MAX: number;
  readonly GLP_UP: number;
  readonly GLP_DB: number;
  readonly GLP_FX: number;
  readonly GLP_MSG_OFF: number;
  readonly GLP_NOFEAS: number;
  readonly GLP_OPT: number;
  solve(
    lp: GlpkLp,
    options?: { msglev?: number; presol?: boolean; tmlim?: number },
  ): {
    result: {
      status: number;
      z: number;
      vars: { [name: string]: number };
      dual?: { [name: string]: number };
    };
  };
}

/** A HiGHS model (its `Model`, the members used here). */
export interface HighsModel {
  readonly options: {
    set(
      options: Readonly<
        Partial<{
          output_flag: boolean;
          presolve: "off" | "choose" | "on";
          primal_feasibility_tolerance: number;
          dual_feasibility_tolerance: number;
          time_limit: number;
        }>
      >,
    ): unknown;
  };
  run(): { readonly modelStatus: number };
  getModelStatus(): number;
  getSolution(): {
    readonly colValue: Float64Array;
    readonly rowDual: Float64Array;
  };
  getObjectiveValue(): number;
  changeRowsBounds(
    rows: {
      readonly kind: "range";
      readonly from: number;
      readonly to: number;
    },
    lower: Float64Array,
    upper: Float64Array,
  ): unknown;
  dispose(): void;
}

/**
 * A loaded HiGHS instance (WebAssembly), the members used here. `Sense` is
 * the type of an objective sense, which is only ever taken from
 * `constants` and handed back to `createModel` (the package brands it).
 */
export interface Highs<Sense = number> {
  readonly infinity: number;
  readonly constants: {
    readonly objectiveSense: { readonly maximize: Sense };
    readonly modelStatus: {
      readonly optimal: number;
      readonly infeasible: number;
      readonly timeLimit: number;
    };
  };
  createModel(source: {
    numCols: number;
    numRows: number;
    sense?: Sense;
    colCost: Float64Array;
    colLower: Float64Array;
    colUpper: Float64Array;
    rowLower: Float64Array;
    rowUpper: Float64Array;
    matrix: {
      format: "csc";
      numRows: number;
      numCols: number;
      starts: Int32Array;
      indices: Int32Array;
      values: Float64Array;
    };
  }): HighsModel;
}

type HighsLoader = () => Promise<Highs>;

/**
 * Where the solvers load from at run time. The specifiers are values, not
 * literals, so that no module graph built from an import of the package
 * (Deno fetches the npm packages of literal dynamic imports up front)
 * downloads the solvers before a caller asks for one. Deno takes the
 * `npm:` form (the versions of package.json, which a test checks);
 * Bun and Node resolve the bare names from node_modules.
 */
export const LP_SOLVER_SPECIFIERS: {
  readonly glpk: string;
  readonly highs: string;
} = "Deno" in globalThis && !("Bun" in globalThis)
  ? { glpk: "npm:glpk.js@5.0.0/node", highs: "npm:highs@1.15.3" }
  : { glpk: "glpk.js/node", highs: "highs" };

let glpkLoading: Promise<Glpk> | undefined;
let highsLoading: Promise<Highs> | undefined;
let glpk: Glpk | undefined;
let highs: Highs | undefined;

/** Loads glpk.js once; later calls return the same instance. */
export function loadGlpk(): Promise<Glpk> {
  glpkLoading ??= (import(LP_SOLVER_SPECIFIERS.glpk) as Promise<
    { default: () => Promise<Glpk> }
  >).then((m) => m.default()).then(
    (instance) => glpk = instance,
  );
  return glpkLoading;
}

/** Loads HiGHS once; later calls return the same instance. */
export function loadHighs(): Promise<Highs> {
  // A CommonJS module: its default export is the loader itself, or holds it
  // as `default`, depending on the runtime's interop.
  highsLoading ??= (import(LP_SOLVER_SPECIFIERS.highs) as Promise<
    { default: HighsLoader | { default: HighsLoader } }
  >).then((m) => {
    const d = m.default;
    return (typeof d === "function" ? d : d.default)();
  }).then((instance) => highs = instance);
  return highsLoading;
}

/**
 * Loads the WebAssembly LP solvers (glpk.js and HiGHS) once; after it
 * resolves, the `"glpk"` and `"highs"` token schedulers run synchronously.
 * Importing the package loads neither: the exact solvers need no
 * WebAssembly, and `solveBalancedAssignment` loads the one it is asked for.
 *
 * @returns A promise that resolves when both solvers are ready.
 *
 * @example
 * ```ts
 * import { loadLpSolvers, scheduleTokens, symmetricPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * await loadLpSolvers();
 * const p = symmetricPlacement(4, 4, { graph: "ring" });
 * assert.equal(scheduleTokens([9, 1, 1, 1], p, { solver: "highs" }).optimum, 4.5);
 * ```
 */
export async function loadLpSolvers(): Promise<void> {
  await Promise.all([loadGlpk(), loadHighs()]);
}

function notLoaded(name: string): Error {
  return new Error(
    `the ${name} solver is not loaded: await loadLpSolvers() first`,
  );
}

/** The loaded glpk.js instance, for synchronous solves after loading. */
export function loadedGlpk(): Glpk {
  if (!glpk) throw notLoaded("glpk");
  return glpk;
}

/** The loaded HiGHS instance, for synchronous solves after loading. */
export function loadedHighs(): Highs {
  if (!highs) throw notLoaded("highs");
  return highs;
}
