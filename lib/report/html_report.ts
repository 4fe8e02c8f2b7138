import type { SimResult } from "../sim/run.ts";
import { escapeXml } from "./_plot.ts";
import { tableHtml } from "./display.ts";
import {
  convergencePlot,
  loadHeatmap,
  mostImbalancedLayer,
} from "./sim_plots.ts";

// Headings of the summary's known fields; other fields (added by later
// features) get their name split into words, so they show up unannounced.
const HEADINGS: Record<string, string> = {
  maxVioBatch: "MaxVio_batch",
  maxVioGlobal: "MaxVio_global",
  cv: "CV",
  wallMs: "wall ms",
};

function heading(key: string): string {
  return HEADINGS[key] ?? key.replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase();
}

function cellValue(v: unknown): unknown {
  if (v === null) return "never";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number" && !Number.isInteger(v)) {
    return Number(v.toPrecision(4));
  }
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length === 0
      ? "-"
      : entries.map(([k, x]) => `${k}=${JSON.stringify(x)}`).join(", ");
  }
  return v;
}

/** Objects as rows of a table whose columns are every key seen, in order. */
function objectsTable(objects: Record<string, unknown>[]): string {
  const keys: string[] = [];
  for (const o of objects) {
    for (const k of Object.keys(o)) if (!keys.includes(k)) keys.push(k);
  }
  return `<div class="wide">${
    tableHtml(
      keys.map(heading),
      objects.map((o) => keys.map((k) => k in o ? cellValue(o[k]) : "")),
    )
  }</div>`;
}

function section(title: string, value: unknown): string {
  let body: string;
  if (
    Array.isArray(value) &&
    value.every((v) => v !== null && typeof v === "object")
  ) {
    body = objectsTable(value as Record<string, unknown>[]);
  } else if (
    value !== null && typeof value === "object" && !Array.isArray(value)
  ) {
    body = tableHtml(
      ["", ""],
      Object.entries(value as Record<string, unknown>).map((
        [k, v],
      ) => [heading(k), cellValue(v)]),
    );
  } else {
    body = `<p>${escapeXml(String(cellValue(value)))}</p>`;
  }
  return `<section><h2>${escapeXml(title)}</h2>${body}</section>`;
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;
  margin:24px auto;max-width:1100px;padding:0 16px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
p.lead{color:#555;margin:0 0 16px}
.wide{overflow-x:auto}
table{border-collapse:collapse;font-size:12px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;
  vertical-align:top}
td{white-space:nowrap}
th{border-bottom:2px solid #bbb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:8px 0}figcaption{color:#555;font-size:13px;max-width:760px}
svg{max-width:100%;height:auto}
pre{background:#f6f6f6;padding:10px;font-size:12px;overflow:auto}
footer{color:#888;font-size:12px;margin-top:32px}`;

/**
 * One self-contained HTML page for a run: summary table, convergence plot
 * (MaxVio_batch over steps per method), load heatmap of the most imbalanced
 * layer, and the configuration. No scripts, fonts or links: it opens
 * offline. `deno task sim` writes it as `report.html`.
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
 * assert.match(html, /<th>MaxVio_global<\/th>/);
 * assert.doesNotMatch(html, /<script|<link|src=/);
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
  const lead =
    `${c.layers} layers x ${c.steps} steps x ${c.tokens} tokens, ${c.experts} experts, top-${c.topK}, ${c.gate} gate; summary over the last ${
      Math.round(c.evalFraction * 100)
    }% of the steps.`;
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
    `<section><h2>Summary</h2>${objectsTable(methods)}</section>`,
    ...extra.map(([k, v]) => section(heading(k), v)),
    `<section><h2>Convergence</h2><figure>${
      convergencePlot(result, { width: 900, height: 360 }).svg
    }<figcaption>MaxVio_batch of each batch, averaged over layers, log scale; dashed: the balance threshold (${c.balanceThreshold}).${
      zeroNote(methods)
    }</figcaption></figure></section>`,
    `<section><h2>Load per expert, layer ${layer}</h2><figure>${
      loadHeatmap(result, { layer, width: 900 }).svg
    }<figcaption>The layer with the highest MaxVio_batch over the run. Colour: an expert's load over the batch's mean load (white = balanced, red = overloaded, blue = underloaded).</figcaption></figure></section>`,
    `<section><h2>Configuration</h2><pre>${
      escapeXml(JSON.stringify(summary.config ?? c, null, 2))
    }</pre></section>`,
    `<footer>Backend: ${
      escapeXml(String(summary.backend ?? result.backend))
    }. Written by moelab sim.</footer>`,
    `</body></html>`,
  ];
  return parts.join("\n") + "\n";
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
