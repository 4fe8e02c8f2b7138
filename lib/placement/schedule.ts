import { checkChoice } from "../validate.ts";
import { exactScheduler } from "./exact_scheduler.ts";
import { localFirstScheduler } from "./local_scheduler.ts";
import { glpkScheduler, highsScheduler } from "./lp_scheduler.ts";
import type { Placement } from "./placement.ts";
import type { Schedule, Scheduler } from "./types.ts";

/** Solvers of {@linkcode scheduleTokens}. */
export const SCHEDULE_SOLVERS = ["auto", "exact", "glpk", "highs"] as const;

/** A solver name; `"auto"` is `"exact"`. */
export type ScheduleSolver = typeof SCHEDULE_SOLVERS[number];

/** Options of {@linkcode scheduleTokens} and {@linkcode createScheduler}. */
export interface ScheduleOptions {
  /** Default `"auto"` (the exact combinatorial solver, synchronous, no WebAssembly). */
  solver?: ScheduleSolver;
  /**
   * GPUs per node: the exact solver then prefers intra-node replicas
   * ({@linkcode localFirstScheduler}); default all GPUs in one node.
   */
  gpusPerNode?: number;
}

/**
 * A {@linkcode Scheduler} for a placement. `"glpk"` and `"highs"` need
 * {@linkcode loadLpSolvers} to have resolved first.
 *
 * @param placement Where the replicas are.
 * @param options The solver; `gpusPerNode` for the exact one on nodes.
 * @returns The scheduler.
 * @throws {RangeError} On an unknown solver or a malformed placement.
 * @throws {Error} If an LP solver is asked for before it is loaded.
 *
 * @example Warm start across micro-batches
 * ```ts
 * import { createScheduler, symmetricPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = createScheduler(symmetricPlacement(8, 4, { graph: "ring" }));
 * assert.equal(s.schedule([8, 0, 0, 0, 0, 0, 0, 0]).optimum, 4);
 * assert.equal(s.schedule([1, 1, 1, 1, 1, 1, 1, 1]).maxLoad, 2);
 * ```
 */
export function createScheduler(
  placement: Placement,
  options: ScheduleOptions = {},
): Scheduler {
  const solver = checkChoice("solver", options.solver ?? "auto", [
    ...SCHEDULE_SOLVERS,
  ]);
  const gpn = options.gpusPerNode;
  if (gpn !== undefined) {
    if (solver === "glpk" || solver === "highs") {
      throw new RangeError(
        `gpusPerNode needs the exact solver: current solver is "${solver}"`,
      );
    }
    return localFirstScheduler(placement, gpn);
  }
  if (solver === "glpk") return glpkScheduler(placement);
  if (solver === "highs") return highsScheduler(placement);
  return exactScheduler(placement);
}

const CACHE = new WeakMap<Placement, Map<string, Scheduler>>();

/**
 * MicroMoE token scheduling for one micro-batch (Zhao et al., arXiv
 * 2511.16947): split every expert's tokens over its replicas to minimise
 * the most loaded GPU,
 * `min max_g sum_{r on g} x_r  s.t.  sum_{r of e} x_r = load[e], x >= 0`,
 * then round to integers so that sums are preserved and every GPU gets at
 * most the ceiling of its fractional load: `maxLoad === ceil(optimum)`.
 * Schedulers are kept per placement object and solver, so repeated calls
 * on one placement are warm-started (the optimum does not depend on it).
 *
 * @param loads Tokens per expert (`E` non-negative integers).
 * @param placement Where the replicas are.
 * @param options `solver`: `"auto"`/`"exact"` (combinatorial, default),
 * `"glpk"` or `"highs"` (after {@linkcode loadLpSolvers}).
 * @returns The {@linkcode Schedule}.
 * @throws {TypeError} If `loads` has the wrong length.
 * @throws {RangeError} If a load is negative or fractional, or the solver unknown.
 *
 * @example Expert 0 is hot; its replicas on GPUs 0 and 1 share it
 * ```ts
 * import { scheduleTokens, symmetricPlacement } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const p = symmetricPlacement(4, 4, { graph: "ring" }); // expert 0 on GPUs 0, 1
 * const s = scheduleTokens([9, 1, 1, 1], p);
 * assert.equal(s.optimum, 4.5); // 9 / 2 on GPUs {0, 1}
 * assert.equal(s.maxLoad, 5);
 * assert.equal(s.replicaLoads.reduce((a, b) => a + b), 12);
 * ```
 */
export function scheduleTokens(
  loads: ArrayLike<number>,
  placement: Placement,
  options: ScheduleOptions = {},
): Schedule {
  const solver = checkChoice("solver", options.solver ?? "auto", [
    ...SCHEDULE_SOLVERS,
  ]);
  const key = (solver === "auto" ? "exact" : solver) +
    (options.gpusPerNode === undefined ? "" : `/${options.gpusPerNode}`);
  let byName = CACHE.get(placement);
  if (!byName) CACHE.set(placement, byName = new Map());
  let s = byName.get(key);
  if (!s) {
    byName.set(key, s = createScheduler(placement, { ...options, solver }));
  }
  return s.schedule(loads);
}
