// The exponential and the natural logarithm of fdlibm 5.3 (Sun
// Microsystems, 1993: e_exp.c and e_log.c), in plain float64 arithmetic,
// so that every JavaScript engine computes the same bits. `Math.exp` and
// `Math.log` are not specified to the bit: on 4,000,000 arguments in
// [-12.25, 0.25], Deno's and Bun's `Math.exp` differed in 3,042 (against a
// 50-digit reference, Deno's was correctly rounded on all of 200,000 of
// them, Bun's not on 151). Code that must give the same numbers from the
// same seed on every engine takes these instead: the Sinkhorn kernels
// (whose WebAssembly twin, lib/wasm/src/sinkhorn.c, agrees bit for bit),
// Rng's normal draws, the synthetic workload's cluster weights and noise
// table, the Megatron router's weights, and training (softmax, sigmoid,
// cross-entropy, perplexity; the cosine schedules take cosPi). Both are
// within one ulp of the exact value (fdlibm's bound), checked against a
// 300-bit evaluation in the tests.

// Doubles from their high words (the low word zero): fdlibm's branches
// compare the high word of |x|, which orders as |x| does.
const view = new DataView(new ArrayBuffer(8));
function fromHigh(hi: number): number {
  view.setUint32(0, hi >>> 0);
  view.setUint32(4, 0);
  return view.getFloat64(0);
}

// e_exp.c's constants.
const O_THRESHOLD = 7.09782712893383973096e+02;
const U_THRESHOLD = -7.45133219101941108420e+02;
const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.44269504088896338700e+00;
const P1 = 1.66666666666666019037e-01;
const P2 = -2.77777777770155933842e-03;
const P3 = 6.61375632143793436117e-05;
const P4 = -1.65339022054652515390e-06;
const P5 = 4.13813679705723846039e-08;
const TWO_M1000 = fromHigh(0x01700000); // 2^-1000
/** |x| at or above which e_exp.c filters (high word 0x40862E42). */
const EXP_FILTER = fromHigh(0x40862e42);
/** |x| above 0.5 ln 2 (high word above 0x3FD62E42): reduced. */
const EXP_REDUCE = fromHigh(0x3fd62e43);
/** |x| below 1.5 ln 2 (high word below 0x3FF0A2B2): k = +-1. */
const EXP_ONE = fromHigh(0x3ff0a2b2);
/** 2^-28 (high word 0x3E300000): exp(x) = 1 + x below it. */
const EXP_TINY = fromHigh(0x3e300000);
/** 2^k for k in [-1021, 1023], at k + 1021 (exact: built from bits). */
const POW2 = new Float64Array(2045);
for (let k = -1021; k <= 1023; k++) POW2[k + 1021] = fromHigh((k + 1023) << 20);

/**
 * `e^x` by fdlibm's `__ieee754_exp`: the same bits on every engine, within
 * one ulp of the exact value (`Math.exp` may differ in the last bit, and
 * differs between engines). NaN gives NaN, `-Infinity` 0, and arguments
 * past about 709.78 `Infinity`.
 *
 * @param x Any number.
 * @returns `e^x`, rounded as fdlibm rounds it.
 *
 * @example
 * ```ts
 * import { fdlibmExp } from "./fdlibm.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(fdlibmExp(0), 1);
 * assert.equal(fdlibmExp(-Infinity), 0);
 * // e, one ulp above the double nearest to it (fdlibm's bound is one ulp):
 * assert.equal(fdlibmExp(1), 2.7182818284590455);
 * assert.ok(Math.abs(fdlibmExp(-3) - Math.exp(-3)) <= 2 ** -52 * 0.05);
 * ```
 */
