// WGSL for selection keys that compare as the CPU's float64 keys do. The
// CPU selects on `s + b` (or `s * b`) in float64; float32 keys
// `fround(s + b)` would tie where the float64 keys differ. Here a key is an
// unevaluated pair `hi + lo`: `hi` the float32 sum (or product), `lo` its
// exact rounding error (TwoSum; Dekker's product with a split by bit mask),
// rounded to float64's grid at `hi`, so that the pair is the float64 value.
// The CPU's key is exact for a product of two float32 values, and for a sum
// up to float64 rounding, which the grid step reproduces (ties to even).
//
// Compilers fold `(a + b) - a` to `b` (lavapipe does, which zeroes every
// error term), so each intermediate passes through `opaque`, an OR with a
// zero the shader cannot know: the program must declare a uniform `params`
// with a `u32` field `zero` holding 0.
//
// Valid for finite scores and biases whose sums and products neither
// overflow nor fall below 2^-60 in magnitude (except an exact 0); a
// `-Infinity` score gives the key (-inf, 0).

/** WGSL: `Key`, `opaque`, `key_gt` and the rounding to float64's grid. */
export const KEY_WGSL = `
struct Key { hi: f32, lo: f32 }
const F32_MAX: f32 = 3.40282347e38;
fn opaque(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) | params.zero); }
// Rounds the error e of hi + e to float64's grid at hi (29 bits finer than
// float32's; half that below a power of two the sum falls under).
fn round64(hi: f32, e: f32) -> f32 {
  let bits = bitcast<u32>(hi);
  let ex = i32((bits >> 23u) & 0xffu) - 127;
  if (e == 0.0 || ex < -60) { return e; }
  var g = ex - 52;
  if ((bits & 0x7fffffu) == 0u && (e < 0.0) != (hi < 0.0)) { g -= 1; }
  return ldexp(round(ldexp(e, -g)), g);
}
// Exact error of s = opaque(a + b) (Knuth's TwoSum).
fn two_err(a: f32, b: f32, s: f32) -> f32 {
  let bb = opaque(s - a);
  return opaque(a - opaque(s - bb)) + opaque(b - bb);
}
// The error of hi = opaque(a + b), rounded as float64 rounds the sum.
fn sum_lo(a: f32, b: f32, hi: f32) -> f32 {
  if (!(abs(hi) <= F32_MAX)) { return 0.0; }
  return round64(hi, two_err(a, b, hi));
}
// Exact error of hi = opaque(a * b): Dekker's product, halves split by
// masking 12 significant bits, so every partial product is exact (fused or
// not) and each sum is exact by Dekker's argument.
fn prod_lo(a: f32, b: f32, hi: f32) -> f32 {
  if (!(abs(hi) <= F32_MAX)) { return 0.0; }
  let ah = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
  let al = opaque(a - ah);
  let bh = bitcast<f32>(bitcast<u32>(b) & 0xfffff000u);
  let bl = opaque(b - bh);
  let t = opaque(opaque(opaque(ah * bh - hi) + ah * bl) + al * bh);
  return opaque(t + al * bl);
}
// x > y for pairs hi + lo with |lo| at most half a float32 step of hi.
// When x.hi > y.hi the values are equal only if the two hi are one step
// apart and both pairs sit at the midpoint. NaN compares false, as on the CPU.
fn key_gt(x: Key, y: Key) -> bool {
  if (x.hi > y.hi) { return !(x.lo == -y.lo && y.lo + y.lo == x.hi - y.hi); }
  if (x.hi == y.hi) { return x.lo > y.lo; }
  return false;
}
// float64 sum of two keys, as a key: exact when the sum needs at most the
// pair's 48 bits, then rounded to float64's grid.
fn key_add(x: Key, y: Key) -> Key {
  let s = opaque(x.hi + y.hi);
  if (!(abs(s) <= F32_MAX)) { return Key(s, 0.0); }
  let t = opaque(opaque(x.lo + y.lo) + two_err(x.hi, y.hi, s));
  let h = opaque(s + t);
  return Key(h, round64(h, two_err(s, t, h)));
}`;

/**
 * WGSL of the key of score `s` and bias `b` for a bias mode: `0` none,
 * `1` add, `2` multiply, `3` subtract. Returns the expressions of `hi` and
 * of `lo` given `hi`.
 */
export function keyParts(
  mode: 0 | 1 | 2 | 3,
  s: string,
  b: string,
): { hi: string; lo: (hi: string) => string } {
  switch (mode) {
    case 0:
      return { hi: s, lo: () => "0.0" };
    case 1:
      return {
        hi: `opaque(${s} + ${b})`,
        lo: (hi) => `sum_lo(${s}, ${b}, ${hi})`,
      };
    case 2:
      return {
        hi: `opaque(${s} * ${b})`,
        lo: (hi) => `prod_lo(${s}, ${b}, ${hi})`,
      };
    case 3:
      return {
        hi: `opaque(${s} - ${b})`,
        lo: (hi) => `sum_lo(${s}, -${b}, ${hi})`,
      };
  }
}
