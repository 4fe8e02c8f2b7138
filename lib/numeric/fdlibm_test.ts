import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cosPi, fdlibmExp, fdlibmLog } from "./fdlibm.ts";
import { Rng } from "../scores/rng.ts";
import { readFileSync } from "node:fs";

// e_exp.c and e_log.c transcribed to Python with their word manipulations
// (data/fixtures/make_fdlibm_fixtures.py): [x, f(x)] as float64 bits; for
// cosPi (k_sin.c and k_cos.c transcribed), [x, cosPi(x), cos(pi x) from
// mpmath's cospi at 300 bits, rounded].
const FIXTURES = JSON.parse(
  readFileSync(
    new URL("../../data/fixtures/fdlibm_fixtures.json", import.meta.url),
    "utf8",
  ),
) as {
  exp: [string, string][];
  log: [string, string][];
  cospi: [string, string, string][];
};

function ofBits(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt("0x" + hex));
  return view.getFloat64(0);
}

/** f(x) against the fixture's bits (NaN as NaN: its payload is the C's). */
function sameAsFixture(f: (x: number) => number, pairs: [string, string][]) {
  assert.ok(pairs.length > 500);
  for (const [xs, ys] of pairs) {
    const x = ofBits(xs), want = ofBits(ys), got = f(x);
    const same = Number.isNaN(want) ? Number.isNaN(got) : Object.is(got, want);
    assert.ok(same, `f(${x}) (0x${xs}): ${got}, fdlibm ${want}`);
  }
}

// A 300-bit twin of exp and log in BigInt fixed point: the exact value of
// the argument (a double is m 2^e), Taylor and atanh series far past
// float64's precision. The error of a float64 result is measured in ulps
// of the result against it.
const P = 300n;
const ONE = 1n << P;

/** The double as m * 2^e, m an integer (0 for zero). */
function parts(x: number): { m: bigint; e: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0), lo = view.getUint32(4);
  const exp = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (exp !== 0) m |= 1n << 52n;
  const sign = hi >>> 31 ? -1n : 1n;
  return { m: sign * m, e: (exp === 0 ? 1 : exp) - 1075 };
}

/** x * 2^P, rounded toward zero (|x| < 2^700). */
function fixed(x: number): bigint {
  const { m, e } = parts(x);
  const s = BigInt(e) + P;
  return s >= 0n ? m << s : m / (1n << -s);
}

/** ln 2 * 2^P: the sum of 1 / (k 2^k). */
const LN2 = (() => {
  let sum = 0n;
  for (let k = 1n; k < P + 20n; k++) sum += ONE / (k << k);
  return sum;
})();

/** exp(r) * 2^P for |r| <= 1 (fixed point), by Taylor's series. */
function expSeries(r: bigint): bigint {
  let term = ONE, sum = ONE;
  for (let k = 1n; term !== 0n; k++) {
    term = (term * r) / (ONE * k);
    sum += term;
  }
  return sum;
}

/** log(m) * 2^P for m in [1, 2) (fixed point): 2 atanh((m - 1)/(m + 1)). */
function logSeries(m: bigint): bigint {
  const t = ((m - ONE) * ONE) / (m + ONE);
  const t2 = (t * t) / ONE;
  let power = t, sum = 0n;
  for (let k = 1n; power !== 0n; k += 2n) {
    sum += power / k;
    power = (power * t2) / ONE;
  }
  return 2n * sum;
}

/**
 * |d - v| in ulps of d, where v = f * 2^(s - P) (f a BigInt) is the
 * reference: d's exact value against it, at d's ulp (2^-1074 at least).
 */
function ulps(d: number, f: bigint, s: number): number {
  const { m, e } = parts(d);
  // ulp of d: 2^(e) for a normal d (m has 53 bits), 2^-1074 below.
  const ulpExp = e;
  // Both sides at 2^(ulpExp - 64).
  const shift = BigInt(ulpExp - 64);
  const dv = m << 64n;
  const vs = BigInt(s) - P - shift;
  const vv = vs >= 0n ? f << vs : f / (1n << -vs);
  const diff = dv > vv ? dv - vv : vv - dv;
  return Number(diff) / 2 ** 64;
}

/** The ulps of fdlibmExp(x) from exp(x) (a finite, nonzero result). */
function expError(x: number): number {
  // x = n ln2 + r, |r| <= ln2 / 2 + a little.
  const fx = fixed(x);
  const n = (fx + (fx >= 0n ? LN2 / 2n : -LN2 / 2n)) / LN2;
  const r = fx - n * LN2;
  return ulps(fdlibmExp(x), expSeries(r), Number(n));
}

/** The ulps of fdlibmLog(x) from log(x) (x > 0 finite, x != 1). */
function logError(x: number): number {
  const { m, e } = parts(x);
  // x = m 2^e with m normalised into [1, 2): x = (m / 2^b) 2^(e + b).
  const bits = m.toString(2).length - 1;
  const mant = (m << P) >> BigInt(bits);
  const k = e + bits;
  const v = BigInt(k) * LN2 + logSeries(mant);
  return ulps(fdlibmLog(x), v, 0);
}