export function fdlibmExp(x: number): number {
  const ax = x < 0 ? -x : x;
  if (!(ax < EXP_FILTER)) {
    if (x !== x) return x + x;
    if (x === Infinity) return x;
    if (x === -Infinity) return 0;
    if (x > O_THRESHOLD) return Infinity;
    if (x < U_THRESHOLD) return 0;
  }
  let k = 0, hi = 0, lo = 0;
  if (ax >= EXP_REDUCE) {
    if (ax < EXP_ONE) {
      if (x > 0) {
        hi = x - LN2_HI;
        lo = LN2_LO;
        k = 1;
      } else {
        hi = x + LN2_HI;
        lo = -LN2_LO;
        k = -1;
      }
    } else {
      // (int)(invln2 * x + halF[xsb]): truncated toward zero.
      k = (INV_LN2 * x + (x < 0 ? -0.5 : 0.5)) | 0; // |k| < 1100
      hi = x - k * LN2_HI; // exact
      lo = k * LN2_LO;
    }
    x = hi - lo;
  } else if (ax < EXP_TINY) {
    return 1 + x;
  }
  const t = x * x;
  const c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k === 0) return 1 - ((x * c) / (c - 2.0) - x);
  const y = 1 - ((lo - (x * c) / (2.0 - c)) - hi);
  // y * 2^k, exact while the result is normal (k >= -1021); below, as
  // e_exp.c: scaled by 2^(k + 1000), then by 2^-1000 with one rounding.
  if (k >= -1021) {
    return k === 1024 ? y * 2 * POW2[1023 + 1021] : y * POW2[k + 1021];
  }
  return y * POW2[k + 1000 + 1021] * TWO_M1000;
}

// e_log.c's constants.
const TWO54 = 1.80143985094819840000e+16;
const LG1 = 6.666666666666735130e-01;
const LG2 = 3.999999999940941908e-01;
const LG3 = 2.857142874366239149e-01;
const LG4 = 2.222219843214978396e-01;
const LG5 = 1.818357216161805012e-01;
const LG6 = 1.531383769920937332e-01;
const LG7 = 1.479819860511658591e-01;

/**
 * The natural logarithm by fdlibm's `__ieee754_log`: the same bits on
 * every engine, within one ulp of the exact value. `log(0)` is
 * `-Infinity`, a negative argument or NaN gives NaN, `log(Infinity)` is
 * `Infinity`.
 *
 * @param x Any number.
 * @returns `ln x`, rounded as fdlibm rounds it.
 *
 * @example
 * ```ts
 * import { fdlibmLog } from "./fdlibm.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(fdlibmLog(1), 0);
 * assert.equal(fdlibmLog(0), -Infinity);
 * assert.ok(Number.isNaN(fdlibmLog(-1)));
 * assert.equal(fdlibmLog(Math.E), 1);
 * ```
 */
