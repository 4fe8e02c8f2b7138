// Validation shared by the entry points: scores, k, capacity and solver,
// with the infeasible cases reported as RangeError before any solver runs.
import {
  badScore,
  checkChoice,
  checkInteger,
  checkNumber,
  checkScoreShape,
  show,
} from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";
import { hostKernel } from "../ops/host.ts";
import { scoreScanOp } from "../ops/score_scan.ts";
import "../ops/score_scan_wasm.ts";
import { stagedInSharedHeap } from "../wasm/runtime.ts";
import {
  ASSIGNMENT_SOLVERS,
  type AssignmentSolver,
  type BalancedAssignmentOptions,
} from "./types.ts";

/** A validated balanced-assignment problem. */
export interface Problem {
  scores: ScoreMatrix;
  k: number;
  capacity: number;
  solver: AssignmentSolver;
  /** Starting expert prices, when given. */
  start?: Float64Array;
  /** Seconds the solve may take, when given. */
  timeLimit?: number;
  /** The largest magnitude of an unmasked score (0 where none is nonzero). */
  scale: number;
  /** Where the passes over the scores run (`options.host`, default `"wasm"`). */
  host: "cpu" | "wasm";
  /**
   * Frees the shared-heap copy of the scores that the WebAssembly kernels
   * read (where one was made); the problem is not used after it.
   */
  release(): void;
}

/**
 * `ceil(tokens * k / experts * factor)`, taking a value within 1e-9 of an
 * integer as that integer so that `1.1 * 10` gives 11, not 12.
 */
export function defaultCapacity(
  tokens: number,
  k: number,
  experts: number,
  factor = 1,
): number {
  const exact = (tokens * k / experts) * factor;
  const near = Math.round(exact);
  return Math.abs(exact - near) <= 1e-9 * Math.max(1, near)
    ? near
    : Math.ceil(exact);
}

/** Checks the arguments of the exact balanced assignment. */
export function resolveProblem(
  scores: unknown,
  options: unknown,
): Problem {
  const given = checkScoreShape("scores", scores);
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const o = options as BalancedAssignmentOptions;
  const host = checkChoice("options.host", o.host ?? "wasm", ["wasm", "cpu"]);
  // The WebAssembly kernels of the "ssp" solver (the input check, every
  // row selection) read scores in the shared heap in place; others are
  // copied there once for the solve, not into the kernels' memory at each
  // call, and the copy's region is freed by `release`.
  const ssp = o.solver === undefined || o.solver === "auto" ||
    o.solver === "ssp";
  const staged = host === "wasm" && ssp
    ? stagedInSharedHeap(given.data)
    : { data: given.data, release() {} };
  try {
    return checkProblem(
      { ...given, data: staged.data },
      o,
      host,
      staged.release,
    );
  } catch (e) {
    staged.release();
    throw e;
  }
}

/** resolveProblem on the scores the solve reads. */
function checkProblem(
  s: ScoreMatrix,
  o: BalancedAssignmentOptions,
  host: "cpu" | "wasm",
  release: () => void,
): Problem {
  // One pass: NaN and +Infinity (the first in memory order), each token's
  // unmasked experts, the scale.
  const { finite, scale, bad } = hostKernel(scoreScanOp, host).run(
    { scores: s },
    {},
  );
  if (bad >= 0) throw badScore("scores", s, bad);
  const k = checkInteger("options.k", o.k, 1);
  if (k > s.experts) {
    throw new RangeError(
      `options.k must be at most the number of experts (${s.experts}): current value is ${k}`,
    );
  }
  if (o.capacity !== undefined && o.capacityFactor !== undefined) {
    throw new TypeError(
      "options must give capacity or capacityFactor, not both: current values are " +
        `${o.capacity} and ${o.capacityFactor}`,
    );
  }
  let capacity: number;
  if (o.capacity !== undefined) {
    capacity = checkInteger("options.capacity", o.capacity, 0);
  } else {
    const factor = o.capacityFactor === undefined
      ? 1
      : checkNumber("options.capacityFactor", o.capacityFactor, 0);
    capacity = defaultCapacity(s.tokens, k, s.experts, factor);
  }
  if (s.tokens * k > s.experts * capacity) {
    throw new RangeError(
      `options.capacity is infeasible: tokens x k = ${s.tokens} x ${k} = ${
        s.tokens * k
      } exceeds experts x capacity = ${s.experts} x ${capacity} = ${
        s.experts * capacity
      }`,
    );
  }
  const choice = checkChoice(
    "options.solver",
    o.solver ?? "auto",
    ASSIGNMENT_SOLVERS,
  );
  checkMasks(finite, k);
  let start: Float64Array | undefined;
  if (o.expertPrices !== undefined) {
    const q = o.expertPrices;
    if (q === null || typeof q !== "object" || q.length !== s.experts) {
      throw new TypeError(
        `options.expertPrices must have one entry per expert (${s.experts}): current value is ${
          show(q)
        }`,
      );
    }
    start = Float64Array.from(q);
    const bad = start.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new RangeError(
        `options.expertPrices must be finite: entry ${bad} is ${start[bad]}`,
      );
    }
  }
  const timeLimit = o.timeLimit === undefined
    ? undefined
    : checkNumber("options.timeLimit", o.timeLimit, 0.001, 2e6);
  return {
    scores: s,
    k,
    capacity,
    solver: choice === "auto" ? "ssp" : choice,
    start,
    timeLimit,
    scale,
    host,
    release,
  };
}

/** Masked experts (`-Infinity`) may leave a token fewer than k choices. */
function checkMasks(finite: Int32Array, k: number): void {
  for (let i = 0; i < finite.length; i++) {
    if (finite[i] < k) {
      throw new RangeError(
        `scores leave token ${i} fewer than k = ${k} experts that are not masked (-Infinity): current count is ${
          finite[i]
        }`,
      );
    }
  }
}
