// The exact balanced assignment by successive shortest paths on a checked
// problem (solveBalancedAssignmentSync, solveBalancedAssignment with
// solver "ssp"): starting prices, the solve, the certificate.
import type { BalancedAssignment } from "./types.ts";
import { certify } from "./_certificate.ts";
import type { Problem } from "./_problem.ts";
import { successiveShortestPaths, TimeLimitReached } from "./_ssp.ts";
import { deadlineOf, timeLimitError } from "./_time_limit.ts";
import { warmStartPrices } from "./_warm_start.ts";

/** Solves a checked problem with the "ssp" solver and certifies it. */
export function solveSsp(problem: Problem): BalancedAssignment {
  const { data, tokens, experts } = problem.scores;
  const { k, capacity } = problem;
  // No expert can take more than every token, so a capacity above `tokens`
  // is the same problem as `tokens + 1` (every expert keeps free room and
  // a zero price), solved without counting billions of unused units.
  const room = Math.min(capacity, tokens + 1);
  const deadline = deadlineOf(problem.timeLimit);
  const prices = problem.start ??
    warmStartPrices(
      data,
      tokens,
      experts,
      k,
      room,
      problem.scale,
      problem.host,
    );
  let result;
  try {
    result = successiveShortestPaths(
      data,
      tokens,
      experts,
      k,
      room,
      prices,
      { deadline, scale: problem.scale, host: problem.host },
    );
  } catch (e) {
    if (e instanceof TimeLimitReached) {
      throw timeLimitError("ssp", problem.timeLimit!);
    }
    throw e;
  }
  if (result === null) {
    throw new RangeError(
      `scores mask too many pairs: no assignment gives every token k = ${k} unmasked experts within capacity ${capacity}`,
    );
  }
  return certify(problem, result.slots, result.prices, "ssp");
}
