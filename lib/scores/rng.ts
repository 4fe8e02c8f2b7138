import { fdlibmLog } from "../numeric/fdlibm.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/**
 * A fast seeded pseudo-random generator: xoshiro128** (Blackman and Vigna,
 * 2018) on 32-bit words, seeded through SplitMix32. The same seed gives the
 * same raw, uniform, integer, shuffle and normal draws on every runtime:
 * integer arithmetic, exact divisions, `Math.sqrt` (correctly rounded)
 * and fdlibm's log (lib/numeric/fdlibm.ts). With `Math.log`, whose last bit
 * ECMAScript leaves to the engine, 981 of 3,000,000 normal draws (seed 1)
 * differed between Deno and Bun in the last bit. The zipf table takes
 * `Math.pow` and may differ between engines in the last bit.
 *
 * Draws: {@linkcode Rng.uniform} in `[0, 1)`, {@linkcode Rng.normal}
 * (Marsaglia's polar method, exact), {@linkcode Rng.int} in `[0, n)`
 * (unbiased by rejection), {@linkcode Rng.zipf} (ranks `1..n` with
 * `P(i) ~ i^-s`, by inverse CDF on a cached table).
 *
 * @example Same seed, same numbers
 * ```ts
 * import { Rng } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const a = new Rng(42), b = new Rng(42);
 * assert.equal(a.uniform(), b.uniform());
 * const x = a.uniform();
 * assert.ok(x >= 0 && x < 1);
 * const r = a.zipf(10, 1.2);
 * assert.ok(Number.isInteger(r) && r >= 1 && r <= 10);
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare = NaN;
  #zipfKey = "";
  #zipfCdf: Float64Array = new Float64Array(0);

  /**
   * A generator started from `seed`.
   *
   * @param seed Any finite number; distinct seeds start distinct
   * sequences. An integer in `[0, 2^32)` seeds SplitMix32 itself; any other
   * number (negative, fractional, or 2^32 and above) seeds it with the low
   * word of its float64 bits and adds the high word to the third state
   * word, so that no two seeds share a state.
   * @throws {RangeError} If `seed` is not a finite number.
   */
  constructor(seed: number) {
    checkNumber("seed", seed);
    const word = Number.isInteger(seed) && seed >= 0 && seed < 4294967296;
    let high = 0;
    if (!word) {
      SEED_BITS.setFloat64(0, seed, true);
      high = (SEED_BITS.getInt32(4, true) + 1) | 0;
    }
    let x = word ? seed | 0 : SEED_BITS.getInt32(0, true);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.#a = next();
    this.#b = next();
    // The high word plus one is never 0 for a finite number (its high word
    // is at most 0xffefffff): such a state differs from every word seed's.
    this.#c = next() ^ high;
    this.#d = next();
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /** Next raw 32-bit value, as an unsigned integer in `[0, 2^32)`. */
  nextU32(): number {
    const b = this.#b;
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9);
    const t = b << 9;
    this.#c ^= this.#a;
    this.#d ^= b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return r >>> 0;
  }

  /** A uniform draw in `[0, 1)` with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /**
   * A uniform integer in `[0, n)`, without modulo bias.
   * @throws {RangeError} If `n` is not an integer in `[1, 2^32]`.
   */
  int(n: number): number {
    checkInteger("n", n, 1, 4294967296);
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** A standard normal draw (mean 0, variance 1), Marsaglia's polar method. */
  normal(): number {
    if (this.#spare === this.#spare) {
      const s = this.#spare;
      this.#spare = NaN;
      return s;
    }
    let u = 0, v = 0, q = 0;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      q = u * u + v * v;
    } while (q >= 1 || q === 0);
    const f = Math.sqrt(-2 * fdlibmLog(q) / q);
    this.#spare = v * f;
    return u * f;
  }

  /**
   * A Zipf-distributed rank in `1..n`: `P(i) = i^-s / sum_k k^-s`.
   * The CDF table is built once per `(n, s)` and kept until another pair
   * is asked for.
   * @throws {RangeError} If `n < 1` or `s` is negative or not finite.
   */
  zipf(n: number, s: number): number {
    const key = `${n}:${s}`;
    if (key !== this.#zipfKey) {
      checkInteger("n", n, 1);
      checkNumber("s", s, 0);
      this.#zipfCdf = zipfCdf(n, s);
      this.#zipfKey = key;
    }
    return searchCdf(this.#zipfCdf, this.uniform()) + 1;
  }

  /** Shuffles `array` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = array[i];
      array[i] = array[j];
      array[j] = t;
    }
    return array;
  }
}

/** The float64 bits of a seed, read as two 32-bit words (little-endian). */
const SEED_BITS = new DataView(new ArrayBuffer(8));

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Normalised cumulative distribution of `P(i) ~ i^-s`, `i = 1..n`. */
export function zipfCdf(n: number, s: number): Float64Array {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += Math.pow(i + 1, -s);
    cdf[i] = total;
  }
  for (let i = 0; i < n; i++) cdf[i] /= total;
  cdf[n - 1] = 1;
  return cdf;
}

/** Index of the first entry of `cdf` that is greater than `u`. */
export function searchCdf(cdf: Float64Array, u: number): number {
  let lo = 0, hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
