// The expert-parallel stage of a run as figures: how evenly each strategy
// spreads the tokens over the GPUs, and the modelled step time it buys.
import type { SimResult } from "../sim/run.ts";
import { barChart } from "./bar_chart.ts";
import type { Figure } from "./figure.ts";

/**
 * Per method, strategy and GPU rank (0 = the busiest GPU of the batch): the
 * rank's tokens over the batch's mean GPU load, averaged over the layers
 * and the evaluation window's steps. Rank 0 is the strategy's
 * `gpuMaxOverMean` of the summary; a balanced strategy is 1 at every rank.
 * Sorting within each batch keeps imbalance visible that an average per GPU
 * index would wash out (the busiest GPU changes from batch to batch).
 *
 * @returns `ratio[(method * strategies + strategy) * gpus + rank]`, or null
 * when the run has no EP stage.
 */
export function gpuLoadByRank(result: SimResult): Float64Array | null {
  return result.ep?.rankProfile ?? null;
}

/**
 * One bar chart per method: each GPU rank's load over the mean, minus 1
 * (0 = perfect balance, so small imbalances are not dwarfed by bars of
 * height 1), the strategies side by side.
 */
export function epGpuLoadPlots(
  result: SimResult,
  size: { width: number; height: number },
): Figure[] {
  const ratio = gpuLoadByRank(result);
  if (!ratio || !result.ep) return [];
  const names = result.ep.config.strategies;
  const G = result.ep.config.gpus, K = names.length;
  // Float noise of a perfectly balanced batch (1e-16) is balance.
  const excess = Array.from(ratio, (r) => Math.abs(r - 1) < 1e-9 ? 0 : r - 1);
  // One scale for all methods, so that their charts compare at a glance.
  let lo = Math.min(0, ...excess), hi = Math.max(0, ...excess);
  if (hi - lo < 1e-3) [lo, hi] = [-0.01, 0.01];
  const pad = (hi - lo) * 0.05;
  return result.labels.map((method, m) => {
    const rows = [];
    for (let g = 0; g < G; g++) {
      for (let k = 0; k < K; k++) {
        rows.push({
          rank: g + 1,
          strategy: names[k],
          excess: excess[(m * K + k) * G + g],
        });
      }
    }
    return barChart(rows, {
      x: "rank",
      y: "excess",
      series: "strategy",
      xLabel: "GPU, busiest first",
      yLabel: "tokens / mean - 1",
      yDomain: [lo - pad, hi + pad],
      title: method,
      ...size,
    });
  });
}

/** Modelled step time per method, the strategies side by side. */
export function epStepTimePlot(
  result: SimResult,
  size: { width: number; height: number },
): Figure | null {
  const ep = result.ep;
  if (!ep) return null;
  const rows = result.labels.flatMap((method, m) =>
    ep.config.strategies.map((strategy) => ({
      method,
      strategy,
      ms: ep.summaries[m][strategy].stepTimeMs,
    }))
  );
  return barChart(rows, {
    x: "method",
    y: "ms",
    series: "strategy",
    xLabel: "method",
    yLabel: "step time (ms)",
    ...size,
  });
}
