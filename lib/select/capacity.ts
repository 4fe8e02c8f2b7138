// The capacity rule shared by BIP, Expert Choice, capacity dropping and
// the exact solver's callers.

/**
 * Expert capacity `ceil(tokens * k * capacityFactor / experts)`. A value
 * within `1e-9` (relative) of an integer counts as that integer, so that
 * `capacityFactor = 1` gives exactly `ceil(tokens * k / experts)` whatever
 * the rounding of the product.
 */
export function capacityOf(
  tokens: number,
  k: number,
  experts: number,
  capacityFactor: number,
): number {
  if (capacityFactor === 1) return Math.ceil((tokens * k) / experts);
  const x = (tokens * k * capacityFactor) / experts;
  const r = Math.round(x);
  return Math.abs(x - r) <= 1e-9 * Math.max(1, x) ? r : Math.ceil(x);
}
