// CPU twin of the WebGPU Loss-Free bias update (kernels/bias_update.ts), in
// float32 as the GPU keeps its biases. docs/algorithms.md section 4: with
// `e[j] = mean(c) - c[j]`, sign rule `b[j] += u * sign(e[j])`, proportional
// rule `b[j] += u * e[j] / mean(c)` (as lossFree, loss_free.ts).

/**
 * Updates `bias` (float32, experts) in place from the loads of the batch
 * just routed. The sign of `e[j]` is decided on integers (`c[j] * E`
 * against the total), so it is exact on both backends.
 */
export function lossFreeUpdateF32(
  bias: Float32Array,
  loads: Int32Array,
  rate: number,
  rule: "sign" | "proportional",
): void {
  const E = loads.length;
  let total = 0;
  for (let j = 0; j < E; j++) total += loads[j];
  if (total === 0) return;
  const u = Math.fround(rate);
  for (let j = 0; j < E; j++) {
    const ce = loads[j] * E;
    const step = rule === "sign"
      ? (ce < total ? u : ce > total ? -u : 0)
      : u * (1 - ce / total);
    bias[j] = bias[j] + step;
  }
}
