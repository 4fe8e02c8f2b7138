import type { SimResult } from "../sim/run.ts";
import {
  epNodeNotes,
  groupPhrase,
  optimumPhrase,
} from "../sim/summary_table.ts";
import { epGpuLoadPlots, epStepTimePlot } from "./_ep_plots.ts";
import { escapeXml } from "./_plot.ts";
import {
  epTableHtml,
  extraSectionHtml,
  heading,
  stepRanges,
  summaryTableHtml,
} from "./_summary_html.ts";
import type { Figure } from "./figure.ts";
import {
  convergencePlot,
  loadHeatmap,
  mostImbalancedLayer,
} from "./sim_plots.ts";

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;
  margin:24px auto;max-width:1100px;padding:0 16px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
p.lead{color:#555;margin:0 0 16px}p.note{color:#555;font-size:12px;margin:4px 0}
.wide{overflow-x:auto}
table{border-collapse:collapse;font-size:12px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;
  vertical-align:bottom}
td{white-space:nowrap}
th{border-bottom:2px solid #bbb;font-weight:600}
th.group{text-align:center;border-bottom:1px solid #bbb}
.num{text-align:right;font-variant-numeric:tabular-nums}
table.summary tbody tr:nth-child(even){background:#f7f7f9}
figure{margin:8px 0}figcaption{color:#555;font-size:13px;max-width:760px}
figure img{display:block;max-width:100%;height:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));
  gap:4px 16px}
.grid figure{margin:0}
details{margin:28px 0 0}summary{font-size:16px;font-weight:600;cursor:pointer}
details details{margin:8px 0 0}details details summary{font-size:13px}
pre{background:#f6f6f6;padding:10px;font-size:12px;overflow:auto}
footer{color:#888;font-size:12px;margin-top:32px}`;

/** A figure as a data-URI `<img>`, which survives viewers that strip SVG. */
function figureHtml(figure: Figure, alt: string, caption = ""): string {
  return `<figure>${figure.img(alt)}${
    caption ? `<figcaption>${caption}</figcaption>` : ""
  }</figure>`;
}

/**
 * One self-contained HTML page for a run: the summary table (as the command
 * line prints it), the convergence plot (MaxVio_batch over steps per
 * method), the load heatmap of the most imbalanced layer (one panel per
 * method, in the run's order), the expert-parallel results when the run has
 * them (table, per-GPU load and step-time bar charts), and the
 * configuration, folded. Figures are SVG embedded as data-URI images; no
 * scripts, fonts or links: it opens offline. `deno task sim` writes it as
 * `report.html`.
 *
 * @param result A run of {@linkcode runSimulation}.
 * @param summary The run's `summary.json` object (default
 * `{ config, backend, methods }` from `result`). Every method field becomes
 * a column and every other top-level entry a section, so fields added to
 * the summary show up without changes here.
 * @returns The HTML document.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@moelab/balance";
 * import { simReportHtml } from "@moelab/balance/report";
 * import assert from "node:assert/strict";
 *
 * const html = simReportHtml(runSimulation({ steps: 4, layers: 1, tokens: 128, experts: 8, topK: 2 }));
 * assert.match(html, /<th class="num">MaxVio_global<\/th>/);
 * // Convergence, heatmap, EP step time, EP GPU loads of greedy and loss-free.
 * assert.equal(html.match(/<img src="data:image\/svg\+xml;base64,/g)?.length, 5);
 * assert.doesNotMatch(html, /<script|<link|src="(?!data:)/);
 * ```
 */
export function simReportHtml(
  result: SimResult,
  summary: Record<string, unknown> = {
    config: { ...result.config, workload: result.workload },
    backend: result.backend,
    methods: result.methods,
  },
): string {
  const c = result.config;
  const layer = mostImbalancedLayer(result);
  const gapSteps = result.optimumSteps.length;
  const lead =
    `${c.layers} layers x ${c.steps} steps x ${c.tokens} tokens, ${c.experts} experts, top-${c.topK}${
      groupPhrase(c)
    }, ${c.gate} gate; summary over the last ${
      Math.round(c.evalFraction * 100)
    }% of the steps${optimumPhrase(c, gapSteps)}.`;
  const methods = (summary.methods ?? result.methods) as Record<
    string,
    unknown
  >[];
  const extra = Object.entries(summary).filter(([k]) =>
    !["config", "backend", "methods"].includes(k)
  );
  const parts = [
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>moelab simulation report</title><style>${STYLE}</style></head><body>`,
    `<h1>moelab simulation report</h1><p class="lead">${escapeXml(lead)}</p>`,
    `<section><h2>Summary</h2>${summaryTableHtml(methods)}</section>`,
    ...extra.map(([k, v]) => extraSectionHtml(heading(k), v)),
    `<section><h2>Convergence</h2>${
      figureHtml(
        convergencePlot(result, { width: 900, height: 360 }),
        "MaxVio_batch over steps, one line per method",
        `MaxVio_batch of each batch, averaged over layers, log scale; dashed: the balance threshold (${c.balanceThreshold}).${
          zeroNote(methods)
        }`,
      )
    }</section>`,
    `<section><h2>Load per expert, layer ${layer}</h2>${
      figureHtml(
        loadHeatmap(result, {
          layer,
          width: 900,
          maxColumns: heatmapColumns(result),
        }),
        `Load per expert over steps, layer ${layer}, one panel per method`,
        "The layer with the highest MaxVio_batch over the run, one panel per method in the run's order. Colour: an expert's load over the batch's mean load (white = balanced, red = overloaded, blue = underloaded).",
      )
    }</section>`,
    epSection(result, methods),
    configSection(summary.config ?? c, result.optimumSteps),
    `<footer>Backend: ${
      escapeXml(String(summary.backend ?? result.backend))
    }. Written by moelab sim.</footer>`,
    `</body></html>`,
  ];
  return parts.join("\n") + "\n";
}

/** The most cells the report's load heatmap draws (methods x columns x experts). */
const HEATMAP_CELLS = 32768;

/**
 * Columns of the report's load heatmap: 80 (the heatmap's default), fewer
 * when the methods and experts would pass {@linkcode HEATMAP_CELLS} (a
 * DeepSeek-V3-sized run: 4 methods x 256 experts get 32), at least 8.
 */
function heatmapColumns(result: SimResult): number {
  const perColumn = result.labels.length * result.config.experts;
  return Math.max(8, Math.min(80, Math.floor(HEATMAP_CELLS / perColumn)));
}

/** The expert-parallel results: table and bar charts, or "" without them. */
function epSection(
  result: SimResult,
  methods: Record<string, unknown>[],
): string {
  const ep = result.ep;
  if (!ep) return "";
  const c = ep.config;
  const stepTime = epStepTimePlot(result, { width: 900, height: 260 });
  const loads = epGpuLoadPlots(result, { width: 520, height: 180 });
  return `<section><h2>Expert parallelism</h2><p class="lead">${
    escapeXml(
      `${c.gpus} GPUs${
        c.gpusPerNode !== null && c.gpusPerNode < c.gpus
          ? ` in ${c.gpus / c.gpusPerNode} nodes`
          : ""
      }, ${
        c.redundant === null
          ? `${c.replicas} replicas per expert`
          : `${c.redundant} redundant expert slots`
      }. static: expert j on GPU j / (experts / GPUs); eplb: DeepSeek's EPLB (global policy), tokens split equally over replicas; eplb-hierarchical: EPLB's hierarchical policy (groups packed onto nodes, replicas inside nodes); hierarchical-lp: that placement with MicroMoE scheduling; symmetric-lp and asymmetric-lp: MicroMoE ${c.scheduler} scheduling on the ${c.placement} placement and the asymmetric one. EPLB and the asymmetric placement are recomputed every ${c.rebalanceEvery} steps. Step time: all layers, ${c.hardware} model (NVLink and network, docs/algorithms.md section 15)${
        c.sampleEvery > 1
          ? `, on every ${c.sampleEvery}th step of the evaluation window`
          : ""
      }.${nodeNotes(result)}`,
    )
  }</p>${epTableHtml(methods)}${
    stepTime
      ? figureHtml(
        stepTime,
        "Modelled step time per method and strategy",
        "Modelled step time of all layers, mean over the evaluation window.",
      )
      : ""
  }<h3 style="font-size:14px;margin:16px 0 4px">Tokens per GPU</h3><p class="note">Each batch's GPUs sorted from busiest to least busy, tokens over the batch's mean minus 1 (0: perfect balance), averaged over layers and the evaluation window. The first group is the busiest GPU / mean of the table, less 1.</p><div class="grid">${
    loads.map((f, m) =>
      figureHtml(f, `Tokens per GPU by rank, ${result.labels[m]}`)
    ).join("")
  }</div></section>`;
}

/** The EP stage's notes on the nodes (epNodeNotes), as a sentence. */
function nodeNotes(result: SimResult): string {
  const notes = epNodeNotes(result);
  if (notes.length === 0) return "";
  const text = notes.join("; ");
  return ` On these nodes: ${text}.`;
}

/** The configuration, folded; the optimum's steps folded again, as ranges. */
function configSection(config: unknown, optimumSteps: number[]): string {
  const shown = config !== null && typeof config === "object"
    ? Object.fromEntries(
      Object.entries(config as Record<string, unknown>).filter(([k]) =>
        k !== "optimumSteps"
      ),
    )
    : config;
  const steps = optimumSteps.length === 0
    ? ""
    : `<details><summary>${optimumSteps.length} steps whose exact optimum the optimality gap compares against</summary><p class="note">${
      escapeXml(stepRanges(optimumSteps))
    }</p></details>`;
  return `<details class="config"><summary>Configuration</summary><pre>${
    escapeXml(JSON.stringify(shown, null, 2))
  }</pre>${steps}</details>`;
}

/** Names the methods whose MaxVio_batch is 0, which a log scale cannot show. */
function zeroNote(methods: Record<string, unknown>[]): string {
  const zero = methods.filter((m) => m.maxVioBatch === 0).map((m) =>
    escapeXml(String(m.method))
  );
  return zero.length === 0
    ? ""
    : ` ${
      zero.join(", ")
    }: MaxVio_batch 0 over the evaluation window, where a log scale draws nothing.`;
}
