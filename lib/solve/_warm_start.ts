/** Starting expert prices for the exact solver (placeholder: zero). */
export function warmStartPrices(
  _s: Float32Array,
  _tokens: number,
  experts: number,
  _k: number,
  _capacity: number,
): Float64Array {
  return new Float64Array(experts);
}
