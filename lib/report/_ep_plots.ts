// The expert-parallel stage of a run as figures: how evenly each strategy
// spreads the tokens over the GPUs, and the modelled step time it buys.
import { EP_STRATEGIES } from "../sim/ep_config.ts";
import { evalStart } from "../sim/eval_window.ts";
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
  const ep = result.ep;
  if (!ep) return null;
  const G = ep.config.gpus, K = EP_STRATEGIES.length;
  const M = result.labels.length;
  const start = evalStart(result.config);
  const t = ep.table;
  const out = new Float64Array(M * K * G);
  const batch = new Float64Array(G);
  let batches = 0;
  // Rows come in blocks of G (one batch of one method and strategy).
  for (let r = 0; r + G <= t.tokens.length; r += G) {
    if (t.step[r] < start) continue;
    let total = 0;
    for (let g = 0; g < G; g++) total += batch[g] = t.tokens[r + g];
    batch.sort().reverse();
    const mean = total / G;
    const base = (t.method[r] * K + t.strategy[r]) * G;
    for (let g = 0; g < G; g++) out[base + g] += mean > 0 ? batch[g] / mean : 1;
    if (t.method[r] === 0 && t.strategy[r] === 0) batches++;
  }
  if (batches > 0) { for (let i = 0; i < out.length; i++) out[i] /= batches; }
  return out;
}

/**
 * One bar chart per method: each GPU rank's load over the mean, minus 1
 * (0 = perfect balance, so small imbalances are not dwarfed by bars of
 * height 1), the four strategies side by side.
 */
export function epGpuLoadPlots(
  result: SimResult,
  size: { width: number; height: number },
): Figure[] {
  const ratio = gpuLoadByRank(result);
  if (!ratio || !result.ep) return [];
  const G = result.ep.config.gpus, K = EP_STRATEGIES.length;
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
          strategy: EP_STRATEGIES[k],
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

/** Modelled step time per method, the four strategies side by side. */
export function epStepTimePlot(
  result: SimResult,
  size: { width: number; height: number },
): Figure | null {
  const ep = result.ep;
  if (!ep) return null;
  const rows = result.labels.flatMap((method, m) =>
    EP_STRATEGIES.map((strategy) => ({
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
