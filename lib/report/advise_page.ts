import { type Advice, adviceHeadline } from "../placement/advise.ts";
import { escapeXml } from "./_plot.ts";
import { barChart } from "./bar_chart.ts";
import { tableHtml } from "./display.ts";
import type { Figure } from "./figure.ts";
import { lineChart } from "./line_chart.ts";

/** The advice as a table: one row per strategy, numbers rounded for reading. */
export interface AdviceTable {
  /** Column headings. */
  columns: string[];
  /** One row per strategy, in the advice's order. */
  rows: (string | number)[][];
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/**
 * The strategies of an {@linkcode adviseRecording} result as a table:
 * name, slots per GPU, first evaluated step, GPU max/mean, step time,
 * gain, gain net of transfers, re-plans and experts moved per re-plan,
 * colocated replicas, and the engines' figures (vLLM balancedness, SGLang
 * utilisation rate, TensorRT-LLM imbalance ratio).
 *
 * @param advice The advice.
 * @returns Columns and rows.
 *
 * @example
 * ```ts
 * import { adviseRecording } from "@moelab/balance";
 * import { adviceTable } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const a = adviseRecording([[[9, 1, 1, 1]], [[9, 1, 1, 1]]], { gpus: 2, replicas: 4, iterations: 0 });
 * const t = adviceTable(a);
 * assert.equal(t.rows[0][0], "static EP");
 * assert.equal(t.rows[0][t.columns.indexOf("max/mean")], 1.667); // 10 / 6
 * ```
 */
export function adviceTable(advice: Advice): AdviceTable {
  return {
    columns: [
      "strategy",
      "slots/GPU",
      "from step",
      "max/mean",
      "step ms",
      "gain",
      "net gain",
      "re-plans",
      "moved/re-plan",
      "colocated",
      "vLLM balancedness",
      "SGLang utilisation",
      "TRT-LLM imbalance",
    ],
    rows: advice.strategies.map((s) => [
      s.name,
      s.slotsPerGpu,
      s.from,
      round(s.maxOverMean, 3),
      round(s.stepMs, 3),
      `${(100 * s.gain).toFixed(1)} %`,
      `${(100 * s.netGain).toFixed(1)} %`,
      s.replans ?? "-",
      s.migrationExperts === undefined ? "-" : round(s.migrationExperts, 1),
      s.colocated ?? "-",
      round(s.vllmBalancedness, 3),
      round(s.sglangUtilizationRate, 3),
      round(s.trtllmImbalanceRatio, 3),
    ]),
  };
}

/**
 * Per-GPU loads of each strategy as grouped bars: GPUs sorted from the
 * busiest, mean tokens over steps and layers, with the mean GPU load as a
 * dashed line (the ideal every strategy aims at).
 *
 * @param advice The advice.
 * @returns A {@linkcode Figure}.
 *
 * @example
 * ```ts
 * import { adviseRecording } from "@moelab/balance";
 * import { adviceGpuLoadsChart } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const a = adviseRecording([[[9, 1, 1, 1]], [[9, 1, 1, 1]]], { gpus: 2, replicas: 4, iterations: 0 });
 * assert.match(adviceGpuLoadsChart(a).svg, /static EP/);
 * ```
 */
export function adviceGpuLoadsChart(advice: Advice): Figure {
  const rows = advice.strategies.filter((s) =>
    s.key !== "eplb-replan" || s === bestReplan(advice)
  ).flatMap((s) =>
    s.sortedGpuLoads.map((tokens, g) => ({
      gpu: g,
      tokens: round(tokens, 2),
      strategy: s.name,
    }))
  );
  const mean = advice.strategies[0].sortedGpuLoads.reduce((a, b) => a + b, 0) /
    advice.gpus;
  return barChart(rows, {
    x: "gpu",
    y: "tokens",
    series: "strategy",
    rules: [mean],
    xLabel: "GPU, from the busiest",
    yLabel: "tokens per layer and step",
    width: 900,
    height: 360,
  });
}

function bestReplan(advice: Advice) {
  let best;
  for (const s of advice.strategies) {
    if (s.key === "eplb-replan" && (!best || s.netGain > best.netGain)) {
      best = s;
    }
  }
  return best;
}

/**
 * Gain of EPLB re-planned every `W` steps against `W` (log scale), before
 * and after the transfer time of each re-plan is spread over its steps.
 *
 * @param advice The advice (with at least one re-plan interval).
 * @returns A {@linkcode Figure}.
 *
 * @example
 * ```ts
 * import { adviseRecording } from "@moelab/balance";
 * import { adviceIntervalChart } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const steps = [1, 2, 3, 4].map((s) => [[9 * (s % 2), 1, 9 * ((s + 1) % 2), 1]]);
 * const a = adviseRecording(steps, { gpus: 2, replicas: 4, intervals: [1, 2], iterations: 0 });
 * assert.match(adviceIntervalChart(a).svg, /net of transfers/);
 * ```
 */
export function adviceIntervalChart(advice: Advice): Figure {
  const rows = advice.strategies.filter((s) => s.key === "eplb-replan")
    .flatMap((s) => [
      { interval: s.interval!, gain: 100 * s.gain, series: "gain" },
      {
        interval: s.interval!,
        gain: 100 * s.netGain,
        series: "net of transfers",
      },
    ]);
  return lineChart(rows, {
    x: "interval",
    y: "gain",
    series: "series",
    logX: true,
    rules: [0],
    xLabel: "re-plan interval W (steps)",
    yLabel: "throughput gain over static EP (%)",
    width: 900,
    height: 320,
  });
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;
  margin:24px auto;max-width:1100px;padding:0 16px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
p.lead{color:#555;margin:0 0 16px}.wide{overflow-x:auto}
table{border-collapse:collapse;font-size:12px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
td{white-space:nowrap}th{border-bottom:2px solid #bbb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:8px 0}figcaption{color:#555;font-size:13px;max-width:760px}
svg{max-width:100%;height:auto}footer{color:#888;font-size:12px;margin-top:32px}`;

/**
 * One self-contained HTML page for an advice: the recommendation and its
 * reasons, the table of strategies ({@linkcode adviceTable}), per-GPU load
 * bars ({@linkcode adviceGpuLoadsChart}) and gain against the re-plan
 * interval ({@linkcode adviceIntervalChart}). No scripts or links: it
 * opens offline. `moelab advise --out DIR` writes it as `advice.html`.
 *
 * @param advice The advice.
 * @param source What was advised on, for the heading (default none).
 * @returns The HTML document.
 *
 * @example
 * ```ts
 * import { adviseRecording } from "@moelab/balance";
 * import { adviceReportHtml } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const a = adviseRecording([[[9, 1, 1, 1]], [[9, 1, 1, 1]]], { gpus: 2, replicas: 4, iterations: 0 });
 * const html = adviceReportHtml(a, "loads.csv");
 * assert.match(html, /<h2>Recommendation<\/h2>/);
 * assert.doesNotMatch(html, /<script|<link|src=/);
 * ```
 */
export function adviceReportHtml(advice: Advice, source = ""): string {
  const t = adviceTable(advice);
  const lead = `${source ? `${source}: ` : ""}${
    adviceHeadline(advice)
  }; one expert ${(advice.expertBytes / 1e6).toFixed(1)} MB.`;
  const hasReplan = advice.strategies.some((s) => s.key === "eplb-replan");
  return [
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>moelab advice</title><style>${STYLE}</style></head><body>`,
    `<h1>moelab advice</h1><p class="lead">${escapeXml(lead)}</p>`,
    `<section><h2>Recommendation</h2><p><strong>${
      escapeXml(advice.recommendation.name)
    }</strong></p><ul>${
      advice.recommendation.reasons.map((r) => `<li>${escapeXml(r)}</li>`)
        .join("")
    }</ul></section>`,
    `<section><h2>Strategies</h2><div class="wide">${
      tableHtml(t.columns, t.rows)
    }</div></section>`,
    `<section><h2>Per-GPU load</h2><figure>${
      adviceGpuLoadsChart(advice).svg
    }<figcaption>Tokens per GPU, GPUs sorted from the busiest, mean over the evaluated steps and the layers; dashed: the mean GPU load. EPLB rows split an expert's tokens equally over its replicas; MicroMoE rows take each step's LP schedule.</figcaption></figure></section>`,
    hasReplan
      ? `<section><h2>Gain against re-plan interval</h2><figure>${
        adviceIntervalChart(advice).svg
      }<figcaption>EPLB planned on the past W steps and run on the next W; net: the transfer time of the moved experts spread over the steps.</figcaption></figure></section>`
      : "",
    `<footer>Step times from the FasterMoE step-time model. Written by moelab advise.</footer>`,
    `</body></html>`,
  ].join("\n") + "\n";
}
