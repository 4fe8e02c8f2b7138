// Argument checks shared by the public functions. Messages follow the
// house style: sentence case, no final period, the offending value shown.
import type { Routing, ScoreMatrix } from "./types.ts";

/** Formats a value for an error message. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") {
    return String(value);
  }
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) {
    return `a ${value.constructor.name} of length ${
      (value as unknown as ArrayLike<number>).length
    }`;
  }
  return typeof value;
}

/**
 * `e` with its message rewritten by `how`, its class kept, where it is a
 * TypeError, RangeError or SyntaxError (bad input, whose message a caller
 * may name in its own terms); any other error as it is.
 */
export function withMessage(
  e: unknown,
  how: (message: string) => string,
): unknown {
  if (
    !(e instanceof TypeError || e instanceof RangeError ||
      e instanceof SyntaxError)
  ) return e;
  const Cls = e.constructor as new (m: string) => Error;
  return new Cls(how(e.message));
}

/** Throws unless `value` is an integer in `[min, max]`. */
export function checkInteger(
  name: string,
  value: unknown,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `${name} must be a number: current value is ${show(value)}`,
    );
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    // An integer past 2^53 - 1 is not held exactly: the bound is named.
    const range = max !== Number.MAX_SAFE_INTEGER
      ? `an integer in [${min}, ${max}]`
      : value > max
      ? `an integer in [${min}, 2^53 - 1]`
      : `an integer of at least ${min}`;
    throw new RangeError(`${name} must be ${range}: current value is ${value}`);
  }
  return value;
}

/**
 * Throws unless `value` is a seed: an integer held exactly, `-(2^53 - 1)`
 * to `2^53 - 1` (a fraction would be dropped by the hash it seeds, so that
 * `1.5` gave the same numbers as `1`).
 */
export function checkSeed(name: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `${name} must be a number: current value is ${show(value)}`,
    );
  }
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(
      `${name} must be an integer in [-(2^53 - 1), 2^53 - 1]: current value is ${value}`,
    );
  }
  return value;
}

/** Throws unless `value` is a finite number in `[min, max]`. */
export function checkNumber(
  name: string,
  value: unknown,
  min = -Infinity,
  max = Infinity,
): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `${name} must be a number: current value is ${show(value)}`,
    );
  }
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(
      `${name} must be ${describeRange(min, max)}: current value is ${value}`,
    );
  }
  return value;
}

/** `[min, max]` in words: "a positive number", "a number of at least 0". */
function describeRange(min: number, max: number): string {
  const low = min === Number.MIN_VALUE ? "positive" : null;
  if (max === Infinity) {
    if (low) return "a positive number";
    if (min === -Infinity) return "a finite number";
    return `a number of at least ${min}`;
  }
  if (low) return `a positive number of at most ${max}`;
  if (min === -Infinity) return `a number of at most ${max}`;
  return `a number in [${min}, ${max}]`;
}

/** Throws unless `value` is one of `choices`. */
export function checkChoice<T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
): T {
  if (typeof value !== "string" || !choices.includes(value as T)) {
    throw new RangeError(
      `${name} must be one of ${
        choices.map((c) => `"${c}"`).join(", ")
      }: current value is ${show(value)}`,
    );
  }
  return value as T;
}

/**
 * Checks a score matrix: shape, type and that no score is NaN or
 * `+Infinity`. `-Infinity` is allowed (masked experts).
 */
export function checkScores(name: string, scores: unknown): ScoreMatrix {
  const s = checkScoreShape(name, scores);
  const d = s.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v !== v || v === Infinity) throw badScore(name, s, i);
  }
  return s;
}

/**
 * Checks a score matrix's type and shape only, for kernels that find NaN
 * and `+Infinity` while they read the scores anyway (they throw
 * {@linkcode badScore}).
 */
export function checkScoreShape(name: string, scores: unknown): ScoreMatrix {
  if (scores === null || typeof scores !== "object") {
    throw new TypeError(
      `${name} must be a ScoreMatrix: current value is ${show(scores)}`,
    );
  }
  const s = scores as ScoreMatrix;
  if (!(s.data instanceof Float32Array)) {
    throw new TypeError(
      `${name}.data must be a Float32Array: current value is ${show(s.data)}`,
    );
  }
  checkInteger(`${name}.tokens`, s.tokens, 0);
  checkInteger(`${name}.experts`, s.experts, 1);
  if (s.data.length !== s.tokens * s.experts) {
    throw new TypeError(
      `${name}.data must hold tokens x experts = ${s.tokens} x ${s.experts} = ${
        s.tokens * s.experts
      } scores: current length is ${s.data.length}`,
    );
  }
  return s;
}

/** The error for a NaN or `+Infinity` score at flat index `i`. */
export function badScore(name: string, s: ScoreMatrix, i: number): RangeError {
  return new RangeError(
    `${name} must not hold NaN or +Infinity: value at token ${
      Math.floor(i / s.experts)
    }, expert ${i % s.experts} is ${s.data[i]}`,
  );
}

/** Throws a TypeError naming `name` unless `value` is a non-null object. */
export function checkObject<T>(name: string, value: T): T {
  if (value === null || typeof value !== "object") {
    throw new TypeError(
      `${name} must be an object: current value is ${show(value)}`,
    );
  }
  return value;
}

/**
 * Checks that `routing` is a {@linkcode Routing} of `tokens` tokens over
 * `experts` experts: `k` slots per token in `experts` and `weights`, one
 * load per expert. The slots' values are the caller's to check.
 */
export function checkRoutingShape(
  name: string,
  routing: unknown,
  tokens: number,
  experts: number,
): Routing {
  const r = routing as Routing | null;
  const k = r?.k;
  if (
    r === null || typeof r !== "object" || !Number.isInteger(k) ||
    k! < 1 || r.experts?.length !== tokens * k! ||
    r.weights?.length !== tokens * k! || r.loads?.length !== experts
  ) {
    throw new TypeError(
      `${name} must be a Routing of the ${tokens} tokens and ${experts} experts: current value is ${
        show(routing)
      }`,
    );
  }
  return r;
}
