// Finite-difference gradient checks for the training tests.
import { Rng } from "../scores/rng.ts";

/** Fills `a` with seeded normal draws times `std`. */
export function randomize(a: Float64Array, rng: Rng, std = 1): Float64Array {
  for (let i = 0; i < a.length; i++) a[i] = std * rng.normal();
  return a;
}

/**
 * Largest relative error between `grad` and central differences of `f`
 * with respect to `x` (every entry, or `limit` seeded random entries):
 * `|fd - g| / max(1, |fd| + |g|)`. `f` must read `x` afresh on every call.
 */
export function gradError(
  f: () => number,
  x: Float64Array,
  grad: ArrayLike<number>,
  limit = Infinity,
  eps = 1e-6,
): number {
  const rng = new Rng(99);
  const count = Math.min(limit, x.length);
  let worst = 0;
  for (let q = 0; q < count; q++) {
    const i = count === x.length ? q : rng.int(x.length);
    const keep = x[i];
    x[i] = keep + eps;
    const up = f();
    x[i] = keep - eps;
    const down = f();
    x[i] = keep;
    const fd = (up - down) / (2 * eps);
    const err = Math.abs(fd - grad[i]) /
      Math.max(1e-3, Math.abs(fd) + Math.abs(grad[i]));
    if (err > worst) worst = err;
  }
  return worst;
}

/** `sum_i w[i] * v[i]`. */
export function dot(w: Float64Array, v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] * v[i];
  return s;
}