describe("fdlibmExp", () => {
  test("e_exp.c's bits, from its transcription with the word manipulations", () => {
    sameAsFixture(fdlibmExp, FIXTURES.exp);
  });

  test("within one ulp of a 300-bit exp over every range it computes", () => {
    const rng = new Rng(11);
    const xs: number[] = [1, -1, 0.5, -0.5, 2 ** -27, -(2 ** -27)];
    // The ranges of e_exp.c's branches, both signs, out to subnormal
    // results (below -708.4) and near overflow (709.78).
    for (const [lo, hi] of [[0, 0.35], [0.34, 1.04], [1, 40], [40, 709.7]]) {
      for (let i = 0; i < 400; i++) {
        const x = lo + (hi - lo) * rng.uniform();
        xs.push(x, -x);
      }
    }
    for (let i = 0; i < 300; i++) xs.push(-708 - 37 * rng.uniform());
    let worst = 0;
    for (const x of xs) {
      const e = expError(x);
      worst = Math.max(worst, e);
      assert.ok(e < 1, `exp(${x}): ${e} ulp`);
    }
    // fdlibm's error is below one ulp, and not correctly rounded.
    assert.ok(worst > 0.5, `worst ${worst} ulp`);
  });

  test("special arguments as e_exp.c: NaN, infinities, overflow, underflow, tiny", () => {
    assert.ok(Number.isNaN(fdlibmExp(NaN)));
    assert.equal(fdlibmExp(Infinity), Infinity);
    assert.equal(fdlibmExp(-Infinity), 0);
    assert.equal(fdlibmExp(709.79), Infinity);
    assert.equal(fdlibmExp(-745.2), 0);
    assert.equal(fdlibmExp(0), 1);
    assert.equal(fdlibmExp(-0), 1);
    // Below 2^-28: 1 + x, rounded.
    assert.equal(fdlibmExp(2 ** -30), 1 + 2 ** -30);
    // The smallest subnormal: exp(-745.1) rounds to 2^-1074.
    assert.equal(fdlibmExp(-745.1), 2 ** -1074);
    // The largest finite results.
    assert.ok(Number.isFinite(fdlibmExp(709.78)));
  });

  test("within one ulp of Math.exp, and equal to it on most arguments", () => {
    const rng = new Rng(12);
    let same = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const x = -12 * rng.uniform();
      const a = fdlibmExp(x), b = Math.exp(x);
      if (a === b) same++;
      else {
        const ulp = 2 ** (Math.floor(Math.log2(b)) - 52);
        assert.ok(Math.abs(a - b) <= 2 * ulp, `exp(${x}): ${a} vs ${b}`);
      }
    }
    assert.ok(same > 0.8 * n, `${same} of ${n} the same`);
  });
});

describe("fdlibmLog", () => {
  test("e_log.c's bits, from its transcription with the word manipulations", () => {
    sameAsFixture(fdlibmLog, FIXTURES.log);
  });

  test("within one ulp of a 300-bit log, subnormal arguments included", () => {
    const rng = new Rng(13);
    const xs: number[] = [2, 0.5, 3, 10, 1e-300, 1e300, 2 ** -1074, 5e-324 * 3];
    for (let i = 0; i < 1500; i++) {
      xs.push(
        0.5 + 1.5 * rng.uniform(),
        1 + (rng.uniform() - 0.5) * 2e-6, // |f| < 2^-20 and near it
        Math.exp((rng.uniform() - 0.5) * 1400),
      );
    }
    for (let i = 0; i < 200; i++) xs.push(rng.uniform() * 2 ** -1030);
    for (const x of xs) {
      if (x === 1 || x === 0) continue;
      const e = logError(x);
      assert.ok(e < 1, `log(${x}): ${e} ulp`);
    }
  });

  test("special arguments as e_log.c", () => {
    assert.equal(fdlibmLog(1), 0);
    assert.equal(fdlibmLog(0), -Infinity);
    assert.equal(fdlibmLog(-0), -Infinity);
    assert.ok(Number.isNaN(fdlibmLog(-1)));
    assert.ok(Number.isNaN(fdlibmLog(-Infinity)));
    assert.ok(Number.isNaN(fdlibmLog(NaN)));
    assert.equal(fdlibmLog(Infinity), Infinity);
    // Powers of two: k ln2_hi + k ln2_lo.
    assert.equal(
      fdlibmLog(2 ** 10),
      10 * 6.93147180369123816490e-01 +
        10 * 1.90821492927058770002e-10,
    );
  });
});

describe("cosPi", () => {
  test("k_sin.c's and k_cos.c's bits, from their transcription, and within 2 ulps of cos(pi x) at 300 bits", () => {
    sameAsFixture(cosPi, FIXTURES.cospi.map(([x, y]) => [x, y]));
    for (const [xs, , es] of FIXTURES.cospi) {
      const x = ofBits(xs), exact = ofBits(es), got = cosPi(x);
      if (Number.isNaN(exact)) continue;
      // An ulp of the exact value; exact zeros must come out 0.
      const ulp = exact === 0
        ? 0
        : 2 ** (Math.floor(Math.log2(Math.abs(exact))) - 52);
      assert.ok(
        Math.abs(got - exact) <= 2 * ulp,
        `cosPi(${x}) = ${got}, exact ${exact}`,
      );
    }
  });

  test("exact at integers and half-integers, even, period 2; NaN for infinities", () => {
    for (let n = -6; n <= 6; n++) {
      assert.equal(cosPi(n), n % 2 === 0 ? 1 : -1);
      assert.equal(cosPi(n + 0.5), 0);
    }
    assert.equal(cosPi(2 ** 60), 1);
    const rng = new Rng(14);
    for (let i = 0; i < 1000; i++) {
      const x = 8 * rng.uniform() - 4;
      assert.equal(cosPi(-x), cosPi(x));
      // x + 2 is exact for these x (their last bit is at least 2^-50).
      const y = Math.round(x * 2 ** 50) / 2 ** 50;
      assert.equal(cosPi(y + 2), cosPi(y));
    }
    assert.ok(Number.isNaN(cosPi(Infinity)));
    assert.ok(Number.isNaN(cosPi(NaN)));
  });
});