export function fdlibmLog(x: number): number {
  view.setFloat64(0, x);
  let hx = view.getInt32(0);
  const lx = view.getUint32(4);
  let k = 0;
  if (hx < 0x00100000) { // x < 2^-1022
    if (((hx & 0x7fffffff) | lx) === 0) return -Infinity; // log(+-0)
    if (hx < 0) return NaN; // log(negative)
    k -= 54;
    x *= TWO54; // subnormal: scaled up
    view.setFloat64(0, x);
    hx = view.getInt32(0);
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  const i = (hx + 0x95f64) & 0x100000;
  // x or x / 2, normalised into [sqrt(2) / 2, sqrt(2)).
  view.setFloat64(0, x);
  view.setInt32(0, hx | (i ^ 0x3ff00000));
  x = view.getFloat64(0);
  k += i >> 20;
  const f = x - 1.0;
  if ((0x000fffff & (2 + hx)) < 3) { // |f| < 2^-20
    if (f === 0) return k === 0 ? 0 : k * LN2_HI + k * LN2_LO;
    const r = f * f * (0.5 - 0.33333333333333333 * f);
    return k === 0 ? f - r : k * LN2_HI - ((r - k * LN2_LO) - f);
  }
  const s = f / (2.0 + f);
  const z = s * s;
  const w = z * z;
  const t1 = w * (LG2 + w * (LG4 + w * LG6));
  const t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  const r = t2 + t1;
  if (((hx - 0x6147a) | (0x6b851 - hx)) > 0) {
    const hfsq = 0.5 * f * f;
    return k === 0
      ? f - (hfsq - s * (hfsq + r))
      : k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
  }
  return k === 0
    ? f - s * (f - r)
    : k * LN2_HI - ((s * (f - r) - k * LN2_LO) - f);
}

// k_sin.c's and k_cos.c's polynomials.
const S1 = -1.66666666666666324348e-01;
const S2 = 8.33333333332248946124e-03;
const S3 = -1.98412698298579493134e-04;
const S4 = 2.75573137070700676789e-06;
const S5 = -2.50507602534068634195e-08;
const S6 = 1.58969099521155010221e-10;
const C1 = 4.16666666666666019037e-02;
const C2 = -1.38888888888741095749e-03;
const C3 = 2.48015872894767294178e-05;
const C4 = -2.75573143513906633035e-07;
const C5 = 2.08757232129817482790e-09;
const C6 = -1.13596475577881948265e-11;

/** fdlibm's `__kernel_sin(x, 0, 0)`: sin x for |x| <= pi / 4. */
function kernelSin(x: number): number {
  view.setFloat64(0, x);
  if ((view.getInt32(0) & 0x7fffffff) < 0x3e400000) return x; // |x| < 2^-27
  const z = x * x;
  const v = z * x;
  const r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
  return x + v * (S1 + z * r);
}

/** fdlibm's `__kernel_cos(x, 0)`: cos x for |x| <= pi / 4. */
function kernelCos(x: number): number {
  view.setFloat64(0, x);
  const ix = view.getInt32(0) & 0x7fffffff;
  if (ix < 0x3e400000) return 1; // |x| < 2^-27
  const z = x * x;
  const r = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
  // With y = 0, k_cos.c's x * y is a zero and z * r - x * y is z * r.
  if (ix < 0x3fd33333) return 1 - (0.5 * z - z * r); // |x| < 0.3
  // qx: |x| / 4 with its low word cleared, or 0.28125 above 0.78125.
  const qx = ix > 0x3fe90000 ? 0.28125 : fromHigh(ix - 0x00200000);
  const hz = 0.5 * z - qx;
  const a = 1 - qx;
  return a - (hz - z * r);
}

/**
 * `cos(pi x)` from fdlibm's kernels (`__kernel_sin`, `__kernel_cos`) on
 * an argument reduced exactly in units of pi: the same bits on every
 * engine, where `Math.cos` may differ between engines in the last bit.
 * The reduction is exact (x less the nearest even integer, then a quarter
 * turn: subtractions of nearby numbers), so only the product by pi and the
 * kernel round: within about two ulps of the exact value, and exactly 0 at
 * half-integers and +-1 at integers. NaN and infinities give NaN.
 *
 * @param x The angle in half-turns.
 * @returns `cos(pi x)`.
 *
 * @example
 * ```ts
 * import { cosPi } from "./fdlibm.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(cosPi(0), 1);
 * assert.equal(cosPi(0.5), 0); // Math.cos(Math.PI / 2) is 6.1e-17
 * assert.equal(cosPi(1), -1);
 * assert.ok(Math.abs(cosPi(1 / 3) - 0.5) < 2 ** -52);
 * ```
 */
export function cosPi(x: number): number {
  if (!Number.isFinite(x)) return NaN;
  // x - 2 round(x / 2) in [-1, 1], exact; cos is even.
  let c = x - 2 * Math.round(x / 2);
  if (c < 0) c = -c;
  if (c <= 0.25) return kernelCos(Math.PI * c);
  // 0.5 - c and 1 - c are exact here (Sterbenz).
  if (c < 0.75) return kernelSin(Math.PI * (0.5 - c));
  return -kernelCos(Math.PI * (1 - c));
}
