// The one place that loads the WebAssembly LP solvers (glpk.js and HiGHS).
// Nothing imports them statically: importing the package stays free of
// WebAssembly, and each solver is fetched and compiled the first time a
// caller asks for it.
import type { Highs } from "highs";

/** A loaded glpk.js instance (GLPK compiled to WebAssembly). */
export type Glpk = Awaited<ReturnType<typeof import("glpk.js/node").default>>;

type HighsLoader = () => Promise<Highs>;

/**
 * Where the solvers load from at run time. The specifiers are values, not
 * literals, so that no module graph built from an import of the package
 * (Deno fetches the npm packages of literal dynamic imports up front)
 * downloads the solvers before a caller asks for one. Deno takes the
 * `npm:` form (the versions of deno.json's imports, which a test checks);
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
    typeof import("glpk.js/node")
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
    typeof import("highs")
  >).then((m) => {
    const d =
      (m as unknown as { default: HighsLoader | { default: HighsLoader } })
        .default;
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
