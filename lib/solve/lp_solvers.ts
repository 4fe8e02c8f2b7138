// The one place that loads the WebAssembly LP solvers (glpk.js and HiGHS).
// Nothing imports them statically: importing the package stays free of
// WebAssembly, and each solver is fetched and compiled the first time a
// caller asks for it.
import type { Highs } from "highs";

/** A loaded glpk.js instance (GLPK compiled to WebAssembly). */
export type Glpk = Awaited<ReturnType<typeof import("glpk.js/node").default>>;

type HighsLoader = () => Promise<Highs>;

let glpkLoading: Promise<Glpk> | undefined;
let highsLoading: Promise<Highs> | undefined;
let glpk: Glpk | undefined;
let highs: Highs | undefined;

/** Loads glpk.js once; later calls return the same instance. */
export function loadGlpk(): Promise<Glpk> {
  glpkLoading ??= import("glpk.js/node").then((m) => m.default()).then(
    (instance) => glpk = instance,
  );
  return glpkLoading;
}

/** Loads HiGHS once; later calls return the same instance. */
export function loadHighs(): Promise<Highs> {
  // A CommonJS module: its default export is the loader itself, or holds it
  // as `default`, depending on the runtime's interop.
  highsLoading ??= import("highs").then((m) => {
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
