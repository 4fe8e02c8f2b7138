// The time limit of the exact solvers (options.timeLimit): one error for
// every solver, so that a limit reached is never mistaken for an answer.

/** The `name` of the error a solve throws when it reaches its time limit. */
export const TIME_LIMIT_ERROR = "TimeLimitError";

/** The error `solver` throws when it stops at the limit of `seconds`. */
export function timeLimitError(solver: string, seconds: number): Error {
  const e = new Error(
    `options.timeLimit of ${seconds} s reached: ${solver} stopped before the optimum (no answer is given)`,
  );
  e.name = TIME_LIMIT_ERROR;
  return e;
}

/** `performance.now()` at which a limit of `seconds` from now passes. */
export function deadlineOf(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : performance.now() + seconds * 1000;
}
